"""Near-duplicate index: exact normalized hashes plus fuzzy instruction matching with MinHash LSH blocking.

Blocking: each instruction's sorted-word normalized form is cut into character 4-grams, summarised by a
MinHash signature (numpy, multiply-shift hashing, so it is deterministic across runs) and split into bands;
pairs sharing a band bucket are candidates, and only candidates are scored with rapidfuzz. The score is
the best of ratio and token_sort_ratio of the normalized instructions and ratio of their content words
(stopwords dropped), so typos, reorderings and "How do I" / "How can I" paraphrases all count.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
from rapidfuzz import fuzz, process

from engine.models import Pair, PairStatus
from engine.quality.textstats import ENGLISH_STOPWORDS, normalize

if TYPE_CHECKING:
    from engine.store import Store

BANDS = 16
ROWS = 4
_NUM_PERM = BANDS * ROWS
_RNG = np.random.default_rng(20240611)
_A = (_RNG.integers(1, 2**63 - 1, size=_NUM_PERM, dtype=np.uint64) | np.uint64(1))[:, None]
_B = _RNG.integers(0, 2**63 - 1, size=_NUM_PERM, dtype=np.uint64)[:, None]
_SHIFT = np.uint64(32)
# Exact response matches only count when the answer says something (not "Yes." twice).
MIN_RESPONSE_CHARS_FOR_EXACT = 40
# Buckets bigger than this are scored as a matrix in native code.
LARGE_BUCKET = 24


@dataclass(frozen=True)
class SimilarPair:
    """A near duplicate of some pair: its id, the similarity (0-100) and which field matched."""

    pair_id: int
    score: float
    field: str  # "pair" (whole conversation), "instruction" or "response"


@dataclass
class Cluster:
    """A group of near-duplicate pairs, the one to keep and the ones that would go."""

    pair_ids: list[int]
    keep: int
    remove: list[int] = field(default_factory=list)


@dataclass
class DedupResult:
    """What a dedup pass found and (unless a dry run) removed."""

    threshold: float
    keep: str
    dry_run: bool
    clusters: list[Cluster]
    removed: list[int]


# Content forms shorter than this say too little to compare on their own.
MIN_CONTENT_CHARS = 12


def content_form(normalized: str) -> str:
    """A normalized text without its stopwords ("how do i retry a job" -> "retry job")."""
    kept = " ".join(w for w in normalized.split() if w not in ENGLISH_STOPWORDS)
    return kept if len(kept) >= MIN_CONTENT_CHARS else normalized


def similarity(a: str, b: str, cutoff: float = 0.0) -> float:
    """Similarity (0-100) of two texts: the best of ratio, word-order-insensitive ratio, and content-word ratio."""
    a, b = normalize(a), normalize(b)
    return _similarity(a, content_form(a), b, content_form(b), cutoff)


def _similarity(a: str, a_content: str, b: str, b_content: str, cutoff: float) -> float:
    score = fuzz.ratio(a, b, score_cutoff=cutoff)
    if score >= 100:
        return score
    score = max(score, fuzz.token_sort_ratio(a, b, score_cutoff=cutoff))
    return max(score, fuzz.ratio(a_content, b_content, score_cutoff=cutoff))


def _signature_keys(content: str) -> np.ndarray:
    """One int64 bucket key per band, from the sorted content words of a normalized instruction."""
    shingle_source = " ".join(sorted(content.split()))
    data = np.frombuffer(shingle_source.encode("utf-8") or b"\0", dtype=np.uint8).astype(np.uint64)
    if data.size < 4:
        data = np.concatenate([data, np.zeros(4 - data.size, dtype=np.uint64)])
    shingles = np.unique((data[:-3] << np.uint64(24)) | (data[1:-2] << np.uint64(16)) | (data[2:-1] << np.uint64(8)) | data[3:])
    signature = ((_A * shingles[None, :] + _B) >> _SHIFT).min(axis=1).reshape(BANDS, ROWS)
    # Fold each band's rows into one 64-bit key (collisions only add candidates, which are then verified).
    keys = signature[:, 0]
    for row in range(1, ROWS):
        keys = keys * np.uint64(0x9E3779B97F4A7C15) + signature[:, row]
    return keys.astype(np.int64)


def _pair_key(pair: Pair) -> int:
    return hash("\x1f".join(normalize(m.content) for m in pair.messages) + "\x1e" + normalize(pair.context or ""))


class NearDuplicateIndex:
    """Incremental near-duplicate index over pairs; never compares all pairs with all pairs."""

    def __init__(self, threshold: float = 90.0) -> None:
        self.threshold = float(threshold)
        self._instruction: dict[int, str] = {}
        self._content: dict[int, str] = {}
        self._keys: dict[int, np.ndarray] = {}
        self._buckets: list[dict[int, list[int]]] = [defaultdict(list) for _ in range(BANDS)]
        self._exact_pair: dict[int, list[int]] = defaultdict(list)
        self._exact_instruction: dict[int, list[int]] = defaultdict(list)
        self._exact_response: dict[int, list[int]] = defaultdict(list)
        self._hashes: dict[int, tuple[int, int, int | None]] = {}

    def __len__(self) -> int:
        return len(self._instruction)

    def __contains__(self, pair_id: object) -> bool:
        return pair_id in self._instruction

    @classmethod
    def from_pairs(cls, pairs: Iterable[Pair], threshold: float = 90.0) -> NearDuplicateIndex:
        """An index holding ``pairs``."""
        index = cls(threshold)
        for pair in pairs:
            index.add(pair)
        return index

    @classmethod
    def from_store(cls, store: Store, threshold: float | None = None, *, include_rejected: bool = False) -> NearDuplicateIndex:
        """An index over the store's pairs (rejected ones left out unless asked), streamed in batches."""
        index = cls(store.settings.quality.near_duplicate_threshold if threshold is None else threshold)
        for pair in store.iter_pairs():
            if include_rejected or pair.status is not PairStatus.REJECTED:
                index.add(pair)
        return index

    # ------------------------------------------------------------------ updates

    def add(self, pair: Pair) -> None:
        """Index a saved pair (one with an id); re-adding an id replaces it."""
        if pair.id is None:
            raise ValueError("only saved pairs (with an id) can be indexed")
        pair_id = pair.id
        if pair_id in self._instruction:
            self.remove(pair_id)
        instruction = normalize(pair.instruction)
        response = normalize(pair.response)
        content = content_form(instruction)
        self._instruction[pair_id] = instruction
        self._content[pair_id] = content
        keys = _signature_keys(content)
        self._keys[pair_id] = keys
        for band, key in enumerate(keys.tolist()):
            self._buckets[band][key].append(pair_id)
        whole, instr = _pair_key(pair), hash(instruction)
        resp = hash(response) if len(response) >= MIN_RESPONSE_CHARS_FOR_EXACT else None
        self._hashes[pair_id] = (whole, instr, resp)
        self._exact_pair[whole].append(pair_id)
        self._exact_instruction[instr].append(pair_id)
        if resp is not None:
            self._exact_response[resp].append(pair_id)

    def remove(self, pair_id: int) -> None:
        """Forget a pair (no error when it is not indexed)."""
        if pair_id not in self._instruction:
            return
        del self._instruction[pair_id]
        del self._content[pair_id]
        for band, key in enumerate(self._keys.pop(pair_id).tolist()):
            _discard(self._buckets[band], key, pair_id)
        whole, instr, resp = self._hashes.pop(pair_id)
        _discard(self._exact_pair, whole, pair_id)
        _discard(self._exact_instruction, instr, pair_id)
        if resp is not None:
            _discard(self._exact_response, resp, pair_id)

    def update(self, pair: Pair) -> None:
        """Re-index an edited pair."""
        self.add(pair)

    # ------------------------------------------------------------------ queries

    def _candidates(self, keys: np.ndarray) -> set[int]:
        found: set[int] = set()
        for band, key in enumerate(keys.tolist()):
            bucket = self._buckets[band].get(key)
            if bucket:
                found.update(bucket)
        return found

    def similar_to(self, pair: Pair, limit: int = 10) -> list[SimilarPair]:
        """The indexed pairs most similar to ``pair`` (itself excluded), best first."""
        own = pair.id
        best: dict[int, SimilarPair] = {}

        def offer(other: int, score: float, field_name: str) -> None:
            if other == own:
                return
            current = best.get(other)
            if current is None or score > current.score:
                best[other] = SimilarPair(other, round(score, 1), field_name)

        for other in self._exact_pair.get(_pair_key(pair), ()):
            offer(other, 100.0, "pair")
        instruction = normalize(pair.instruction)
        for other in self._exact_instruction.get(hash(instruction), ()):
            offer(other, 100.0, "instruction")
        response = normalize(pair.response)
        if len(response) >= MIN_RESPONSE_CHARS_FOR_EXACT:
            for other in self._exact_response.get(hash(response), ()):
                offer(other, 100.0, "response")
        content = content_form(instruction)
        for other in self._candidates(_signature_keys(content)):
            if other == own or other in best:
                continue
            score = _similarity(instruction, content, self._instruction[other], self._content[other], self.threshold)
            if score >= self.threshold:
                offer(other, score, "instruction")
        ranked = sorted(best.values(), key=lambda s: (-s.score, s.field != "pair", s.pair_id))
        return ranked[:limit]

    def edges(self) -> set[tuple[int, int]]:
        """Every near-duplicate pair of ids (a < b) the index can see: exact matches and verified fuzzy ones."""
        found: set[tuple[int, int]] = set()
        rejected: set[tuple[int, int]] = set()
        for group in self._exact_groups():
            found.update(_all_pairs(group))
        for buckets in self._buckets:
            for bucket in buckets.values():
                if len(bucket) < 2:
                    continue
                for a, b in _all_pairs(bucket):
                    if (a, b) in found or (a, b) in rejected:
                        continue
                    if self._score(a, b) >= self.threshold:
                        found.add((a, b))
                    else:
                        rejected.add((a, b))
        return found

    def _bucket_matches(self, bucket: list[int]) -> list[tuple[int, int]]:
        """Matching pairs of one large bucket, scored in rapidfuzz's native loops instead of Python's."""
        ids = sorted(set(bucket))
        plain = [self._instruction[i] for i in ids]
        content = [self._content[i] for i in ids]
        cut = self.threshold
        scores = np.maximum.reduce([
            process.cdist(plain, plain, scorer=fuzz.ratio, score_cutoff=cut, dtype=np.float32, workers=-1),
            process.cdist(plain, plain, scorer=fuzz.token_sort_ratio, score_cutoff=cut, dtype=np.float32, workers=-1),
            process.cdist(content, content, scorer=fuzz.ratio, score_cutoff=cut, dtype=np.float32, workers=-1),
        ])
        rows, cols = np.nonzero(np.triu(scores >= cut, 1))
        return [(ids[r], ids[c]) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)]

    def _score(self, a: int, b: int) -> float:
        return _similarity(self._instruction[a], self._content[a], self._instruction[b], self._content[b], self.threshold)

    def _exact_groups(self) -> Iterable[list[int]]:
        for table in (self._exact_pair, self._exact_instruction, self._exact_response):
            for group in table.values():
                if len(group) > 1:
                    yield group

    def clusters(self) -> list[list[int]]:
        """Groups of two or more near-duplicate pairs (connected components), each sorted, sorted by first id."""
        parent: dict[int, int] = {}

        def find(x: int) -> int:
            root = x
            while parent.get(root, root) != root:
                root = parent[root]
            while parent.get(x, x) != root:
                parent[x], x = root, parent[x]
            return root

        def union(a: int, b: int) -> None:
            parent.setdefault(a, a)
            parent.setdefault(b, b)
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)

        for group in self._exact_groups():
            for other in group[1:]:
                union(group[0], other)
        checked: set[tuple[int, int]] = set()
        for buckets in self._buckets:
            for bucket in buckets.values():
                if len(bucket) < 2:
                    continue
                if len(bucket) > LARGE_BUCKET:
                    for a, b in self._bucket_matches(bucket):
                        union(a, b)
                    continue
                for a, b in _all_pairs(bucket):
                    # Pairs already joined need no scoring: that is what keeps big clusters cheap.
                    if find(a) == find(b) or (a, b) in checked:
                        continue
                    checked.add((a, b))
                    if self._score(a, b) >= self.threshold:
                        union(a, b)
        groups: dict[int, list[int]] = defaultdict(list)
        for member in parent:
            groups[find(member)].append(member)
        return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def _discard(table: dict[int, list[int]], key: int, pair_id: int) -> None:
    bucket = table.get(key)
    if bucket is None:
        return
    try:
        bucket.remove(pair_id)
    except ValueError:
        return
    if not bucket:
        del table[key]


