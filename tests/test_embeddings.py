"""The embedding pass of dedup: backends' embed over real HTTP, the store's cache, blocked cosine and the CLI.

The server is tests/fake_ollama.py, a stand-in speaking Ollama's and OpenAI's protocols, since no real Ollama
runs here; its embeddings are a hashed bag of word stems, not a model's, so these tests check the plumbing
(requests, batching, caching, edges, errors), not how well any model finds duplicates.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import engine.cli
from engine.errors import BackendError, BackendUnreachableError, ConfigError, ModelNotFoundError
from engine.generate.backends.ollama import OllamaBackend
from engine.generate.backends.openai_compat import OpenAICompatBackend
from engine.models import Pair
from engine.quality import dedup
from engine.quality.embeddings import EMBED_BATCH, cosine_pairs, embedding_edges, instruction_key
from engine.store import Store
from tests.fake_ollama import FakeOllama, fake_ollama, stand_in_embedding

EMBED_MODEL = "nomic-embed-text"
# Two asks the fuzzy matcher scores 0 (each has words the other lacks) that share most content words.
SAME_WORDS = (
    "How do I retry failed jobs in the dead-letter queue?",
    "Dead-letter queue jobs that failed: what is involved in retrying them?",
)
OTHERS = ["How do I rotate the API token?", "Which cron schedule does the backup use?", "Why does a lease expire early?"]


@pytest.fixture
def server() -> Iterator[FakeOllama]:
    with fake_ollama(models=[f"{EMBED_MODEL}:latest", "llama3.2:3b"]) as srv:
        yield srv


def _embed(backend: OllamaBackend | OpenAICompatBackend, texts: list[str]) -> list[list[float]]:
    async def run() -> list[list[float]]:
        try:
            return await backend.embed(texts)
        finally:
            await backend.aclose()

    return asyncio.run(run())


@pytest.mark.parametrize("kind", ["ollama", "openai"])
def test_embed_returns_one_vector_per_text_in_order(server: FakeOllama, kind: str) -> None:
    backend = OllamaBackend(EMBED_MODEL, server.url) if kind == "ollama" else OpenAICompatBackend(EMBED_MODEL, server.url + "/v1")
    texts = [SAME_WORDS[0], OTHERS[0], SAME_WORDS[1]]
    vectors = _embed(backend, texts)
    assert [np.allclose(v, stand_in_embedding(t), atol=1e-6) for v, t in zip(vectors, texts, strict=True)] == [True] * 3
    path = "/api/embed" if kind == "ollama" else "/v1/embeddings"
    assert [r.body["input"] for r in server.requests_to(path)] == [texts]
    assert _embed(OllamaBackend(EMBED_MODEL, server.url), []) == []


def test_ollama_embed_errors_name_the_fix(server: FakeOllama) -> None:
    with pytest.raises(ModelNotFoundError, match="ollama pull mxbai-embed-large"):
        _embed(OllamaBackend("mxbai-embed-large", server.url), ["x"])
    with pytest.raises(BackendError, match=r"makes no embeddings: set quality.embedding_model .*ollama pull nomic-embed-text"):
        _embed(OllamaBackend("llama3.2:3b", server.url), ["x"])
    server.set_fault("http_500")
    with pytest.raises(BackendError, match="failed while answering"):
        _embed(OllamaBackend(EMBED_MODEL, server.url), ["x"])
    server.clear_faults()
    server.set_fault("refuse")
    with pytest.raises(BackendUnreachableError, match="ollama serve"):
        _embed(OllamaBackend(EMBED_MODEL, server.url), ["x"])


def test_openai_embed_errors_name_the_fix(server: FakeOllama) -> None:
    with pytest.raises(ModelNotFoundError, match="/v1/models"):
        _embed(OpenAICompatBackend("mxbai-embed-large", server.url), ["x"])
    with pytest.raises(BackendError, match="does not support embeddings"):
        _embed(OpenAICompatBackend("llama3.2:3b", server.url), ["x"])


def test_blocked_cosine_finds_what_the_full_matrix_finds() -> None:
    rng = np.random.default_rng(7)
    base = rng.normal(size=(150, 24)).astype(np.float32)
    near = base[:60] + rng.normal(scale=0.15, size=(60, 24)).astype(np.float32)
    vectors = np.vstack([base, near, np.zeros((1, 24), dtype=np.float32)])
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    rows, cols = np.nonzero(np.triu(unit @ unit.T >= 0.9, 1))
    full = set(zip(rows.tolist(), cols.tolist(), strict=True))
    assert len(full) >= 50  # the planted near copies, and so a real check
    for block in (16, 64, 1000):
        assert set(cosine_pairs(vectors, 0.9, block=block)) == full


def _project(tmp_path: Path, server: FakeOllama, texts: list[str]) -> Store:
    store = Store.init(tmp_path / "project")
    store.change_settings({
        "generation": {"backend": "ollama", "hosts": [server.url]},
        "quality": {"embedding_model": EMBED_MODEL, "embedding_threshold": 0.85},
    })
    store.add_pairs([Pair.simple(t, f"An answer of its own about {t.lower()}") for t in texts])
    return store


def test_dedup_embed_joins_what_fuzzy_misses_and_asks_once(tmp_path: Path, server: FakeOllama) -> None:
    filler = [f"How do I tune shard {n} of tenant {n * 7} for region {n * 13}?" for n in range(EMBED_BATCH)]
    store = _project(tmp_path, server, [*SAME_WORDS, *OTHERS, *filler])
    try:
        ids = store.pair_ids()
        plain = dedup(store)
        assert not any({ids[0], ids[1]} <= set(c.pair_ids) for c in plain.clusters)
        assert plain.embedding_matches is None and server.requests_to("/api/embed") == []
        with_embeddings = dedup(store, embed=True)
        assert [ids[0], ids[1]] in [c.pair_ids for c in with_embeddings.clusters]
        assert with_embeddings.embedding_matches is not None and with_embeddings.embedding_matches >= 1
        # 69 distinct instructions in batches of 64: two requests, every vector cached per model and hash.
        assert [len(r.body["input"]) for r in server.requests_to("/api/embed")] == [64, len(ids) - 64]
        assert store.embeddings.count(EMBED_MODEL) == len(ids)
        assert set(store.embeddings.get_many(EMBED_MODEL, [instruction_key(SAME_WORDS[0])])) == {instruction_key(SAME_WORDS[0])}
        # A second pass asks nothing; a new pair is the only text asked for.
        assert dedup(store, embed=True).clusters == with_embeddings.clusters
        assert len(server.requests_to("/api/embed")) == 2
        store.add_pairs([Pair.simple("How can I retry the failed jobs of a dead-letter queue?", "Another answer.")])
        dedup(store, embed=True)
        assert [r.body["input"] for r in server.requests_to("/api/embed")][2:] == [["How can I retry the failed jobs of a dead-letter queue?"]]
    finally:
        store.close()


def test_embedding_edges_join_the_same_normalized_instruction(tmp_path: Path, server: FakeOllama) -> None:
    store = _project(tmp_path, server, [OTHERS[0], OTHERS[0].upper(), OTHERS[1]])
    try:
        first, second, _third = store.pair_ids()
        assert embedding_edges(store) == {(first, second)}
        assert [r.body["input"] for r in server.requests_to("/api/embed")] == [[OTHERS[0], OTHERS[1]]]
    finally:
        store.close()


def test_dedup_embed_without_a_model_says_what_to_set(tmp_path: Path, server: FakeOllama) -> None:
    store = _project(tmp_path, server, list(SAME_WORDS))
    store.change_settings({"quality": {"embedding_model": ""}})
    try:
        with pytest.raises(ConfigError, match=r"set quality\.embedding_model"):
            dedup(store, embed=True)
        store.change_settings({"generation": {"backend": "llamacpp"}, "quality": {"embedding_model": EMBED_MODEL}})
        with pytest.raises(BackendError, match="embedded backend serves no embeddings"):
            dedup(store, embed=True)
    finally:
        store.close()


def test_cli_dedup_embed(tmp_path: Path, server: FakeOllama) -> None:
    store = _project(tmp_path, server, [*SAME_WORDS, *OTHERS])
    store.close()
    runner = CliRunner()
    args = ["--project", str(tmp_path / "project"), "dedup"]
    plain = runner.invoke(engine.cli.main, [*args, "--json"], catch_exceptions=False)
    assert plain.exit_code == 0 and json.loads(plain.output)["clusters"] == []
    embedded = runner.invoke(engine.cli.main, [*args, "--embed"], catch_exceptions=False)
    assert embedded.exit_code == 0, embedded.output
    assert "Would remove 1 pair(s) from 1 cluster(s)" in embedded.output and "joined 1 pair(s) of pairs" in embedded.output
    server.set_fault("refuse")
    cached = runner.invoke(engine.cli.main, [*args, "--embed"], catch_exceptions=False)
    assert cached.exit_code == 0, "every instruction is cached: nothing is asked of the server"
    store = Store.open(tmp_path / "project")
    store.add_pairs([Pair.simple("How do I pause a queue for the night?", "Answer.")])
    store.close()
    refused = runner.invoke(engine.cli.main, [*args, "--embed"], catch_exceptions=False)
    assert refused.exit_code != 0 and "Cannot reach Ollama" in refused.output and "Traceback" not in refused.output
