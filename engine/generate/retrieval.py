"""Lexical search over a project's chunks: BM25, pure Python, no network.

Used to pick multi-hop partners (related chunks of other documents) and to verify
that a refusal topic is really absent from the corpus.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine.models import Chunk

_TOKEN = re.compile(r"[a-z0-9][a-z0-9_]*")
# Common English and prompt words: they match everything and so tell nothing.
_STOPWORD_TEXT = """a about above after again all also an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers him his how i if in into is it its itself just me more most my no nor not
    now of off on once only or other our ours out over own same she should so some such than that the
    their them then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours use used using get set one two
    way ways best good new make like need want know tell explain does work works"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens without stop words; ``snake_case`` and ``dotted.names`` also split."""
    words: list[str] = []
    for token in _TOKEN.findall(text.lower().replace(".", " ")):
        if token in STOPWORDS or len(token) < 2:
            continue
        words.append(token)
        if "_" in token:
            words.extend(part for part in token.split("_") if len(part) > 1 and part not in STOPWORDS)
    return words


@dataclass
class SearchHit:
    """A chunk found by a query, with its BM25 score."""

    chunk_id: int
    document_id: int
    score: float


@dataclass
class CorpusIndex:
    """A BM25 index over chunks (k1=1.5, b=0.75) with each chunk's concepts."""

    k1: float = 1.5
    b: float = 0.75
    chunk_ids: list[int] = field(default_factory=list)
    document_ids: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    postings: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    concepts: list[list[str]] = field(default_factory=list)
    term_counts: list[Counter[str]] = field(default_factory=list)
    concept_set: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, chunks: Iterable[Chunk]) -> CorpusIndex:
        """Index ``chunks`` (retired ones skipped); returns the index."""
        index = cls()
        for chunk in chunks:
            if chunk.retired or chunk.id is None:
                continue
            position = len(index.chunk_ids)
            terms = tokenize(" ".join([*chunk.heading_path, chunk.text]))
            counts = Counter(terms)
            index.chunk_ids.append(chunk.id)
            index.document_ids.append(chunk.document_id or 0)
            index.lengths.append(len(terms))
            index.term_counts.append(counts)
            concepts = [c.lower() for c in chunk.concepts if len(c) >= 3]
            index.concepts.append(concepts)
            index.concept_set.update(concepts)
            for term, n in counts.items():
                index.postings.setdefault(term, []).append((position, n))
        return index

    def __len__(self) -> int:
        return len(self.chunk_ids)

    @property
    def _avg_length(self) -> float:
        return (sum(self.lengths) / len(self.lengths)) if self.lengths else 1.0

    def idf(self, term: str) -> float:
        """BM25's inverse document frequency of ``term`` (the largest value for an unseen term)."""
        n = len(self.chunk_ids)
        df = len(self.postings.get(term, ()))
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def _scores(self, terms: Sequence[str]) -> dict[int, float]:
        scores: dict[int, float] = {}
        avg = self._avg_length
        for term in set(terms):
            postings = self.postings.get(term)
            if not postings:
                continue
            idf = self.idf(term)
            for position, tf in postings:
                norm = tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * self.lengths[position] / avg))
                scores[position] = scores.get(position, 0.0) + idf * norm
        return scores

    def search(self, query: str, k: int = 5, *, exclude_document: int | None = None) -> list[SearchHit]:
        """The ``k`` best chunks for ``query``, best first."""
        scores = self._scores(tokenize(query))
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        hits = []
        for position, score in ranked:
            if exclude_document is not None and self.document_ids[position] == exclude_document:
                continue
            hits.append(SearchHit(self.chunk_ids[position], self.document_ids[position], score))
            if len(hits) == k:
                break
        return hits

    def related(self, chunk_id: int, k: int = 5) -> list[SearchHit]:
        """Chunks of OTHER documents most related to ``chunk_id``: BM25 over its top terms plus shared concepts."""
        try:
            position = self.chunk_ids.index(chunk_id)
        except ValueError:
            return []
        counts = self.term_counts[position]
        # The chunk's most distinctive terms make the query: tf x idf, top 24.
        query = sorted(counts, key=lambda t: -counts[t] * self.idf(t))[:24]
        scores = self._scores(query)
        own_concepts = set(self.concepts[position])
        own_document = self.document_ids[position]
        best = max(scores.values(), default=1.0) or 1.0
        combined: list[tuple[float, int]] = []
        for other, score in scores.items():
            if self.document_ids[other] == own_document:
                continue
            shared = len(own_concepts.intersection(self.concepts[other]))
            # A shared named concept is strong evidence two chunks talk about the same thing.
            combined.append((score / best + 0.25 * shared, other))
        combined.sort(key=lambda item: (-item[0], item[1]))
        return [SearchHit(self.chunk_ids[p], self.document_ids[p], s) for s, p in combined[:k]]

    def topic_coverage(self, topic: str) -> float:
        """How much of ``topic`` the best single chunk covers, from 0 (nothing) to 1 (every term).

        The share of the topic's IDF weight whose terms all occur in the best BM25 match.
        """
        terms = list(dict.fromkeys(tokenize(topic)))
        if not terms or not self.chunk_ids:
            return 0.0
        weights = {t: self.idf(t) for t in terms}
        total = sum(weights.values()) or 1.0
        scores = self._scores(terms)
        if not scores:
            return 0.0
        best = max(scores, key=lambda p: scores[p])
        present = self.term_counts[best]
        return sum(w for t, w in weights.items() if t in present) / total

    def concept_hit(self, topic: str) -> str | None:
        """A corpus concept named in ``topic`` (as whole words), or None."""
        lowered = f" {' '.join(tokenize(topic))} "
        for concept in self.concept_set:
            words = " ".join(tokenize(concept))
            if len(words) >= 4 and f" {words} " in lowered:
                return concept
        return None

    def is_absent(self, topic: str, *, threshold: float = 0.34) -> bool:
        """True when the corpus does not cover ``topic``: low coverage and no concept named in it."""
        return self.topic_coverage(topic) < threshold and self.concept_hit(topic) is None


__all__ = ["STOPWORDS", "CorpusIndex", "SearchHit", "tokenize"]