def _all_pairs(ids: Sequence[int]) -> Iterable[tuple[int, int]]:
    ordered = sorted(ids)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            yield a, b


_DIFF_TOKEN = re.compile(r"\s+|[^\s]+")


def diff_words(a: str, b: str) -> list[tuple[str, str]]:
    """A word-level diff turning ``a`` into ``b``: ("equal" | "insert" | "delete" | "replace", text) runs.

    "equal" and "delete" carry ``a``'s text, "insert" and "replace" carry ``b``'s (the replaced words of
    ``a`` are not repeated, so a view shows "replace" runs as changed text).
    """
    tokens_a, tokens_b = _DIFF_TOKEN.findall(a), _DIFF_TOKEN.findall(b)
    matcher = difflib.SequenceMatcher(a=tokens_a, b=tokens_b, autojunk=False)
    runs: list[tuple[str, str]] = []
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        text = "".join(tokens_b[b0:b1]) if op in ("insert", "replace") else "".join(tokens_a[a0:a1])
        if runs and runs[-1][0] == op:
            runs[-1] = (op, runs[-1][1] + text)
        else:
            runs.append((op, text))
    return runs


# ---------------------------------------------------------------------- store-level passes


def _best_key(pair: Pair) -> tuple[int, int, float, int, int, int]:
    """Sort key of "best pair first": accepted, fewest warnings, highest score, grounded, longest, oldest."""
    status_rank = {PairStatus.ACCEPTED: 0, PairStatus.PENDING: 1, PairStatus.REJECTED: 2}[pair.status]
    score = pair.score if pair.score is not None else -1.0
    return (status_rank, len(pair.warnings), -score, 0 if pair.sources else 1, -len(pair.response), pair.id or 0)


