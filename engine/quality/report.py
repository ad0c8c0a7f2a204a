"""The dataset report: thresholds, composition, consistency, contradictions, token statistics, warnings.

``LiveReport.build(store)`` reads the store once (streamed), keeps a few facts per pair, and then stays
current from the store's pair-change notifications: each change adjusts counters and a sorted token list,
so an update costs microseconds, not a recount.

Changes arrive on whichever thread wrote the pair and snapshots are taken on others, so one lock owns
every counter: ``apply`` changes them under it, and ``counts()`` copies them under it into an immutable
``ReportCounts`` that the rest of the report (and any caller) reads without the lock.
"""

from __future__ import annotations

import bisect
import json
import math
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.models import Pair, PairKind, PairStatus, utcnow
from engine.quality.diversity import DiversityReport, DiversityTally, instruction_words
from engine.quality.review import ReviewVerdict, review_verdict, stratified_sample
from engine.quality.textstats import answer_style, guess_language
from engine.quality.tokens import TokenCounter

if TYPE_CHECKING:
    from engine.quality.dedup import NearDuplicateIndex, SimilarPair
    from engine.store import PairChange, Store

Status = Literal["ok", "warning", "missing"]

# The field's guide: pairs needed for a corpus of N documents (lower, upper).
CORPUS_GUIDE: tuple[tuple[int, int, int, int], ...] = (
    (1, 5, 500, 1000),
    (6, 20, 1000, 2000),
    (21, 50, 2000, 5000),
    (51, 10**9, 5000, 5000),
)
CONTRADICTION_MAX_ANSWER_SIMILARITY = 60.0
# Near-duplicate edges examined for contradictions at most, fetched this many at a time.
CONTRADICTION_MAX_EDGES = 200_000
CONTRADICTION_BATCH = 2_000


class Threshold(BaseModel):
    """One dataset-level target: the value, the target, a status and what is missing."""

    name: str
    value: int
    target: int
    status: Status
    shortfall: int
    message: str


class Contradiction(BaseModel):
    """Two near-identical questions with materially different answers."""

    pair_ids: tuple[int, int]
    question_similarity: float
    answer_similarity: float


class TokenStats(BaseModel):
    """Token statistics of the (non-rejected) pairs."""

    count: int = 0
    min: int = 0
    max: int = 0
    mean: float = 0.0
    median: float = 0.0
    p95: int = 0
    recommended_max_seq_length: int = 0
    truncated_at_recommended: int = 0
    over_configured_max: int = 0
    configured_max_seq_length: int = 0
    estimated: bool = True
    tokenizer: str = ""


class DocumentShare(BaseModel):
    """How many pairs draw on one document."""

    document_id: int
    path: str
    pairs: int


class DatasetReport(BaseModel):
    """A snapshot of everything known about the dataset as a whole (read-only: a copy nobody else changes)."""

    model_config = ConfigDict(frozen=True)

    generated_at: datetime = Field(default_factory=utcnow)
    total: int
    by_status: dict[str, int]
    thresholds: list[Threshold]
    by_mode: dict[str, int]
    by_kind: dict[str, int]
    documents: list[DocumentShare]
    composition_warnings: list[str]
    style_by_mode: dict[str, dict[str, int]]
    with_system_prompt: int
    languages: dict[str, int]
    consistency_warnings: list[str]
    contradictions: list[Contradiction]
    duplicate_clusters: list[list[int]] = Field(default_factory=list, description="Near-duplicate groups (first 100).")
    tokens: TokenStats
    warning_counts: dict[str, int]
    diversity: DiversityReport = Field(default_factory=DiversityReport)
    review: ReviewVerdict = Field(default_factory=ReviewVerdict)

    @property
    def missing(self) -> bool:
        """Whether any threshold is missing (``pairforge check`` exits 1)."""
        return any(t.status == "missing" for t in self.thresholds)


@dataclass(frozen=True)
class _Facts:
    """What the report needs to remember about one pair."""

    kind: str
    mode: str
    status: str
    documents: tuple[int, ...]
    checks: tuple[str, ...]
    tokens: int
    style: str
    has_system: bool
    language: str
    score: float | None
    words: str
    """The instruction's words (``instruction_words``), for the diversity measures."""


