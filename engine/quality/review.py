"""The review sample and its verdict: the field's rule is to read 20 pairs; more than 2 failing means not ready.

The sample is stratified over (kind, mode) and stored, so it is the same pairs across sessions until
a new one is drawn on purpose (logged in the pipeline log). A reviewer marks each pair pass or fail;
that verdict is apart from the pair's accept/reject status, because it measures the dataset as it was
drawn: rejecting or fixing a failed pair afterwards does not make the sample pass, and pairs accepted
in bulk were not read.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from engine.errors import PairForgeError
from engine.models import PairStatus

if TYPE_CHECKING:
    from engine.store import Store

SAMPLE_SIZE = 20
# More failed pairs than this in a sample of SAMPLE_SIZE means the dataset is not ready.
MAX_FAILED = 2

ReviewStatus = Literal["ready", "not ready", "in progress", "no sample"]
Verdict = Literal["pass", "fail"]


class ReviewVerdict(BaseModel):
    """Where the review of the current sample stands."""

    model_config = ConfigDict(frozen=True)

    sample_id: int | None = None
    drawn_at: str = ""
    size: int = 0
    reviewed: int = 0
    failed: int = 0
    status: ReviewStatus = "no sample"
    message: str = "No review sample drawn yet: press s in Review or run `pairforge sample`."
    pair_ids: list[int] = []
    failed_ids: list[int] = []


def verdict_of(sample_id: int | None, drawn_at: str, entries: Iterable[tuple[int, str | None]]) -> ReviewVerdict:
    """The verdict of a sample's (pair id, verdict) entries."""
    if sample_id is None:
        return ReviewVerdict()
    entries = list(entries)
    size = len(entries)
    reviewed = sum(1 for _, v in entries if v is not None)
    failed_ids = [pair_id for pair_id, v in entries if v == "fail"]
    failed = len(failed_ids)
    status: ReviewStatus
    if failed > MAX_FAILED:
        status, outcome = "not ready", f"not ready (more than {MAX_FAILED} failed)"
    elif size and reviewed == size:
        status, outcome = "ready", "ready"
    else:
        status, outcome = "in progress", f"{size - reviewed} to go"
    return ReviewVerdict(
        sample_id=sample_id, drawn_at=drawn_at, size=size, reviewed=reviewed, failed=failed, status=status,
        message=f"{reviewed} of {size} reviewed, {failed} failed: {outcome}",
        pair_ids=[pair_id for pair_id, _ in entries], failed_ids=failed_ids,
    )


def review_verdict(store: Store) -> ReviewVerdict:
    """The verdict of the project's current review sample (``status`` "no sample" when none was drawn)."""
    sample = store.review_samples.current()
    if sample is None:
        return ReviewVerdict()
    return verdict_of(sample.id, sample.drawn_at, sample.pairs)


def stratified_sample(
    facts: Iterable[tuple[int, str, str, float | None]], n: int, seed: int | None, *, low_scores_first: bool = False,
) -> list[int]:
    """Up to ``n`` of the (pair id, kind, mode, score) items, stratified over (kind, mode); sorted ids.

    Each (kind, mode) gets its share of ``n`` (at least one); lowest judge scores first within each if asked.
    """
    rng = random.Random(seed)
    strata: dict[tuple[str, str], list[int]] = defaultdict(list)
    scores: dict[int, float] = {}
    for pair_id, kind, mode, score in sorted(facts):
        strata[(kind, mode)].append(pair_id)
        scores[pair_id] = math.inf if score is None else score
    if not strata:
        return []
    for ids in strata.values():
        rng.shuffle(ids)
        if low_scores_first:
            ids.sort(key=lambda i: scores[i])
    total = sum(len(v) for v in strata.values())
    keys = sorted(strata, key=lambda k: (-len(strata[k]), k))
    quota = {k: min(len(strata[k]), max(1, round(n * len(strata[k]) / total))) for k in keys}
    picked: list[int] = []
    for key in keys:
        picked.extend(strata[key][: quota[key]])
    # Fill or trim to exactly n, round-robin so small categories are not crowded out.
    position = dict(quota)
    while len(picked) < min(n, total):
        for key in keys:
            if position[key] < len(strata[key]) and len(picked) < n:
                picked.append(strata[key][position[key]])
                position[key] += 1
    if len(picked) > n:
        rng.shuffle(picked)
        picked = picked[:n]
    return sorted(picked)


def draw_review_sample(store: Store, *, n: int = SAMPLE_SIZE, seed: int | None = None) -> ReviewVerdict:
    """Draw a new review sample of the pairs not rejected, store it as the current one and log it.

    The previous sample and its verdicts stay in the store as history. Raises PairForgeError when
    the project has no pair to sample.
    """
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    rows = store.db.read("SELECT id, kind, mode, score FROM pairs WHERE status != ?", (str(PairStatus.REJECTED),))
    ids = stratified_sample(((r["id"], r["kind"], r["mode"], r["score"]) for r in rows), n, seed)
    if not ids:
        raise PairForgeError("There are no pairs to sample: generate or import some first.")
    previous = review_verdict(store)
    store.review_samples.add(ids, seed=seed, method="stratified over kind and mode")
    before = f"; the previous one stood at {previous.message}" if previous.sample_id is not None else ""
    store.log(
        "review", "sample", len(ids),
        f"Drew a new {len(ids)}-pair review sample (stratified over kind and mode, seed {seed}){before}.",
        {"pair_ids": ids, "seed": seed, "previous_sample": previous.sample_id},
    )
    return review_verdict(store)


def current_or_new_sample(store: Store) -> tuple[ReviewVerdict, bool]:
    """The current review sample, drawing (and logging) the first one when there is none; and whether it was drawn."""
    current = review_verdict(store)
    if current.sample_id is not None:
        return current, False
    return draw_review_sample(store), True


def mark_review(store: Store, pair_id: int, verdict: Verdict | None) -> ReviewVerdict:
    """Mark a pair of the current sample pass or fail (None clears it); returns the new verdict.

    Raises PairForgeError when no sample was drawn or the pair is not in it.
    """
    sample = store.review_samples.current()
    if sample is None:
        raise PairForgeError("No review sample drawn yet: press s in Review (or run `pairforge sample`) first.")
    if not store.review_samples.mark(sample.id, pair_id, verdict):
        raise PairForgeError(
            f"Pair {pair_id} is not in the current review sample: press s in Review (or run `pairforge sample`) to list it."
        )
    return review_verdict(store)


__all__ = [
    "MAX_FAILED", "SAMPLE_SIZE", "ReviewVerdict", "current_or_new_sample", "draw_review_sample", "mark_review",
    "review_verdict", "stratified_sample", "verdict_of",
]