def find_clusters(
    store: Store, threshold: float | None = None, *, keep: Literal["best", "first"] = "best"
) -> list[Cluster]:
    """Near-duplicate clusters of the store's non-rejected pairs, each with the pair to keep and those to remove."""
    index = NearDuplicateIndex.from_store(store, threshold)
    groups = index.clusters()
    clusters: list[Cluster] = []
    for start in range(0, len(groups), 200):
        part = groups[start : start + 200]
        pairs = {p.id: p for p in store.get_pairs([i for g in part for i in g])}
        for group in part:
            members = [pairs[i] for i in group if i in pairs]
            if len(members) < 2:
                continue
            ranked = sorted(members, key=_best_key) if keep == "best" else sorted(members, key=lambda p: p.id or 0)
            keeper = ranked[0].id or 0
            clusters.append(Cluster(pair_ids=group, keep=keeper, remove=[p.id or 0 for p in ranked[1:]]))
    return clusters


def dedup(
    store: Store,
    threshold: float | None = None,
    keep: Literal["best", "first"] = "best",
    dry_run: bool = True,
) -> DedupResult:
    """Find near-duplicate clusters and (unless ``dry_run``) delete all but the kept pair of each.

    Removals are one undoable step (``store.delete_pairs(..., action="dedup")``, so `pairforge undo` brings
    them back) and one pipeline-log entry listing every cluster. ``keep="best"`` keeps accepted over pending,
    then fewer warnings, higher judge score, grounded, longer answer; ``keep="first"`` keeps the oldest.
    """
    if keep not in ("best", "first"):
        raise ValueError(f"keep must be 'best' or 'first', not {keep!r}")
    used = store.settings.quality.near_duplicate_threshold if threshold is None else threshold
    clusters = find_clusters(store, used, keep=keep)
    removed = [i for c in clusters for i in c.remove]
    if not dry_run and removed:
        store.delete_pairs(removed, action="dedup")
        store.log(
            step="dedup",
            action="delete",
            count=len(removed),
            message=f"Removed {len(removed)} near-duplicate pair(s) from {len(clusters)} cluster(s) at threshold {used:g}, keeping the {keep} of each.",
            detail={"threshold": used, "keep": keep, "clusters": [{"keep": c.keep, "removed": c.remove} for c in clusters]},
        )
    return DedupResult(threshold=used, keep=keep, dry_run=dry_run, clusters=clusters, removed=removed)


__all__ = [
    "Cluster",
    "DedupResult",
    "NearDuplicateIndex",
    "SimilarPair",
    "dedup",
    "diff_words",
    "find_clusters",
    "similarity",
]
