"""The generation queue end to end over HTTP.

``tests/fake_ollama.py`` stands in for an Ollama server because none can run on the
machines that test this project; the real ``ollama`` client talks to it over HTTP.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.errors import PairForgeError
from engine.generate import (
    backends_from_settings,
    check_backends,
    generation_runner,
    make_plan,
    save_plan,
)
from engine.generate.builders import GenerationContext
from engine.generate.retrieval import CorpusIndex
from engine.jobs import JobEvent, JobRunner
from engine.models import Job, PairKind
from engine.store import PairFilter, Store
from tests.fake_ollama import FakeOllama, fake_ollama, schema_answer
from tests.test_generate_corpus import load_sample_corpus

MODEL = "llama3.2:3b"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server() -> Iterator[FakeOllama]:
    with fake_ollama() as srv:
        yield srv


@pytest.fixture
def corpus(project: Store) -> Store:
    return load_sample_corpus(project)


def _queue(store: Store, urls: list[str], *, model: str = MODEL, **kw: Any) -> JobRunner:
    backends = backends_from_settings(store.settings, backend="ollama", model=model, hosts=urls)
    kw.setdefault("retry_base_s", 0.01)
    return generation_runner(store, backends, **kw)


def _generated(store: Store) -> list[Any]:
    """Pairs made by generation jobs (the sample corpus also imports a dataset's pairs)."""
    return [p for p in store.iter_pairs() if p.origin.job_id is not None]


def _one_job_run(store: Store, kind: PairKind = PairKind.INSTRUCTION) -> int:
    chunk = store.list_chunks()[3]
    run_id, _ = store.create_run("generate", {}, [Job(kind=kind, mode="factual", chunk_ids=[chunk.id or 0])])
    return run_id


async def test_every_pair_type_is_generated_and_grounded(corpus: Store, server: FakeOllama) -> None:
    run_id = save_plan(corpus, make_plan(corpus, target=40))
    events: list[JobEvent] = []
    summary = await _queue(corpus, [server.url], concurrency_per_host=4).run(run_id, on_event=events.append)
    assert summary.ok and summary.pairs == 40 and summary.failed == 0
    pairs = _generated(corpus)
    assert len(pairs) == 40 and {str(p.kind) for p in pairs} == {
        "instruction", "multi_hop", "refusal", "thinking", "clarification"
    }
    doc_of = {c.id: c.document_id for c in corpus.list_chunks()}
    index = CorpusIndex.build(corpus.list_chunks())
    coverage = GenerationContext.load(corpus).coverage
    for pair in pairs:
        assert pair.origin.backend == "ollama" and pair.origin.model == MODEL and pair.origin.host == server.url
        assert pair.origin.prompt_version == f"{pair.mode}@1.0" and pair.origin.job_id
        assert pair.origin.completion_tokens and pair.origin.prompt_tokens and pair.system
        if pair.kind is PairKind.MULTI_HOP:
            assert len({doc_of[c] for c in pair.sources}) == 2
        elif pair.kind is PairKind.REFUSAL:
            assert pair.sources == []
            assert index.is_absent(pair.instruction), pair.instruction
            # The declination names a few of the subjects the knowledge base covers.
            assert sum(item in pair.response for item in coverage) >= 2, pair.response
        else:
            assert len(pair.sources) == 1
        if pair.kind is PairKind.THINKING:
            assert "1. " in pair.response and "\nConclusion: " in pair.response
        if pair.kind is PairKind.CLARIFICATION:
            assert pair.response.endswith("?")
    # Every done job holds exactly its pair.
    for job in corpus.list_jobs(run_id=run_id):
        assert job.status == "done" and len(job.result_pair_ids) == 1
    types = Counter(e.kind for e in events)
    assert sum(len(e.pairs) for e in events if e.kind == "job_done") == 40
    assert types["job_done"] == 40 and types["finished"] == 1
    last = events[-1].progress
    assert last.pairs_per_min > 0 and last.tokens_per_s > 0


async def test_invalid_json_is_retried_then_succeeds(corpus: Store, server: FakeOllama) -> None:
    calls = {"n": 0}

    def flaky(request: dict[str, Any]) -> Any:
        calls["n"] += 1
        return "Sure! Here is your pair: not json" if calls["n"] <= 2 else schema_answer(request)

    server.responder = flaky
    run_id = _one_job_run(corpus)
    retries: list[JobEvent] = []
    summary = await _queue(corpus, [server.url]).run(run_id, on_event=lambda e: retries.append(e) if e.kind == "retry" else None)
    assert summary.pairs == 1 and calls["n"] == 3
    assert len(retries) == 2 and "not valid JSON" in (retries[0].error or "")


async def test_truncated_answer_is_retried_then_succeeds(corpus: Store, server: FakeOllama) -> None:
    server.set_fault("length")

    def recover(request: dict[str, Any]) -> Any:
        server.set_fault("length", False)  # this answer is still cut; the next is whole
        return schema_answer(request)

    server.responder = recover
    summary = await _queue(corpus, [server.url]).run(_one_job_run(corpus))
    assert summary.pairs == 1 and len(server.requests_to("/api/chat")) == 2


async def test_job_fails_after_max_attempts_keeping_the_reason(corpus: Store, server: FakeOllama) -> None:
    server.set_fault("invalid_json")
    run_id = _one_job_run(corpus)
    summary = await _queue(corpus, [server.url], max_attempts=3).run(run_id)
    job = corpus.list_jobs(run_id=run_id)[0]
    assert job.status == "failed" and "not valid JSON" in (job.error or "") and "3 attempts" in (job.error or "")
    assert len(server.requests_to("/api/chat")) == 3
    assert summary.pairs == 0
    assert summary.message.startswith("0 pairs: all 1 job(s) failed; the last error was: The model's answer is not valid JSON")


async def test_bad_answers_are_asked_again_without_waiting(corpus: Store, server: FakeOllama) -> None:
    # The server is healthy, only the answer was bad: a backoff would just leave the slot idle.
    server.set_fault("invalid_json")
    started = time.perf_counter()
    summary = await _queue(corpus, [server.url], max_attempts=3, retry_base_s=5.0).run(_one_job_run(corpus))
    assert summary.failed == 1 and len(server.requests_to("/api/chat")) == 3
    assert time.perf_counter() - started < 4.0


async def test_jobs_are_claimed_and_stored_in_batches_and_none_is_left_running(corpus: Store, server: FakeOllama) -> None:
    run_id = save_plan(corpus, make_plan(corpus, target=30))
    transactions = {"n": 0}
    begin = corpus.db.transaction

    def counting_transaction() -> Any:
        # Only an outermost block is a transaction of its own; a nested one is a savepoint in it.
        if not corpus.db.in_transaction:
            transactions["n"] += 1
        return begin()

    corpus.db.transaction = counting_transaction  # type: ignore[method-assign]
    try:
        summary = await _queue(corpus, [server.url], concurrency_per_host=6).run(run_id)
    finally:
        del corpus.db.transaction
    counts = corpus.job_counts(run_id)
    assert summary.pairs == 30 and counts["done"] == 30 and counts["running"] == 0
    # One claim and one completion per job would take at least 60.
    assert 0 < transactions["n"] < 50  # more than none: the count sees the store's transactions
    assert sorted(p.origin.job_id for p in _generated(corpus)) == sorted(j.id for j in corpus.list_jobs(run_id=run_id))


async def test_transient_server_errors_are_retried(corpus: Store, server: FakeOllama) -> None:
    server.fail_next(2, status=503)
    summary = await _queue(corpus, [server.url]).run(_one_job_run(corpus))
    assert summary.pairs == 1 and summary.errors


async def test_model_not_pulled_stops_the_run_with_the_sentence(corpus: Store, server: FakeOllama) -> None:
    run_id = save_plan(corpus, make_plan(corpus, target=30))
    summary = await _queue(corpus, [server.url], model="phi4:14b", concurrency_per_host=2).run(run_id)
    expected = f"Model 'phi4:14b' is not pulled on {server.url}: run `ollama pull phi4:14b`."
    assert summary.stopped_reason == expected and expected in summary.message
    counts = corpus.job_counts(run_id)
    assert counts["failed"] == 0 and counts["running"] == 0 and counts["queued"] == 30
    assert len(server.requests_to("/api/chat")) <= 2  # stopped at once, not once per job
    backends = backends_from_settings(corpus.settings, model="phi4:14b", hosts=[server.url])
    with pytest.raises(Exception, match="ollama pull phi4:14b"):
        await check_backends(backends)


async def test_pause_resume_and_cancel(corpus: Store) -> None:
    with fake_ollama(latency=0.05) as srv:
        run_id = save_plan(corpus, make_plan(corpus, target=40))
        queue = _queue(corpus, [srv.url], concurrency_per_host=2)
        done: list[int] = []
        started: list[int] = []
        started_when_paused: list[int] = []

        def on_event(event: JobEvent) -> None:
            if event.kind == "job_started":
                started.append(event.job_id or 0)
            if event.kind == "paused":
                started_when_paused.extend(started)
            if event.kind == "job_done":
                done.append(event.job_id or 0)
                if len(done) == 2:
                    # Called from another thread, as a TUI would.
                    threading.Thread(target=queue.pause).start()

        task = asyncio.create_task(queue.run(run_id, on_event=on_event))
        while not queue.paused:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # in-flight answers land (a refusal may ask twice)
        settled = len(done)
        await asyncio.sleep(0.3)
        # Paused: nothing new claimed; what was in flight finished (a few jobs, not the run).
        assert len(done) == settled and started == started_when_paused and set(done) == set(started)
        assert settled <= 6
        queue.resume()
        while len(done) < settled + 4:
            await asyncio.sleep(0.01)
        threading.Thread(target=queue.cancel).start()
        summary = await asyncio.wait_for(task, 5)
    counts = corpus.job_counts(run_id)
    assert summary.cancelled and counts["running"] == 0
    assert counts["done"] == summary.done == len(_generated(corpus)) and counts["queued"] == 40 - counts["done"]
    assert "stay queued" in summary.message


async def test_two_hosts_share_one_queue(corpus: Store) -> None:
    with fake_ollama(latency=0.02) as one, fake_ollama(latency=0.02) as two:
        run_id = save_plan(corpus, make_plan(corpus, target=30))
        summary = await _queue(corpus, [one.url, two.url], concurrency_per_host=2).run(run_id)
        assert summary.pairs == 30
        assert one.requests_to("/api/chat") and two.requests_to("/api/chat")
        assert {p.origin.host for p in _generated(corpus)} == {one.url, two.url}


async def test_unreachable_host_leaves_jobs_queued_with_the_sentence(corpus: Store, server: FakeOllama) -> None:
    run_id = save_plan(corpus, make_plan(corpus, target=10))
    server.set_fault("refuse")
    summary = await _queue(corpus, [server.url], max_attempts=2).run(run_id)
    assert summary.stopped_reason and "Cannot reach Ollama" in summary.stopped_reason
    assert corpus.job_counts(run_id)["queued"] == 10


async def test_no_queued_jobs_says_so(project: Store, server: FakeOllama) -> None:
    summary = await _queue(project, [server.url]).run()
    assert summary.pairs == 0 and summary.message.startswith("0 pairs: there were no queued jobs")


def test_killed_generate_resumes_without_lost_or_duplicated_pairs(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "proj")
    load_sample_corpus(store)
    store.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with fake_ollama(latency=0.03) as srv:
        command = [sys.executable, "-m", "engine", "-p", str(tmp_path / "proj"), "generate", "--target", "120",
                   "--host", srv.url, "--model", MODEL, "--concurrency", "4", "--json"]
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        store = Store.open(tmp_path / "proj")
        deadline = time.monotonic() + 30
        while len(_generated(store)) < 20 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate()
        midway = len(_generated(store))
        assert 20 <= midway < 120, err.decode()
        assert store.job_counts()["running"] > 0  # it really died mid-run
        finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert finished.returncode == 0, finished.stderr
    counts = store.job_counts()
    assert counts["done"] == 120 and counts["queued"] == counts["running"] == counts["failed"] == 0
    job_ids = [p.origin.job_id for p in _generated(store)]
    assert len(job_ids) == 120
    assert len(set(job_ids)) == 120
    for job in store.list_jobs():
        assert len(job.result_pair_ids) == 1
    store.close()


def _embedded_available() -> bool:
    from engine.generate.backends.llamacpp import DEFAULT_BUILTIN, resolve_model

    try:
        import xllamacpp  # noqa: F401

        resolve_model(DEFAULT_BUILTIN)
    except (ImportError, PairForgeError):
        return False
    return True


@pytest.mark.skipif(not _embedded_available(), reason="xllamacpp or the default built-in model is not installed")
async def test_embedded_model_generates_real_pairs(corpus: Store) -> None:
    corpus.override_settings({"generation": {"num_predict": 200, "max_attempts": 3}})
    # One short chunk keeps this test to a few seconds of CPU on a laptop.
    chunks = [c for c in corpus.list_chunks() if 300 < len(c.text) < 700][:1]
    run_id, _ = corpus.create_run(
        "generate", {}, [Job(kind=PairKind.INSTRUCTION, mode="factual", chunk_ids=[c.id or 0]) for c in chunks]
    )
    backends = backends_from_settings(corpus.settings, backend="llamacpp")
    await check_backends(backends)
    summary = await generation_runner(corpus, backends, concurrency_per_host=1, retry_base_s=0.0).run(run_id)
    assert summary.pairs == 1, summary.message
    pair = next(corpus.iter_pairs(PairFilter(kind="instruction")))
    assert pair.origin.backend == "llamacpp" and pair.origin.completion_tokens
    assert len(pair.instruction) >= 10 and len(pair.response) >= 20
