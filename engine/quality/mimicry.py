"""Copies of the source in an answer's prose: runs of copied words, tolerant to small edits, with their spans.

The answer and its sources are reduced to prose words (``engine.quality.prose``). Every run of
``SEED_WORDS`` answer words found in a source chunk is a seed; seeds in the same order in both texts,
with at most ``MAX_GAP_WORDS`` words between them on either side, chain into one copied run. So a
copied sentence with a word changed, dropped or inserted every few words is still one run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.models import Chunk
from engine.quality.prose import ProseWord, prose_words
from engine.quality.sources import SEED_WORDS, source_facts

MAX_GAP_WORDS = 3
# Runs shorter than this count toward nothing: a shared phrase such as "the dead letter queue" is not a copy.
SHARE_MIN_RUN_WORDS = 6
# The copied share is judged only on answers with this much prose.
SHARE_MIN_PROSE_WORDS = 20


@dataclass(frozen=True)
class CopiedSpan:
    """One copied run: where it sits in the answer and in which source chunk, with offsets in both."""

    words: int
    """Answer prose words the run spans (small edits inside it included)."""
    answer_start: int
    answer_end: int
    chunk_index: int
    """Position of the chunk in the sources given to the check."""
    chunk_id: int | None
    source_start: int
    """Offset in the chunk's text."""
    source_end: int


@dataclass(frozen=True)
class CopyReport:
    """Copied runs of an answer (longest first) and the share of its prose they cover."""

    spans: tuple[CopiedSpan, ...]
    prose_words: int
    copied_words: int

    @property
    def share(self) -> float:
        """Copied prose words over all prose words (0 when the answer has no prose)."""
        return self.copied_words / self.prose_words if self.prose_words else 0.0

    @property
    def longest(self) -> CopiedSpan | None:
        """The longest copied run, or None."""
        return self.spans[0] if self.spans else None


def find_copies(answer: str, sources: Sequence[Chunk], words: Sequence[ProseWord] | None = None) -> CopyReport:
    """The copied runs of ``answer``'s prose found in ``sources``, longest first, and the copied share.

    ``words`` are the answer's prose words when the caller has them already.
    """
    words = prose_words(answer) if words is None else words
    if len(words) < SEED_WORDS or not sources:
        return CopyReport((), len(words), 0)
    facts = [source_facts(chunk) for chunk in sources]
    tokens = [w.word for w in words]
    # Each chain: [chunk, first answer word, last seed's answer word, first source word, last seed's source word].
    chains: list[list[int]] = []
    open_chains: list[list[int]] = []
    for i in range(len(tokens) - SEED_WORDS + 1):
        gram = tuple(tokens[i : i + SEED_WORDS])
        hits = [(k, j) for k, f in enumerate(facts) for j in f.seeds.get(gram, ())]
        if not hits:
            continue
        still_open = [c for c in open_chains if i - c[2] <= SEED_WORDS + MAX_GAP_WORDS]
        for k, j in hits:
            best: list[int] | None = None
            best_skew = MAX_GAP_WORDS + 1
            for chain in still_open:
                if chain[0] != k:
                    continue
                step_a, step_s = i - chain[2], j - chain[4]
                skew = abs(step_s - step_a)
                if step_a > 0 and step_s > 0 and skew < best_skew:
                    best, best_skew = chain, skew
            if best is not None:
                best[2], best[4] = i, j
            else:
                chain = [k, i, i, j, j]
                chains.append(chain)
                still_open.append(chain)
        open_chains = still_open
    spans: list[CopiedSpan] = []
    covered: set[int] = set()
    for k, first, last, source_first, source_last in chains:
        n_words = last + SEED_WORDS - first
        if n_words < SHARE_MIN_RUN_WORDS:
            continue
        chunk_words = facts[k].words
        spans.append(CopiedSpan(
            words=n_words, answer_start=words[first].start, answer_end=words[last + SEED_WORDS - 1].end,
            chunk_index=k, chunk_id=sources[k].id,
            source_start=chunk_words[source_first].start, source_end=chunk_words[source_last + SEED_WORDS - 1].end,
        ))
        covered.update(range(first, last + SEED_WORDS))
    spans.sort(key=lambda s: (-s.words, s.answer_start))
    return CopyReport(tuple(spans), len(words), len(covered))


__all__ = ["CopiedSpan", "CopyReport", "find_copies"]
