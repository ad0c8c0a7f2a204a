"""The pre-flight probe: one job per planned pair kind before a run starts.

``tests/fake_ollama.py`` stands in for an Ollama server (none can run on the machines
that test this project); the real ``ollama`` client talks to it over HTTP.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import engine.cli
from engine.generate import backends_from_settings
from engine.generate.planner import make_plan, save_plan
from engine.generate.probe import probe_run
from engine.store import Store
from tests.fake_ollama import FakeOllama, fake_ollama, schema_answer
from tests.test_generate_corpus import load_sample_corpus

MODEL = "llama3.2:3b"


@pytest.fixture
def server() -> Iterator[FakeOllama]:
    with fake_ollama() as srv:
        yield srv


@pytest.fixture
def planned(tmp_path: Path) -> Iterator[tuple[Store, int]]:
    store = load_sample_corpus(Store.init(tmp_path / "project"))
    run_id = save_plan(store, make_plan(store, target=40))
    yield store, run_id
    store.close()


def _backends(store: Store, server: FakeOllama) -> list[Any]:
    return backends_from_settings(store.settings, backend="ollama", model=MODEL, hosts=[server.url])


async def test_a_healthy_model_passes_every_kind_and_its_pairs_are_kept(
    planned: tuple[Store, int], server: FakeOllama
) -> None:
    store, run_id = planned
    before = store.count_pairs()
    report = await probe_run(store, _backends(store, server), run_id)
    assert report.ok, report.message
    kinds = {str(job.kind) for job in store.list_jobs(run_id=run_id)}
    assert {r.kind for r in report.results} == kinds and len(kinds) == 5
    # One request per kind, and a second for the refusal when its first proposals were all dropped.
    asked_again = [r for r in server.requests_to("/api/chat") if "Already taken or invalid" in r.body["messages"][-1]["content"]]
    assert len(asked_again) <= 1
    assert len(server.requests_to("/api/chat")) == len(kinds) + len(asked_again)
    # Each probe answer is its job's pair: the queue does not ask for it again.
    done = store.list_jobs(run_id=run_id, status="done")
    assert {str(job.kind) for job in done} == kinds and len(done) == 5
    assert store.count_pairs() == before + 5
    assert store.job_counts(run_id)["queued"] == 40 - 5
    assert report.message.startswith("Pre-flight probe passed for every pair kind")


async def test_a_kind_passes_when_a_retry_succeeds(planned: tuple[Store, int], server: FakeOllama) -> None:
    """A small model's occasional bad answer is retried as the queue would, not a failed setup."""
    store, run_id = planned
    server.fail_next(5, 500)
    report = await probe_run(store, _backends(store, server), run_id)
    assert report.ok, report.message


def test_a_model_that_cannot_write_json_stops_in_seconds(
    planned: tuple[Store, int], server: FakeOllama
) -> None:
    store, run_id = planned
    server.set_fault("invalid_json")
    started = time.perf_counter()
    result = CliRunner().invoke(
        engine.cli.main,
        ["generate", "--project", str(store.root), "--host", server.url, "--model", MODEL],
        catch_exceptions=False,
    )
    assert time.perf_counter() - started < 10
    assert result.exit_code == 1
    output = " ".join(result.output.split())  # the console wraps at its width
    assert "Error: The pre-flight probe stopped the run:" in output, output
    assert "pairs fail because the answers are not valid JSON of the pair schema" in output
    assert "structured output" in output and "--no-probe" in output
    # The queue's tries per kind (generation.max_attempts), then nothing more: every job
    # is still queued, none failed.
    assert len(server.requests_to("/api/chat")) == store.settings.generation.max_attempts * 5
    counts = store.job_counts(run_id)
    assert counts["failed"] == 0 and counts["done"] == 0 and counts["queued"] == 40


async def test_answers_that_fail_an_error_check_stop_the_run(
    planned: tuple[Store, int], server: FakeOllama
) -> None:
    store, run_id = planned

    def disclaimer(request: dict[str, Any]) -> Any:
        answer = schema_answer(request)
        if isinstance(answer, dict):
            for key, value in answer.items():
                if key in ("answer", "response") and isinstance(value, str):
                    answer[key] = "As an AI language model, I cannot know that. " + value
        return answer

    server.responder = disclaimer
    report = await probe_run(store, _backends(store, server), run_id)
    assert not report.ok
    failed = [r for r in report.results if not r.ok]
    assert failed and all("ai_disclaimer" in (r.reason or "") for r in failed)
    assert "fails the ai_disclaimer check" in report.message


def test_no_probe_goes_straight_to_the_queue(planned: tuple[Store, int], server: FakeOllama) -> None:
    store, run_id = planned
    server.set_fault("invalid_json")
    result = CliRunner().invoke(
        engine.cli.main,
        ["generate", "--no-probe", "--project", str(store.root), "--host", server.url,
         "--model", MODEL, "--json"],
        catch_exceptions=False,
    )
    assert "pre-flight" not in result.output
    assert store.job_counts(run_id)["failed"] == 40
