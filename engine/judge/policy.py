"""Which pairs a judge run scores, and storing one judged pair: the judge's rules over the store.

The store keeps verdicts, pairs and jobs; deciding that a verdict no longer describes a pair,
or what completing a judge job writes, is judging policy and lives here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.models import PairWarning, Verdict

if TYPE_CHECKING:
    from engine.store import Store


def judge_candidates(store: Store, *, rubric_version: str, only_changed: bool = True) -> list[tuple[int, str, str]]:
    """Pairs a judge run should score, as (id, kind, mode), skipping those already queued for judging.

    With ``only_changed`` a pair is picked when it has no verdict, its content changed since
    the verdict (status changes do not count), or the verdict used another rubric version.
    """
    changed = (
        "AND (v.pair_id IS NULL OR v.rubric_version != :rubric OR "
        "(v.content_hash IS NULL AND v.pair_revision != p.revision) OR "
        "(v.content_hash IS NOT NULL AND v.content_hash != p.content_hash))"
        if only_changed
        else ""
    )
    rows = store.db.read(
        "SELECT p.id, p.kind, p.mode FROM pairs p LEFT JOIN verdicts v ON v.pair_id = p.id "
        "WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.task = 'judge' AND j.pair_id = p.id "
        f"AND j.status IN ('queued', 'running')) {changed} ORDER BY p.id",
        {"rubric": rubric_version},
    )
    return [(r["id"], r["kind"], r["mode"]) for r in rows]


def complete_judge_job(
    store: Store,
    job_id: int,
    verdict: Verdict,
    *,
    content_hash: str,
    warning_check: str,
    warning: PairWarning | None,
) -> bool:
    """Store a verdict, the pair's score and its ``warning_check`` warning, and mark the job done.

    One transaction, so a verdict is never stored for a job still shown as running. The
    pair's other warnings are kept. If the pair's content changed while it was judged, the
    verdict is kept for the judged content but the score and warning are left alone (the
    next judge run scores the new content). Returns False when the job was no longer
    running (cancelled meanwhile) and nothing was stored.
    """
    with store.db.transaction():
        if store.jobs.status(job_id) != "running":
            return False
        current = store.pairs.content_hash(verdict.pair_id)
        if current is not None:  # the pair may have been deleted while it was judged
            store.verdicts.save(verdict, content_hash=content_hash, score_pair=False)
            if current == content_hash:
                store.pairs.replace_warning(verdict.pair_id, warning_check, warning, score=verdict.total)
        store.jobs.mark_done(job_id)
    return True


__all__ = ["complete_judge_job", "judge_candidates"]
