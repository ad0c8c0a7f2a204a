"""Embedding pass of near-duplicate detection: instructions close in meaning, not only in words.

The fuzzy index compares what instructions ask word by word, so "How do I make the worker give up after three
tries?" and "How do I cap retries at three?" score low. This optional pass asks the configured generation
backend's server for one embedding per distinct normalized instruction (Ollama's ``/api/embed`` or an
OpenAI-compatible ``/v1/embeddings``, with ``quality.embedding_model``), keeps every vector in the store per model
and sha256 of the normalized instruction (a second pass asks only for instructions not embedded before), and joins
two pairs whose instructions' cosine similarity is at least ``quality.embedding_threshold``. The all-pairs cosine
is a blocked matrix product: 100k instructions of 768 floats never need more than one block of scores at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import BackendError, BackendServerError, ConfigError
from engine.generate.backends import EmbeddingBackend, make_backend
from engine.models import PairStatus
from engine.quality.textstats import normalize
from engine.settings import ProjectSettings

if TYPE_CHECKING:
    from engine.store import Store
    from engine.store.embeddings import EmbeddingRepository

# Texts per embedding request: large enough to cost few round trips, small enough for any server's batch limit.
EMBED_BATCH = 64
# Rows and columns of one block of the cosine matrix (2048 x 2048 float32 scores is 16 MB).
COSINE_BLOCK = 2048

Progress = Callable[[int, int], None]


def instruction_key(instruction: str) -> str:
    """The cache key of an instruction: sha256 of its normalized text (so case and punctuation do not count)."""
    return hashlib.sha256(normalize(instruction).encode("utf-8")).hexdigest()


def embedding_backend(settings: ProjectSettings) -> EmbeddingBackend:
    """The backend that embeds: the generation backend's kind and first host, with ``quality.embedding_model``.

    Raises ConfigError when no embedding model is set, BackendError when the backend is the embedded one
    (it serves no embeddings).
    """
    model = settings.quality.embedding_model.strip()
    if not model:
        raise ConfigError(
            "No embedding model is set: set quality.embedding_model to one the generation server has "
            "(e.g. nomic-embed-text after `ollama pull nomic-embed-text`) to use the embedding pass."
        )
    generation = settings.generation
    if generation.backend == "llamacpp":
        raise BackendError(
            "The embedded backend serves no embeddings: set generation.backend to ollama or openai "
            "(a server with an embedding model) to use the embedding pass."
        )
    host = generation.hosts[0] if generation.hosts else None
    extra = {"api_key": os.environ.get(generation.api_key_env)} if generation.backend == "openai" else {}
    backend = make_backend(generation.backend, model, host, **extra)
    assert isinstance(backend, EmbeddingBackend)
    return backend


async def _embed_missing(
    backend: EmbeddingBackend, texts: Mapping[str, str], cache: EmbeddingRepository | None,
    batch_size: int, progress: Progress | None,
) -> dict[str, np.ndarray]:
    keys = list(texts)
    found: dict[str, np.ndarray] = {}
    try:
        for start in range(0, len(keys), batch_size):
            part = keys[start : start + batch_size]
            vectors = await backend.embed([texts[k] for k in part])
            batch = {k: np.asarray(v, dtype=np.float32) for k, v in zip(part, vectors, strict=True)}
            if cache is not None:
                cache.put_many(backend.model, batch)  # each batch kept at once: an interrupted pass loses none
            found.update(batch)
            if progress is not None:
                progress(len(found), len(keys))
    finally:
        await backend.aclose()
    return found


def embed_instructions(
    texts: Mapping[str, str], backend: EmbeddingBackend, *, cache: EmbeddingRepository | None = None,
    batch_size: int = EMBED_BATCH, progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """The embedding of each text of ``texts`` (by key), from ``cache`` when it has the key for the backend's model.

    Only the others are asked of ``backend``, ``batch_size`` per request, and each answered batch is cached at once.
    The backend is used in one event loop of this call and closed at its end; ``progress`` is told (embedded, to
    embed) after each batch. Raises the backend's BackendError, or BackendServerError when the vectors of one
    model differ in length.
    """
    cached = cache.get_many(backend.model, list(texts)) if cache is not None else {}
    missing = {k: t for k, t in texts.items() if k not in cached}
    found = asyncio.run(_embed_missing(backend, missing, cache, batch_size, progress)) if missing else {}
    vectors = {**cached, **found}
    if len({v.shape for v in vectors.values()}) > 1:
        raise BackendServerError(
            f"The embeddings of model '{backend.model}' differ in length: the model changed under the same name; "
            "pull it again and retry."
        )
    return vectors


def cosine_pairs(vectors: np.ndarray, threshold: float, block: int = COSINE_BLOCK) -> list[tuple[int, int]]:
    """Row pairs (i < j) of ``vectors`` whose cosine similarity is at least ``threshold``, block by block.

    Rows are scaled to unit length once (a zero row matches nothing); each block of ``block`` x ``block``
    dot products is scored and dropped before the next, so memory stays at one block whatever the row count.
    """
    matrix = np.asarray(vectors, dtype=np.float32)
    if len(matrix) < 2:
        return []
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    found: list[tuple[int, int]] = []
    n = len(unit)
    for top in range(0, n, block):
        rows = unit[top : top + block]
        for left in range(top, n, block):
            scores = rows @ unit[left : left + block].T
            if left == top:
                scores = np.triu(scores, 1)  # the diagonal block: each pair once, no row with itself
            r, c = np.nonzero(scores >= threshold)
            found.extend(zip((r + top).tolist(), (c + left).tolist(), strict=True))
    return found


def embedding_edges(
    store: Store, pair_ids: Iterable[int] | None = None, *, threshold: float | None = None,
    backend: EmbeddingBackend | None = None, progress: Progress | None = None,
) -> set[tuple[int, int]]:
    """Pairs of pair ids (a < b) whose instructions' embeddings are at least ``threshold`` alike (cosine).

    Over ``pair_ids``, else every pair not rejected. ``threshold`` defaults to ``quality.embedding_threshold``,
    ``backend`` to :func:`embedding_backend` of the store's settings. Pairs with the same normalized instruction
    are joined too (their embeddings are one). Raises ConfigError or a BackendError naming the fix.
    """
    settings = store.settings
    used = settings.quality.embedding_threshold if threshold is None else threshold
    chosen = set(pair_ids) if pair_ids is not None else None
    members: dict[str, list[int]] = defaultdict(list)
    texts: dict[str, str] = {}
    for pair in store.iter_pairs():
        if pair.id is None or (chosen is not None and pair.id not in chosen):
            continue
        if chosen is None and pair.status is PairStatus.REJECTED:
            continue
        if not pair.instruction.strip():
            continue
        key = instruction_key(pair.instruction)
        members[key].append(pair.id)
        texts.setdefault(key, pair.instruction)
    if not texts:
        return set()
    vectors = embed_instructions(texts, backend or embedding_backend(settings), cache=store.embeddings, progress=progress)
    keys = list(texts)
    edges: set[tuple[int, int]] = set()
    for key in keys:
        edges.update(combinations(sorted(members[key]), 2))
    for i, j in cosine_pairs(np.stack([vectors[k] for k in keys]), used):
        edges.update(_joined(members[keys[i]], members[keys[j]]))
    return edges


def _joined(a: Sequence[int], b: Sequence[int]) -> Iterable[tuple[int, int]]:
    for x in a:
        for y in b:
            yield (x, y) if x < y else (y, x)


__all__ = [
    "COSINE_BLOCK",
    "EMBED_BATCH",
    "cosine_pairs",
    "embed_instructions",
    "embedding_backend",
    "embedding_edges",
    "instruction_key",
]
