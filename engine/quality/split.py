"""Train/validation split: stratified over (kind, mode), grouped so near duplicates never straddle it."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.models import PairStatus
from engine.quality.dedup import NearDuplicateIndex

if TYPE_CHECKING:
    from engine.store import Store

TRAIN, VALIDATION = "train", "validation"


@dataclass
class SplitResult:
    """How the dataset was split, and what the validation set covers."""

    seed: int
    validation_fraction: float
    group_by_document: bool
    train: int
    validation: int
    groups: int
    categories: dict[str, dict[str, int]] = field(default_factory=dict)  # "kind/mode" -> {train, validation}
    uncovered: list[str] = field(default_factory=list)  # categories with a single group: train only


class _Groups:
    """Union-find over pair ids."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def make_split(
    store: Store,
    validation_fraction: float | None = None,
    seed: int | None = None,
    group_by_document: bool | None = None,
) -> SplitResult:
    """Assign every non-rejected pair to train or validation and store it (``store.set_splits`` + meta "split").

    Groups: near-duplicate clusters (and, with ``group_by_document``, all pairs drawing on one document) go to
    one side together. Each (kind, mode) category with at least two groups gets validation groups until it
    holds about ``validation_fraction`` of that category; the result is the same for the same seed and data.
    None values come from ``store.settings.split``.
    """
    settings = store.settings.split
    fraction = settings.validation_fraction if validation_fraction is None else validation_fraction
    seed = settings.seed if seed is None else seed
    by_document = settings.group_by_document if group_by_document is None else group_by_document
    if not 0 < fraction < 1:
        raise ValueError("validation_fraction must be between 0 and 1")

    index = NearDuplicateIndex(store.settings.quality.near_duplicate_threshold)
    groups = _Groups()
    category: dict[int, str] = {}
    rejected: list[int] = []
    first_pair_of_document: dict[int, int] = {}
    chunk_documents = {c.id: c.document_id for c in store.list_chunks(include_retired=True) if c.id is not None}
    for pair in store.iter_pairs():
        pair_id = pair.id or 0
        if pair.status is PairStatus.REJECTED:
            rejected.append(pair_id)
            continue
        index.add(pair)
        groups.find(pair_id)
        category[pair_id] = f"{pair.kind}/{pair.mode}"
        if by_document:
            for chunk_id in pair.sources:
                document = chunk_documents.get(chunk_id)
                if document is not None:
                    groups.union(first_pair_of_document.setdefault(document, pair_id), pair_id)
    for cluster in index.clusters():
        for other in cluster[1:]:
            groups.union(cluster[0], other)

    members: dict[int, list[int]] = defaultdict(list)
    for pair_id in category:
        members[groups.find(pair_id)].append(pair_id)
    # A group is filed under its most common category (ties broken by name, for determinism).
    by_category: dict[str, list[int]] = defaultdict(list)
    for root, ids in members.items():
        counts = Counter(category[i] for i in ids)
        best = min(counts, key=lambda c: (-counts[c], c))
        by_category[best].append(root)

    rng = random.Random(seed)
    assignment: dict[int, str | None] = dict.fromkeys(rejected)
    result = SplitResult(seed=seed, validation_fraction=fraction, group_by_document=by_document, train=0, validation=0, groups=len(members))
    for name in sorted(by_category):
        roots = sorted(by_category[name])
        rng.shuffle(roots)
        size = sum(len(members[r]) for r in roots)
        goal = max(1, round(fraction * size))
        chosen = 0
        for position, root in enumerate(roots):
            # Keep at least one group in train, and stop once the category's share is reached.
            to_validation = len(roots) >= 2 and chosen < goal and position < len(roots) - 1
            side = VALIDATION if to_validation else TRAIN
            if to_validation:
                chosen += len(members[root])
            for pair_id in members[root]:
                assignment[pair_id] = side
        if len(roots) < 2:
            result.uncovered.append(name)
    for pair_id, assigned in assignment.items():
        if assigned is None:
            continue
        name = category[pair_id]
        result.categories.setdefault(name, {TRAIN: 0, VALIDATION: 0})[assigned] += 1
        if assigned == TRAIN:
            result.train += 1
        else:
            result.validation += 1

    store.set_splits(assignment)
    meta = {
        "seed": seed,
        "validation_fraction": fraction,
        "group_by_document": by_document,
        "train": result.train,
        "validation": result.validation,
        "groups": result.groups,
        "uncovered": result.uncovered,
    }
    store.set_meta("split", meta)
    store.log(
        step="split",
        action="split",
        count=result.train + result.validation,
        message=f"Split into {result.train} train and {result.validation} validation pairs (seed {seed}, {len(members)} groups).",
        detail=meta,
    )
    return result


__all__ = ["TRAIN", "VALIDATION", "SplitResult", "make_split"]