def round_up_seq_length(tokens: int) -> int:
    """``tokens`` rounded up to the nearer of the next power of two and the next multiple of 256 (min 128)."""
    if tokens <= 128:
        return 128
    power = 1 << math.ceil(math.log2(tokens))
    multiple = math.ceil(tokens / 256) * 256
    return min(power, multiple)


def _status_for(value: int, target: int, warn_from: int) -> Status:
    if value >= target:
        return "ok"
    return "warning" if value >= warn_from else "missing"


# Pairs read between calls to the build's ``pause`` (about 10 ms of work).
BUILD_PAUSE_EVERY = 100
# Changes counted per hold of the report's lock, so a big batch (a recheck of every pair) never
# keeps a snapshot, or the interface asking for ``pair_count``, waiting for long.
APPLY_PER_LOCK = 500


@dataclass(frozen=True)
class ReportCounts:
    """The live report's counters at one moment: copies, so they never change under the reader."""

    pairs: int
    """Pairs counted, every status included."""
    statuses: Mapping[str, int]
    """Pairs per status (rejected ones included)."""
    kinds: Mapping[str, int]
    """Pairs per kind, rejected ones left out (as in every figure below)."""
    modes: Mapping[str, int]
    """Pairs per mode."""
    documents: Mapping[int, int]
    """Pairs citing a chunk of each document, by document id."""
    checks: Mapping[str, int]
    """Pairs carrying each check's warning."""
    styles: Mapping[str, Mapping[str, int]]
    """Answer styles (bullets, prose) per mode."""
    languages: Mapping[str, int]
    """Answers per guessed language."""
    with_system: int
    """Pairs with a system prompt."""
    tokens: TokenStats
    """Token statistics of the pairs."""
    diversity: DiversityReport
    """Openers, distinct-2 and length spread of the instructions."""

    @property
    def total(self) -> int:
        """Pairs in the dataset (every status but rejected)."""
        return sum(self.kinds.values())


@dataclass
class CrossChecks:
    """Near-duplicate groups (by first id) and contradictions, from one pass over the index."""

    clusters: list[list[int]]
    contradictions: list[Contradiction]


