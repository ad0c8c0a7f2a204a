"""Figures about the exported pairs, gathered while they stream out, for the dataset card."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from engine.export.rows import Conversation, PairRecord
from engine.models import Message, Role
from engine.quality.diversity import DiversityReport, DiversityTally, instruction_words
from engine.quality.tokens import TEMPLATE_TOKENS_PER_MESSAGE

# Context windows trainers commonly use; the card recommends the smallest that fits.
SEQ_LENGTHS = (256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)


def _percentile(sorted_values: list[int], fraction: float) -> int:
    if not sorted_values:
        return 0
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


@dataclass
class ExportStats:
    """Counts by kind, mode, status, split and source; token counts; models; judge scores."""

    chunk_documents: dict[int, str] = field(default_factory=dict)
    token_counter: Any = None
    total: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    splits: Counter[str] = field(default_factory=Counter)
    documents: Counter[str] = field(default_factory=Counter)
    models: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    refusal_sources: Counter[str] = field(default_factory=Counter)
    scores: list[float] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    multi_turn: int = 0
    with_context: int = 0
    language_sample: list[str] = field(default_factory=list)
    instructions: list[tuple[str, str, str]] = field(default_factory=list)
    """(kind, mode, instruction words) of every exported pair, for the diversity figures."""

    def add(self, pair: PairRecord, conv: Conversation, split: str) -> None:
        """Count one exported pair."""
        self.total += 1
        self.kinds[pair.kind] += 1
        self.modes[pair.mode] += 1
        self.statuses[pair.status] += 1
        self.splits[split] += 1
        for document in self._documents_of(pair):
            self.documents[document] += 1
        origin = pair.origin
        backend, model = origin.get("backend"), origin.get("model")
        if model or backend:
            self.models[(backend or "?", model or "?", origin.get("prompt_version") or "-")] += 1
        elif origin.get("source_file"):
            self.models[("imported", origin.get("source_format") or "?", "-")] += 1
        else:
            self.models[("written by hand", "-", "-")] += 1
        for warning in pair.warnings:
            self.warnings[warning["check"]] += 1
        if pair.kind == "refusal":
            self.refusal_sources[origin.get("refusal_source") or "unrecorded"] += 1
        if pair.score is not None:
            self.scores.append(pair.score)
        if len(self.language_sample) < 50:
            self.language_sample.append(conv.turns[-1][1])
        if conv.turns:
            self.instructions.append((pair.kind, pair.mode, instruction_words(conv.turns[0][0])))
        if len(conv.turns) > 1:
            self.multi_turn += 1
        if conv.context:
            self.with_context += 1
        if self.token_counter is not None:
            self.tokens.append(self._count_tokens(pair, conv))

    def _documents_of(self, pair: PairRecord) -> set[str] | tuple[str, ...]:
        found = {self.chunk_documents[c] for c in pair.sources if c in self.chunk_documents}
        if not found and pair.origin.get("source_file"):
            found.add(pair.origin["source_file"])
        return found or ("(none)",)

    def _count_tokens(self, pair: PairRecord, conv: Conversation) -> int:
        # Count the conversation exactly as exported (system rule applied, context folded).
        if getattr(self.token_counter, "estimated", False):
            # The estimate needs no Pair: the counter's own per-message formula, applied directly.
            estimate = self.token_counter.estimate_text
            return sum(estimate(content) + TEMPLATE_TOKENS_PER_MESSAGE for _, content in conv._chat)
        messages = [Message.model_construct(role=Role(role), content=content) for role, content in conv.chat()]
        full = pair.to_pair()
        return int(self.token_counter.count_pair(full.model_copy(update={"messages": messages, "context": None})))

    def token_summary(self) -> dict[str, int]:
        """Min, mean, median, p95, p99 and max token counts of the exported conversations."""
        values = sorted(self.tokens)
        if not values:
            return {}
        return {
            "min": values[0],
            "mean": round(sum(values) / len(values)),
            "median": _percentile(values, 0.5),
            "p95": _percentile(values, 0.95),
            "p99": _percentile(values, 0.99),
            "max": values[-1],
        }

    def recommended_max_seq_length(self) -> int | None:
        """The smallest common context window that holds every exported conversation."""
        if not self.tokens:
            return None
        longest = max(self.tokens)
        return next((n for n in SEQ_LENGTHS if n >= longest), SEQ_LENGTHS[-1])

    def over_length(self, limit: int) -> int:
        """How many exported conversations are longer than ``limit`` tokens."""
        return sum(1 for n in self.tokens if n > limit)

    def diversity(self) -> DiversityReport:
        """Openers, distinct-2 and length spread of the exported instructions."""
        tally = DiversityTally()
        tally.add_many(self.instructions)
        return tally.report()

    def score_histogram(self) -> list[tuple[str, int]]:
        """Judge scores in ten one-point buckets (0-1, ..., 9-10)."""
        buckets = Counter(min(9, max(0, int(score))) for score in self.scores)
        return [(f"{b}-{b + 1}", buckets.get(b, 0)) for b in range(10)]
