"""From failing probes to pairs: "generate more like this" plans targeted generation jobs.

A probe that failed in-corpus (copied, non-answer, wrongly refused, disagrees) gets new
instruction pairs on its own source chunks, and a multi-hop pair when its sources span two
documents; one that answered an out-of-corpus question gets refusal pairs; one that answered
an ambiguous question without asking gets clarification pairs on chunks spread over the
corpus. The jobs are a generation run saved with :func:`engine.generate.planner.save_plan`,
run like any other with ``pairforge generate``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.errors import PairForgeError
from engine.generate.planner import Plan, allocate_chunk_slots, save_plan
from engine.models import Job, PairKind
from engine.store.evals import AMBIGUOUS, IN_CORPUS_KINDS, OUT_OF_CORPUS, Probe

if TYPE_CHECKING:
    from engine.store import Store

# New pairs planned per failing probe.
PAIRS_PER_FAILURE = 2


def failing_probes(store: Store, run_id: int) -> list[Probe]:
    """The probes that failed in eval run ``run_id``."""
    failed = [a.probe_id for a in store.evals.answers(run_id).values() if a.failed]
    return store.evals.probes(ids=failed)


def plan_more_like(store: Store, probes: Sequence[Probe], *, per_probe: int = PAIRS_PER_FAILURE) -> Plan:
    """A generation plan with targeted jobs for ``probes`` (nothing is saved).

    Raises PairForgeError when no probe is given or none has anything to ground new pairs on.
    """
    if not probes:
        raise PairForgeError("No failing probe to generate more like: every probe passed, or none was chosen.")
    modes = list(store.settings.generation.modes) or ["factual"]
    planned: list[tuple[str, list[int]]] = []
    chunks = {c.id: c for c in store.list_chunks()}
    spread_needed = 0
    for probe in probes:
        sources = [c for c in probe.chunk_ids if c in chunks]
        if probe.kind in IN_CORPUS_KINDS and sources:
            planned += [("instruction", [sources[i % len(sources)]]) for i in range(per_probe)]
            if len({chunks[c].document_id for c in sources}) >= 2:
                planned.append(("multi_hop", sources[:2]))
        elif probe.kind == OUT_OF_CORPUS:
            planned += [("refusal", []) for _ in range(per_probe)]
        elif probe.kind == AMBIGUOUS:
            if sources:
                planned += [("clarification", [sources[i % len(sources)]]) for i in range(per_probe)]
            else:
                spread_needed += per_probe
    if spread_needed:
        by_document: dict[int, list] = {}
        for chunk in chunks.values():
            by_document.setdefault(chunk.document_id or 0, []).append(chunk)
        planned += [("clarification", [c.id or 0]) for c in allocate_chunk_slots(by_document, spread_needed)]
    if not planned:
        raise PairForgeError("The chosen probes have no source chunks left to ground new pairs on.")
    seen: Counter[str] = Counter()
    jobs: list[Job] = []
    by_mode: Counter[str] = Counter()
    composition_by_mode: dict[str, dict[str, int]] = {}
    base = 1_000_000 + len(store.evals.probes())  # variants apart from a first plan's, so phrasings differ
    for variant, (kind, chunk_ids) in enumerate(planned):
        mode = modes[seen[kind] % len(modes)]
        params: dict[str, object] = {"variant": base + variant, "seed": base + variant, "targeted": True}
        if kind == "refusal":
            params["refusal_index"] = base + seen[kind]
        seen[kind] += 1
        by_mode[mode] += 1
        composition_by_mode.setdefault(kind, {}).setdefault(mode, 0)
        composition_by_mode[kind][mode] += 1
        jobs.append(Job(kind=PairKind(kind), mode=mode, chunk_ids=chunk_ids, params=params))
    return Plan(
        target=len(jobs), composition=dict(seen), by_mode=dict(by_mode), composition_by_mode=composition_by_mode,
        documents=[], jobs=jobs,
        notes=[f"targeted at {len(probes)} failing eval probe(s)"],
    )


def generate_more_like(store: Store, probes: Sequence[Probe], *, per_probe: int = PAIRS_PER_FAILURE) -> tuple[int, Plan]:
    """Plan targeted jobs for ``probes`` and queue them as a generation run; returns (run id, plan)."""
    plan = plan_more_like(store, probes, per_probe=per_probe)
    run_id = save_plan(store, plan)
    store.log(
        "eval", "more_like", len(plan.jobs),
        f"run {run_id}: {len(plan.jobs)} targeted job(s) for {len(probes)} failing probe(s)",
        {"run_id": run_id, "probe_ids": [p.id for p in probes]},
    )
    return run_id, plan




def teaching_pairs(store: Store, probe: Probe) -> tuple[list[int], str]:
    """The pairs that should have taught the model ``probe``, and a label saying which they are.

    In-corpus probes: the training pairs grounded on the probe's chunks (the validation split
    left out); out-of-corpus probes: the refusal pairs; ambiguous ones: the clarification pairs.
    """
    if probe.kind == OUT_OF_CORPUS or (probe.kind == AMBIGUOUS and not probe.chunk_ids):
        kind = "refusal" if probe.kind == OUT_OF_CORPUS else "clarification"
        rows = store.db.read("SELECT id FROM pairs WHERE kind = ? AND COALESCE(split, '') != 'validation' ORDER BY id", (kind,))
        return [r["id"] for r in rows], f"{kind} pairs (probe {probe.id})"
    marks = ",".join(str(int(c)) for c in probe.chunk_ids) or "-1"
    rows = store.db.read(
        "SELECT DISTINCT p.id FROM pairs p JOIN pair_sources s ON s.pair_id = p.id "
        f"WHERE s.chunk_id IN ({marks}) AND COALESCE(p.split, '') != 'validation' ORDER BY p.id"
    )
    return [r["id"] for r in rows], f"pairs on probe {probe.id}'s sources"


__all__ = ["PAIRS_PER_FAILURE", "failing_probes", "generate_more_like", "plan_more_like", "teaching_pairs"]
