"""Which pairs a repair run works on, and whether a repaired pair is better than the original.

A repair is kept only when it clears every problem it was asked to fix, brings no new warning
or error and does not repeat the repair prompt's own words (a new note of severity info, such as weak grounding, does
not count). Anything else keeps the original.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.errors import ConfigError
from engine.models import Message, Pair, PairWarning, Role, Severity
from engine.repair.prompts import REPAIRABLE

if TYPE_CHECKING:
    from engine.store import PairFilter, Store

__all__ = [
    "FILTER_KEYS",
    "Assessment",
    "assess_repair",
    "parse_filter",
    "repair_candidates",
    "repair_targets",
    "resolve_checks",
    "with_text",
]

REPAIRED, UNCHANGED, FAILED = "repaired", "unchanged", "failed"

# ``--filter`` keys and the PairFilter field each sets.
FILTER_KEYS = {"status": "status", "kind": "kind", "mode": "mode", "warning": "warning", "doc": "document_id",
               "document": "document_id", "search": "search"}


def resolve_checks(checks: Iterable[str] | None) -> tuple[str, ...]:
    """The check ids a run repairs (every repairable one when ``checks`` is empty).

    Raises ConfigError naming the fix for an unknown id or one a rewrite cannot fix.
    """
    from engine.quality import CHECKS

    wanted = tuple(dict.fromkeys(checks or ()))
    for check in wanted:
        if check not in CHECKS:
            raise ConfigError(f"Unknown check {check!r}: see `pairforge check` for the check ids.")
        if check not in REPAIRABLE:
            raise ConfigError(
                f"The check {check!r} cannot be fixed by rewriting the pair: choose one of {', '.join(sorted(REPAIRABLE))}."
            )
    return wanted or tuple(sorted(REPAIRABLE))


def parse_filter(texts: Iterable[str]) -> PairFilter:
    """A PairFilter from ``key=value`` texts, one per text (status, kind, mode, warning, doc, search).

    Raises ConfigError naming the fix for a text without ``=`` or with an unknown key.
    """
    from engine.store import PairFilter

    fields: dict[str, object] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        key = key.strip().lower()
        if not sep or key not in FILTER_KEYS:
            raise ConfigError(
                f"Cannot read the filter {text!r}: write key=value with a key among {', '.join(sorted(FILTER_KEYS))}."
            )
        field = FILTER_KEYS[key]
        if field == "document_id":
            try:
                fields[field] = int(value)
            except ValueError as exc:
                raise ConfigError(f"The document in {text!r} must be a document id (see `pairforge docs`).") from exc
        else:
            fields[field] = value if field == "search" else value.strip()
    return PairFilter(**fields)  # type: ignore[arg-type]


def repair_candidates(
    store: Store, checks: Sequence[str], flt: PairFilter | None = None, ids: Sequence[int] | None = None
) -> list[tuple[int, str, str]]:
    """Pairs carrying one of ``checks`` (and matching ``flt`` and ``ids``), as (id, kind, mode).

    Pairs already queued or running for repair are left out, so a pair is never repaired twice at once.
    """
    from dataclasses import replace

    from engine.store import PairFilter
    from engine.store.pairs import filter_sql

    flt = flt or PairFilter()
    if ids is not None:
        flt = replace(flt, ids=list(ids))
    where, params = filter_sql(flt)
    joiner = "AND" if where else "WHERE"
    marks = ",".join("?" * len(checks))
    rows = store.db.read(
        f"SELECT id, kind, mode FROM pairs {where} {joiner} id IN "
        f'(SELECT pair_id FROM pair_warnings WHERE "check" IN ({marks})) '
        "AND id NOT IN (SELECT pair_id FROM jobs WHERE task = 'repair' AND pair_id IS NOT NULL "
        "AND status IN ('queued', 'running')) ORDER BY id",
        [*params, *checks],
    )
    return [(int(r["id"]), str(r["kind"]), str(r["mode"])) for r in rows]


def repair_targets(warnings: Sequence[PairWarning], checks: Sequence[str]) -> list[PairWarning]:
    """The warnings among ``warnings`` a run asked to repair (``checks``) that a rewrite can fix."""
    return [w for w in warnings if w.check in checks and w.check in REPAIRABLE]


def with_text(pair: Pair, instruction: str, response: str) -> Pair:
    """``pair`` with its first user turn and last assistant turn replaced (other turns kept)."""
    messages = list(pair.messages)
    user = next((i for i, m in enumerate(messages) if m.role is Role.USER), None)
    assistant = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role is Role.ASSISTANT), None)
    if user is None:
        messages.insert(0, Message(role=Role.USER, content=instruction))
        assistant = None if assistant is None else assistant + 1
    else:
        messages[user] = messages[user].model_copy(update={"content": instruction})
    if assistant is None:
        messages.append(Message(role=Role.ASSISTANT, content=response))
    else:
        messages[assistant] = messages[assistant].model_copy(update={"content": response})
    return pair.model_copy(update={"messages": messages})


@dataclass(frozen=True)
class Assessment:
    """What a repaired pair changes: its outcome, why, and the checks it cleared, kept and brought."""

    outcome: str  # repaired | unchanged | failed
    reason: str
    cleared: tuple[str, ...] = ()
    remaining: tuple[str, ...] = ()
    introduced: tuple[str, ...] = ()


# A repaired pair that holds this many words in a row of a hint or a warning it was sent echoes the prompt.
ECHO_WORDS = 5
_WORD = re.compile(r"[a-z0-9']+")
_QUOTED = re.compile(r"\"[^\"]*\"|\([^)]*\)")


def _echoed_prompt(candidate: Pair, targets: Sequence[PairWarning]) -> str | None:
    """The first run of ECHO_WORDS words of the repair prompt's hints or warnings found in ``candidate``, else None.

    A weak model answers "The answer is too short." to a too-short answer: that clears the check and teaches nothing.
    """
    from engine.repair.prompts import REPAIR_HINTS

    said = " " + " ".join(_WORD.findall(f"{candidate.instruction}\n{candidate.response}".lower())) + " "
    for warning in targets:
        for text in (REPAIR_HINTS.get(warning.check, ""), warning.reason):
            # Quoted text in a reason is the pair's own (a copied run, a leaked label): sharing it is no echo.
            for piece in _QUOTED.split(text.lower()):
                words = _WORD.findall(piece)
                for i in range(len(words) - ECHO_WORDS + 1):
                    run = " ".join(words[i : i + ECHO_WORDS])
                    if f" {run} " in said:
                        return run
    return None


def _ids(warnings: Iterable[PairWarning]) -> list[str]:
    return list(dict.fromkeys(w.check for w in warnings))


def assess_repair(
    original: Pair, before: Sequence[PairWarning], candidate: Pair, after: Sequence[PairWarning],
    targets: Sequence[PairWarning],
) -> Assessment:
    """Compare a repaired pair (``candidate`` with its checks ``after``) with the original (checks ``before``).

    ``targets`` are the warnings the repair was asked to fix.
    """
    remaining = tuple(c for c in _ids(after) if c in {t.check for t in targets})
    if candidate.content_hash() == original.content_hash():
        return Assessment(UNCHANGED, "The model returned the pair unchanged; the original was kept.", remaining=remaining)
    echo = _echoed_prompt(candidate, targets)
    if echo:
        return Assessment(
            FAILED, f"The repair repeats the repair prompt (\"{echo}\"); the original was kept.", remaining=remaining
        )
    had = {w.check for w in before}
    new = [w for w in after if w.check not in had and w.severity is not Severity.INFO]
    if new:
        first = new[0]
        return Assessment(
            FAILED,
            f"The repair brought new problems ({', '.join(_ids(new))}: {first.reason}); the original was kept.",
            remaining=remaining, introduced=tuple(_ids(new)),
        )
    cleared = tuple(c for c in _ids(targets) if c not in {w.check for w in after})
    if remaining or not cleared:
        # A partial repair still teaches the flaw it kept: every problem it was sent must be gone.
        return Assessment(
            UNCHANGED, f"The repair still has {', '.join(remaining)}; the original was kept.", remaining=remaining
        )
    left = [c for c in _ids(after)]
    tail = f"; still flagged: {', '.join(left)}" if left else ""
    return Assessment(REPAIRED, f"Cleared {', '.join(cleared)}{tail}.", cleared=cleared, remaining=remaining)
