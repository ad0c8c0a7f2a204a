"""Near-duplicate index: exact normalized hashes plus fuzzy instruction matching with rarest-word blocking.

Blocking: each instruction's content words (stopwords dropped) are ranked by how few indexed instructions use
them; every 2-combination of its RAREST_WORDS rarest words is a block key, and only pairs sharing a block are
length-filtered and scored, element-wise in rapidfuzz's native loops. The score is the best of ratio and
token_sort_ratio of the normalized instructions and ratio of their content words, so typos, reorderings and
"How do I" / "How can I" paraphrases all count. Small indexes are compared all against all.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Literal

import numpy as np
from rapidfuzz import fuzz, process

from engine.models import Pair, PairStatus
from engine.quality.textstats import ENGLISH_STOPWORDS, normalize

if TYPE_CHECKING:
    from engine.store import Store

# Exact response matches only count when the answer says something (not "Yes." twice).
MIN_RESPONSE_CHARS_FOR_EXACT = 40
# Blocking keys are the 2-combinations of an instruction's RAREST_WORDS rarest content words.
RAREST_WORDS = 4
# Blocks with more members than this say only "these share two common words" and are not scored.
MAX_BLOCK = 160
# Indexes this small are compared all against all (exact, and cheaper than blocking).
SMALL_INDEX = 600
# Pairs indexed between calls to ``from_store``'s ``pause``.
FROM_STORE_PAUSE_EVERY = 200


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


def _pair_key(pair: Pair) -> int:
    return hash("\x1f".join(normalize(m.content) for m in pair.messages) + "\x1e" + normalize(pair.context or ""))


class NearDuplicateIndex:
    """Incremental near-duplicate index over pairs; never compares all pairs with all pairs (beyond a small size)."""

    def __init__(self, threshold: float = 90.0) -> None:
        self.threshold = float(threshold)
        # Threads for the native scoring loops: every core by default; an interactive caller
        # sets 1 so the interface keeps a core to itself.
        self.workers = -1
        self._instruction: dict[int, str] = {}
        self._content: dict[int, str] = {}
        self._words: dict[int, tuple[str, ...]] = {}
        self._frequency: Counter[str] = Counter()
        self._postings: dict[str, set[int]] = defaultdict(set)
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
    def from_store(
        cls, store: Store, threshold: float | None = None, *, include_rejected: bool = False,
        pause: Callable[[], None] | None = None,
    ) -> NearDuplicateIndex:
        """An index over the store's pairs (rejected ones left out unless asked), streamed in batches.

        ``pause``, if given, is called every few hundred pairs (an interactive caller waits there while its user types).
        """
        index = cls(store.settings.quality.near_duplicate_threshold if threshold is None else threshold)
        for n, pair in enumerate(store.iter_pairs()):
            if pause is not None and n % FROM_STORE_PAUSE_EVERY == 0:
                pause()
            if include_rejected or pair.status is not PairStatus.REJECTED:
                index.add(pair)
        return index

    # ------------------------------------------------------------------ updates

    def add(self, pair: Pair) -> None:
        """Index a saved pair (one with an id); re-adding an id replaces it."""
        if pair.id is None:
            raise ValueError("only saved pairs (with an id) can be indexed")
        self._add(pair.id, normalize(pair.instruction), normalize(pair.response), _pair_key(pair))

    def _add(self, pair_id: int, instruction: str, response: str, whole: int) -> None:
        if pair_id in self._instruction:
            self.remove(pair_id)
        content = content_form(instruction)
        self._instruction[pair_id] = instruction
        self._content[pair_id] = content
        unique_words = tuple(dict.fromkeys(content.split()))
        self._words[pair_id] = unique_words
        self._frequency.update(unique_words)
        for word in unique_words:
            self._postings[word].add(pair_id)
        instr = hash(instruction)
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
        for word in self._words.pop(pair_id):
            self._frequency[word] -= 1
            postings = self._postings[word]
            postings.discard(pair_id)
            if not postings:
                del self._postings[word]
                del self._frequency[word]
        whole, instr, resp = self._hashes.pop(pair_id)
        _discard(self._exact_pair, whole, pair_id)
        _discard(self._exact_instruction, instr, pair_id)
        if resp is not None:
            _discard(self._exact_response, resp, pair_id)

    def update(self, pair: Pair) -> None:
        """Re-index an edited pair."""
        self.add(pair)

    # ------------------------------------------------------------------ queries

    def _rarest(self, words: Iterable[str], minimum: int) -> list[str]:
        """The RAREST_WORDS rarest of ``words`` seen at least ``minimum`` times (rarity ties broken by the word)."""
        frequency = self._frequency
        usable = [w for w in words if frequency[w] >= minimum]
        usable.sort(key=lambda w: (frequency[w], w))
        return usable[:RAREST_WORDS]

    def _query_candidates(self, words: Sequence[str], own: int | None) -> set[int]:
        if len(self._instruction) <= SMALL_INDEX:
            return set(self._instruction)
        # A word seen only in the query pair itself cannot be shared with anything else.
        minimum = 2 if own in self._instruction else 1
        rarest = self._rarest(words, minimum)
        if len(rarest) == 1:
            return set(self._postings[rarest[0]])
        found: set[int] = set()
        for a, b in combinations(rarest, 2):
            small, large = sorted((self._postings[a], self._postings[b]), key=len)
            found.update(small & large)
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
        candidates = [c for c in self._query_candidates(tuple(dict.fromkeys(content.split())), own) if c != own and c not in best]
        if candidates:
            scores = self._scores([instruction], [content], [self._instruction[c] for c in candidates], [self._content[c] for c in candidates], cross=True)
            for other, score in zip(candidates, scores[0].tolist(), strict=True):
                if score >= self.threshold:
                    offer(other, score, "instruction")
        ranked = sorted(best.values(), key=lambda s: (-s.score, s.field != "pair", s.pair_id))
        return ranked[:limit]

    def _scores(self, plain_a: Sequence[str], content_a: Sequence[str], plain_b: Sequence[str], content_b: Sequence[str], *, cross: bool) -> np.ndarray:
        """Best-of-three similarity, 0 below the threshold: a matrix (``cross``) or element-wise, in native loops."""
        run = process.cdist if cross else process.cpdist
        cut = self.threshold
        return np.maximum.reduce([
            run(plain_a, plain_b, scorer=fuzz.ratio, score_cutoff=cut, dtype=np.float32, workers=self.workers),
            run(plain_a, plain_b, scorer=fuzz.token_sort_ratio, score_cutoff=cut, dtype=np.float32, workers=self.workers),
            run(content_a, content_b, scorer=fuzz.ratio, score_cutoff=cut, dtype=np.float32, workers=self.workers),
        ])

    def _fuzzy_edges(self) -> list[tuple[int, int]]:
        """Verified fuzzy matches (a < b): all against all when small, else within rarest-word blocks."""
        ids = sorted(self._instruction)
        plain = [self._instruction[i] for i in ids]
        content = [self._content[i] for i in ids]
        if len(ids) < 2:
            return []
        if len(ids) <= SMALL_INDEX:
            rows, cols = np.nonzero(np.triu(self._scores(plain, content, plain, content, cross=True) >= self.threshold, 1))
            return [(ids[r], ids[c]) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)]
        blocks: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for position, pair_id in enumerate(ids):
            rarest = self._rarest(self._words[pair_id], 2)
            if len(rarest) == 1:
                blocks[(rarest[0],)].append(position)
            for key in combinations(rarest, 2):
                blocks[key].append(position)
        by_size: dict[int, list[list[int]]] = defaultdict(list)
        for members in blocks.values():
            if 2 <= len(members) <= MAX_BLOCK:
                by_size[len(members)].append(members)
        left_parts, right_parts = [], []
        for size, groups in by_size.items():
            matrix = np.asarray(groups, dtype=np.int64)
            upper, lower = np.triu_indices(size, 1)
            left_parts.append(matrix[:, upper].ravel())
            right_parts.append(matrix[:, lower].ravel())
        if not left_parts:
            return []
        n = len(ids)
        codes = np.unique(np.concatenate(left_parts) * n + np.concatenate(right_parts))
        left, right = codes // n, codes % n
        # A ratio of T% bounds the length gap: |len(a) - len(b)| <= (1 - T/100) * (len(a) + len(b)).
        slack = 1 - self.threshold / 100
        plain_len = np.fromiter(map(len, plain), dtype=np.int64, count=n)
        content_len = np.fromiter(map(len, content), dtype=np.int64, count=n)
        fits = (np.abs(plain_len[left] - plain_len[right]) <= slack * (plain_len[left] + plain_len[right])) | (
            np.abs(content_len[left] - content_len[right]) <= slack * (content_len[left] + content_len[right])
        )
        left, right = left[fits], right[fits]
        plain_arr, content_arr = np.asarray(plain, dtype=object), np.asarray(content, dtype=object)
        found: list[tuple[int, int]] = []
        step = 1_000_000
        for start in range(0, len(left), step):
            a, b = left[start : start + step], right[start : start + step]
            scores = self._scores(plain_arr[a].tolist(), content_arr[a].tolist(), plain_arr[b].tolist(), content_arr[b].tolist(), cross=False)
            hit = scores >= self.threshold
            found.extend(zip((ids[i] for i in a[hit].tolist()), (ids[i] for i in b[hit].tolist()), strict=True))
        return found

    def edges(self) -> set[tuple[int, int]]:
        """Every near-duplicate pair of ids (a < b) the index can see: exact matches and verified fuzzy ones."""
        found: set[tuple[int, int]] = set()
        for group in self._exact_groups():
            found.update(_all_pairs(group))
        found.update(self._fuzzy_edges())
        return found

    def _exact_groups(self) -> Iterable[list[int]]:
        for table in (self._exact_pair, self._exact_instruction, self._exact_response):
            for group in table.values():
                if len(group) > 1:
                    yield group

    def clusters(self, edges: Iterable[tuple[int, int]] | None = None) -> list[list[int]]:
        """Groups of two or more near-duplicate pairs (connected components), each sorted, sorted by first id.

        ``edges`` (from ``edges()``) saves finding the fuzzy matches a second time.
        """
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

        if edges is None:
            for group in self._exact_groups():
                for other in group[1:]:
                    union(group[0], other)
            edges = self._fuzzy_edges()
        for a, b in edges:
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
