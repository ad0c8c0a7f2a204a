"""What the checks need from a source chunk, worked out once per chunk and cached.

Many pairs share a chunk (every pair generated from it, and every re-check of them), so its prose
words, copy seeds and word stems are computed the first time a check asks and then reused.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from engine.models import Chunk
from engine.quality.prose import ProseWord, prose_words
from engine.quality.textstats import ENGLISH_STOPWORDS, content_words, stem

SEED_WORDS = 4
# Positions of one seed kept at most: a phrase repeated all over a chunk should not cost quadratic time.
MAX_SEED_POSITIONS = 8
CACHE_SIZE = 4096


@dataclass(frozen=True)
class SourceFacts:
    """One chunk's prose words, its seeds (runs of SEED_WORDS prose words -> positions) and content stems."""

    words: tuple[ProseWord, ...]
    seeds: dict[tuple[str, ...], list[int]]
    stems: frozenset[str]


def seed_ok(gram: tuple[str, ...]) -> bool:
    """Whether a run of words can seed a copy: one made only of stopwords ("it is one of") matches any text."""
    return any(w not in ENGLISH_STOPWORDS for w in gram)


def _facts(text: str) -> SourceFacts:
    words = tuple(prose_words(text))
    tokens = [w.word for w in words]
    seeds: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(tokens) - SEED_WORDS + 1):
        gram = tuple(tokens[i : i + SEED_WORDS])
        if seed_ok(gram):
            positions = seeds.setdefault(gram, [])
            if len(positions) < MAX_SEED_POSITIONS:
                positions.append(i)
    return SourceFacts(words, seeds, frozenset(stem(w) for w in content_words(text)))


_cache: dict[tuple[int | None, str], SourceFacts] = {}
_lock = threading.Lock()


def source_facts(chunk: Chunk) -> SourceFacts:
    """The chunk's facts, from the cache when its id and text were seen before."""
    key = (chunk.id, chunk.text)
    found = _cache.get(key)
    if found is None:
        found = _facts(chunk.text)
        with _lock:  # checks run on several threads (generation commits, re-checks)
            if len(_cache) >= CACHE_SIZE:
                _cache.clear()
            _cache[key] = found
    return found


def source_stems(chunks: list[Chunk] | tuple[Chunk, ...]) -> frozenset[str]:
    """The content-word stems of all ``chunks``."""
    if len(chunks) == 1:
        return source_facts(chunks[0]).stems
    return frozenset().union(*(source_facts(c).stems for c in chunks))


__all__ = ["SEED_WORDS", "SourceFacts", "seed_ok", "source_facts", "source_stems"]