class LiveReport:
    """The dataset report kept current from store notifications; call ``close()`` to stop listening.

    Safe to use from several threads: ``_lock`` guards every counter below it.
    """

    def __init__(self, store: Store, counter: TokenCounter | None = None) -> None:
        self.store = store
        self.counter = counter or TokenCounter.from_settings(store.settings.quality)
        self._lock = threading.Lock()
        self._facts: dict[int, _Facts] = {}
        self._chunk_documents: dict[int, int] = {}
        self._kinds: Counter[str] = Counter()
        self._modes: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()
        self._documents: Counter[int] = Counter()
        self._checks: Counter[str] = Counter()
        self._styles: dict[str, Counter[str]] = defaultdict(Counter)
        self._languages: Counter[str] = Counter()
        self._with_system = 0
        self._tokens: list[int] = []
        self._token_sum = 0
        self._diversity = DiversityTally()
        # The near-duplicate index, built on first need. Changes reach it through a queue: the
        # thread that wrote a pair (perhaps the interface's) never waits for a long index query.
        self._index: NearDuplicateIndex | None = None
        self._index_lock = threading.Lock()
        self._index_wanted = False
        self._pause: Callable[[], None] | None = None
        self._index_changes: list[PairChange] = []
        self._index_changes_lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None

    @classmethod
    def build(
        cls, store: Store, *, counter: TokenCounter | None = None, pause: Callable[[], None] | None = None,
    ) -> LiveReport:
        """Compute the report from the store (streamed) and subscribe to its pair changes.

        ``pause``, if given, is called every few hundred pairs: an interactive caller can wait
        there while its user is typing, so a long build never makes the interface lag.
        """
        report = cls(store, counter)
        report._pause = pause
        # Listen before reading, so nothing written during the read is missed: changes that
        # arrive meanwhile wait, then replay in order (a replay sets a pair to its state after
        # the change, so one the read already saw is counted once).
        waiting: list[PairChange] = []
        gate = threading.Lock()
        live = False

        def follow(changes: Sequence[PairChange]) -> None:
            with gate:
                if not live:
                    waiting.extend(changes)
                    return
            report.apply(changes)

        report._unsubscribe = store.subscribe(follow)
        for chunk in store.list_chunks(include_retired=True):
            if chunk.id is not None and chunk.document_id is not None:
                report._chunk_documents[chunk.id] = chunk.document_id
        tokens: list[int] = []
        instructions: list[tuple[str, str, str]] = []
        for n, row in enumerate(store.iter_pair_rows()):
            if pause is not None and n % BUILD_PAUSE_EVERY == 0:
                pause()
            facts = report._facts_of_row(row)
            with report._lock:
                report._count(row["id"], facts, sign=1, insert_tokens=False)
            if facts.status != PairStatus.REJECTED:
                tokens.append(facts.tokens)
                instructions.append((facts.kind, facts.mode, facts.words))
        tokens.sort()
        with report._lock:
            report._tokens = tokens
            report._diversity.add_many(instructions)
        with gate:
            report.apply(waiting)
            live = True
        return report

    def close(self) -> None:
        """Stop following the store."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # ------------------------------------------------------------------ incremental upkeep

    def _documents_of(self, sources: Sequence[int]) -> tuple[int, ...]:
        with self._lock:
            unknown = [c for c in sources if c not in self._chunk_documents]
        if unknown:  # chunks imported after the report was built; read without the lock
            found = {c.id: c.document_id for c in self.store.get_chunks(unknown) if c.id is not None and c.document_id is not None}
            with self._lock:
                self._chunk_documents.update(found)
        with self._lock:
            return tuple(sorted({self._chunk_documents[c] for c in sources if c in self._chunk_documents}))

    def _facts_of(self, pair: Pair) -> _Facts:
        response = pair.response
        return _Facts(
            kind=str(pair.kind),
            mode=pair.mode,
            status=str(pair.status),
            documents=self._documents_of(pair.sources),
            checks=tuple(sorted({w.check for w in pair.warnings})),
            tokens=self.counter.count_pair(pair),
            style=answer_style(response),
            has_system=pair.system is not None,
            language=guess_language(response),
            score=pair.score,
            words=instruction_words(pair.instruction),
        )

    def _facts_of_row(self, row: dict[str, Any]) -> _Facts:
        """``_facts_of`` straight from a stored row: the full build reads every pair, so no model objects."""
        messages = json.loads(row["messages"])
        response = next((m["content"] for m in reversed(messages) if m["role"] == "assistant"), "")
        instruction = next((m["content"] for m in messages if m["role"] == "user"), "")
        origin = json.loads(row["origin"]) if row["origin"] != "{}" else {}
        warnings = json.loads(row["warnings"]) if row["warnings"] != "[]" else []
        sources = json.loads(row["sources"]) if row["sources"] != "[]" else []
        return _Facts(
            kind=row["kind"],
            mode=row["mode"],
            status=row["status"],
            documents=self._documents_of(sources),
            checks=tuple(sorted({w["check"] for w in warnings})),
            tokens=self.counter.count_messages(
                messages, context=row["context"], completion_tokens=origin.get("completion_tokens"),
                backend=origin.get("backend"),
            ),
            style=answer_style(response),
            has_system=any(m["role"] == "system" for m in messages),
            language=guess_language(response),
            score=row["score"],
            words=instruction_words(instruction),
        )

    def _count(self, pair_id: int, facts: _Facts, sign: int, *, insert_tokens: bool = True) -> None:
        """Add (``sign`` 1) or take away (-1) one pair's facts; the caller holds ``_lock``."""
        self._statuses[facts.status] += sign
        if sign > 0:
            self._facts[pair_id] = facts
        else:
            self._facts.pop(pair_id, None)
        if facts.status == PairStatus.REJECTED:
            return  # rejected pairs are out of the dataset: only their status is counted
        self._kinds[facts.kind] += sign
        self._modes[facts.mode] += sign
        for document in facts.documents:
            self._documents[document] += sign
        for check in facts.checks:
            self._checks[check] += sign
        self._styles[facts.mode][facts.style] += sign
        self._languages[facts.language] += sign
        self._with_system += sign if facts.has_system else 0
        self._token_sum += sign * facts.tokens
        if insert_tokens:  # a full build sorts its tokens and counts its instructions at once, at its end
            self._diversity.add(facts.kind, facts.mode, facts.words, sign)
            if sign > 0:
                bisect.insort(self._tokens, facts.tokens)
            else:
                position = bisect.bisect_left(self._tokens, facts.tokens)
                if position < len(self._tokens) and self._tokens[position] == facts.tokens:
                    del self._tokens[position]

    def apply(self, changes: Sequence[PairChange]) -> None:
        """Apply pair changes (what ``store.subscribe`` delivers); any thread may call it."""
        # Facts (token counts, chunk look-ups) are worked out before the lock is taken, so
        # a snapshot never waits for them; the counting itself is a few dict updates.
        prepared = [(c.pair_id, None if c.after is None else self._facts_of(c.after)) for c in changes]
        for start in range(0, len(prepared), APPLY_PER_LOCK):
            with self._lock:
                for pair_id, facts in prepared[start : start + APPLY_PER_LOCK]:
                    old = self._facts.get(pair_id)
                    if old is not None:
                        self._count(pair_id, old, sign=-1)
                    if facts is not None:
                        self._count(pair_id, facts, sign=1)
        if self._index_wanted:
            with self._index_changes_lock:
                self._index_changes.extend(changes)
            if self._index_lock.acquire(blocking=False):
                try:
                    self._catch_up_index()
                finally:
                    self._index_lock.release()

    def _catch_up_index(self) -> None:
        """Apply queued changes to the index (hold ``_index_lock``)."""
        if self._index is None:
            return
        with self._index_changes_lock:
            changes, self._index_changes = self._index_changes, []
        for change in changes:
            if change.after is None or change.after.status is PairStatus.REJECTED:
                self._index.remove(change.pair_id)
            else:
                self._index.update(change.after)

    def _current_index(self) -> NearDuplicateIndex:
        """The index, built on first use and caught up with every change (hold ``_index_lock``)."""
        from engine.quality.dedup import NearDuplicateIndex

        if self._index is None:
            self._index_wanted = True  # changes written while it builds are queued, then applied
            index = NearDuplicateIndex.from_store(self.store, pause=self._pause)
            if self._pause is not None:
                index.workers = 1  # an interactive caller: leave it a core
            self._index = index
        self._catch_up_index()
        return self._index

    # ------------------------------------------------------------------ snapshot

    def counts(self) -> ReportCounts:
        """A copy of every counter, taken at one moment under the report's lock."""
        with self._lock:
            return ReportCounts(
                pairs=len(self._facts),
                statuses=dict(self._statuses),
                kinds=dict(self._kinds),
                modes=dict(self._modes),
                documents=dict(self._documents),
                checks=dict(self._checks),
                styles={mode: dict(styles) for mode, styles in self._styles.items()},
                languages=dict(self._languages),
                with_system=self._with_system,
                tokens=self._token_stats(),
                diversity=self._diversity.report(),
            )

    def _thresholds(self, counts: ReportCounts) -> list[Threshold]:
        quality = self.store.settings.quality
        total = counts.total
        results: list[Threshold] = []

        def add(name: str, value: int, target: int, warn_from: int, what: str) -> None:
            status = _status_for(value, target, warn_from)
            shortfall = max(0, target - value)
            message = f"{value} {what} (target {target})" + (f": {shortfall} more needed." if shortfall else ".")
            results.append(Threshold(name=name, value=value, target=target, status=status, shortfall=shortfall, message=message))

        add("pairs", total, quality.min_pairs, quality.min_pairs // 2, "pairs")
        n_docs = len(self.store.list_documents())
        for low_docs, high_docs, lower, upper in CORPUS_GUIDE:
            if n_docs and low_docs <= n_docs <= high_docs:
                add("pairs_for_corpus", total, upper, lower, f"pairs for {n_docs} document(s), guide {lower}-{upper}")
                break
        refusals = counts.kinds.get(PairKind.REFUSAL, 0)
        add("refusals", refusals, quality.min_refusals, quality.min_refusals // 2, "refusal pairs")
        multi_hop = counts.kinds.get(PairKind.MULTI_HOP, 0)
        add("multi_hop", multi_hop, quality.min_multi_hop, quality.min_multi_hop // 2, "multi-hop pairs")
        return results

    def _token_stats(self) -> TokenStats:
        """Token statistics from the sorted token list; the caller holds ``_lock``."""
        quality = self.store.settings.quality
        values = self._tokens
        stats = TokenStats(
            estimated=self.counter.estimated, tokenizer=self.counter.name, configured_max_seq_length=quality.max_seq_length
        )
        if not values:
            return stats
        n = len(values)
        p95 = values[min(n - 1, math.ceil(0.95 * n) - 1)]
        median = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
        recommended = round_up_seq_length(p95)
        stats.count, stats.min, stats.max = n, values[0], values[-1]
        stats.mean = round(self._token_sum / n, 1)
        stats.median, stats.p95 = float(median), p95
        stats.recommended_max_seq_length = recommended
        stats.truncated_at_recommended = n - bisect.bisect_right(values, recommended)
        stats.over_configured_max = n - bisect.bisect_right(values, quality.max_seq_length)
        return stats

    def _composition_warnings(self, counts: ReportCounts, documents: list[DocumentShare]) -> list[str]:
        limit = self.store.settings.quality.max_category_share
        total = counts.total
        notes: list[str] = []
        if total >= 10:
            for label, by_name in (("mode", counts.modes), ("kind", counts.kinds)):
                for name, count in by_name.items():
                    if count / total > limit:
                        notes.append(
                            f"{count / total:.0%} of pairs have {label} {name} (limit {limit:.0%}); generate more of the other {label}s."
                        )
        for document in documents:
            if document.pairs == 0:
                notes.append(f"{document.path} has no pairs; generate some from it or remove it from the project.")
        return notes

    def _consistency_warnings(self, counts: ReportCounts) -> list[str]:
        total, with_system = counts.total, counts.with_system
        notes: list[str] = []
        for mode, styles in sorted(counts.styles.items()):
            bullets, prose = styles.get("bullets", 0), styles.get("prose", 0)
            count = bullets + prose
            if count >= 10 and min(bullets, prose) / count >= 0.2:
                notes.append(
                    f"Mode {mode} mixes styles: {bullets / count:.0%} bullet-list and {prose / count:.0%} prose answers; pick one per mode."
                )
        if 0 < with_system < total:
            notes.append(
                f"{with_system} of {total} pairs have a system prompt and the rest do not; give all or none one (export.system_prompt)."
            )
        languages = {k: v for k, v in counts.languages.items() if k != "unknown" and v > 0}
        if len(languages) > 1:
            main, _ = max(languages.items(), key=lambda kv: kv[1])
            others = {k: v for k, v in languages.items() if k != main and v >= max(2, 0.01 * total)}
            if others:
                listed = ", ".join(f"{v} in {k}" for k, v in sorted(others.items()))
                notes.append(f"Answers mix languages: most are in {main}, {listed}; translate or remove them.")
        return notes

    @property
    def index_ready(self) -> bool:
        """Whether the near-duplicate index has been built (queries no longer pay for building it)."""
        return self._index is not None

    def similar_to(self, pair: Pair, limit: int = 10) -> list[SimilarPair]:
        """The pairs most like ``pair`` (builds the near-duplicate index once)."""
        with self._index_lock:
            return self._current_index().similar_to(pair, limit)

    def cross_checks(self, limit: int = 50) -> CrossChecks:
        """The checks that compare pairs with each other: near-duplicate groups and contradictions.

        Builds the near-duplicate index once. Every near-duplicate edge is examined (up to
        CONTRADICTION_MAX_EDGES), so a contradiction inside a large group is not missed.
        """
        from engine.quality.dedup import similarity

        with self._index_lock:
            index = self._current_index()
            edges = sorted(index.edges())
            clusters = index.clusters(edges)
            threshold = index.threshold
        found: list[Contradiction] = []
        for start in range(0, min(len(edges), CONTRADICTION_MAX_EDGES), CONTRADICTION_BATCH):
            batch = edges[start : start + CONTRADICTION_BATCH]
            pairs = {p.id: p for p in self.store.get_pairs(sorted({i for edge in batch for i in edge}))}
            for a_id, b_id in batch:
                a, b = pairs.get(a_id), pairs.get(b_id)
                if a is None or b is None:
                    continue  # deleted since the index saw it
                question = similarity(a.instruction, b.instruction)
                if question < threshold:
                    continue
                answer = similarity(a.response, b.response)
                if answer < CONTRADICTION_MAX_ANSWER_SIMILARITY:
                    found.append(Contradiction(pair_ids=(a_id, b_id), question_similarity=round(question, 1), answer_similarity=round(answer, 1)))
                    if len(found) >= limit:
                        return CrossChecks(clusters=clusters, contradictions=found)
        return CrossChecks(clusters=clusters, contradictions=found)

    def snapshot(self, *, contradictions: bool = True) -> DatasetReport:
        """The report as it stands now: every count from one moment (``counts()``), whatever writes meanwhile."""
        cross = self.cross_checks() if contradictions else None
        counts = self.counts()
        listed = self.store.list_documents()
        # Pairs imported from a dataset file belong to that file's document without citing its chunks.
        imported_from = self.store.document_pair_counts() if any(
            counts.documents.get(d.id or 0, 0) == 0 for d in listed
        ) else {}
        documents = [
            DocumentShare(
                document_id=d.id or 0,
                path=Path(d.path).name if d.path else str(d.id),
                pairs=counts.documents.get(d.id or 0, 0) or imported_from.get(d.id or 0, 0),
            )
            for d in listed
        ]
        return DatasetReport(
            total=counts.total,
            by_status={k: v for k, v in counts.statuses.items() if v},
            thresholds=self._thresholds(counts),
            by_mode={k: v for k, v in Counter(counts.modes).most_common() if v},
            by_kind={k: v for k, v in Counter(counts.kinds).most_common() if v},
            documents=documents,
            composition_warnings=self._composition_warnings(counts, documents),
            style_by_mode={m: {k: v for k, v in s.items() if v} for m, s in sorted(counts.styles.items()) if sum(s.values())},
            with_system_prompt=counts.with_system,
            languages={k: v for k, v in Counter(counts.languages).most_common() if v},
            consistency_warnings=self._consistency_warnings(counts),
            contradictions=cross.contradictions if cross else [],
            duplicate_clusters=cross.clusters[:100] if cross else [],
            tokens=counts.tokens,
            warning_counts={k: v for k, v in Counter(counts.checks).most_common() if v},
            diversity=counts.diversity,
            review=review_verdict(self.store),
        )

    @property
    def pair_count(self) -> int:
        """Pairs the report counts (every status)."""
        with self._lock:
            return len(self._facts)

    @property
    def missing(self) -> bool:
        """Whether any threshold is missing right now."""
        return any(t.status == "missing" for t in self._thresholds(self.counts()))

    def review_sample(self, n: int = 20, seed: int | None = None, low_scores_first: bool = False) -> list[int]:
        """Up to ``n`` pair ids for a read-through, stratified over (kind, mode); lowest judge scores first if asked.

        A plain draw: ``engine.quality.review.draw_review_sample`` draws the stored, logged sample that gets a verdict.
        """
        with self._lock:
            facts = [(pair_id, f.kind, f.mode, f.score) for pair_id, f in self._facts.items() if f.status != PairStatus.REJECTED]
        return stratified_sample(facts, n, seed, low_scores_first=low_scores_first)


__all__ = [
    "Contradiction", "CrossChecks", "DatasetReport", "DocumentShare", "LiveReport", "ReportCounts", "Threshold", "TokenStats",
    "round_up_seq_length",
]
