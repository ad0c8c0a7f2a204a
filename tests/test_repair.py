"""Repair by the model against tests/fake_ollama.py, driven by the real ``ollama`` client.

The stand-in serves because no Ollama can run here; it speaks Ollama's HTTP protocol, so the
client, the backend, the one job runner and the repair handler run as they would against a
real server. Scripted responders give the repaired pair chosen for each question (one that
fixes the pair, one that makes it worse), so what is stored can be checked exactly.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.errors import ConfigError, InvalidModelOutputError
from engine.generate.backends import make_backend
from engine.models import Chunk, Document, Pair, PairKind, Severity
from engine.quality import recheck
from engine.repair import (
    FAILED,
    REPAIRED,
    UNCHANGED,
    assess_repair,
    build_repair_messages,
    parse_filter,
    plan_repair,
    repair_runner,
    resolve_checks,
    with_text,
)
from engine.store import PairFilter, Store
from tests.fake_ollama import FakeOllama, fake_ollama

MODEL = "qwen2.5:7b"
SOURCE = (
    "When a job fails, the worker retries it three times with exponential backoff, starting at two seconds "
    "and doubling the wait each time. After the third failure the job moves to the dead letter queue, where "
    "an operator can inspect the payload and requeue it by hand."
)
COPY_Q = "How does the worker handle a job that keeps failing?"
NON_Q = "How does the worker retry failed jobs?"
NON_A = "The retry behaviour of the worker is described in the section on retries of the worker guide."
FIXED_A = (
    "A failing job gets three more tries, spaced two, four and eight seconds apart. If the last one fails too, "
    "the job is parked in the dead letter queue so that someone can look at its payload and send it back by hand."
)
WORSE_A = (
    "As an AI language model, I can tell you the worker tries a failing job again a few times and then parks "
    "it in the dead letter queue."
)
STILL_NON_A = "The retry behaviour is covered in the worker guide's section on retries."
_QUESTION_RE = re.compile(r"\nQuestion:\n(.*?)\n\nAnswer:", re.DOTALL)


def question_of(request: dict[str, Any]) -> str:
    match = _QUESTION_RE.search(request["messages"][-1]["content"])
    assert match, "the repair prompt names the pair's question"
    return match.group(1)


def scripted(answers: dict[str, str]):
    """A responder repairing each pair with the answer chosen for its question (the question is kept)."""

    def respond(request: dict[str, Any]) -> dict[str, Any]:
        question = question_of(request)
        return {"question": question, "answer": answers[question]}

    return respond


@pytest.fixture
def server() -> Iterator[FakeOllama]:
    with fake_ollama() as srv:
        yield srv


def flagged_pairs(store: Store) -> tuple[Pair, Pair]:
    """A pair that copies its source and a non-answer, both checked and stored with their warnings."""
    store.save_document(
        Document(path="worker.md", format="md", sha256="w", size=len(SOURCE), title="Worker guide"),
        [Chunk(ordinal=0, text=SOURCE, start=0, end=len(SOURCE), heading_path=["Worker", "Retries"])],
    )
    chunk_id = store.list_chunks()[0].id
    copy, non = store.add_pairs([
        Pair.simple(COPY_Q, SOURCE, sources=[chunk_id]),
        Pair.simple(NON_Q, NON_A, sources=[chunk_id]),
    ])
    recheck(store)
    copy, non = store.get_pairs([copy.id, non.id])
    assert [w.check for w in copy.warnings] == ["mimicry"]
    assert [w.check for w in non.warnings] == ["non_answer"]
    return copy, non


def run_repair(store: Store, server: FakeOllama, *, apply: bool = True, **kw: Any):
    backend = make_backend("ollama", MODEL, server.url)
    runner = repair_runner(store, [backend], apply=apply, backoff_s=0.0, **kw)

    async def go():
        try:
            return await runner.run(None)
        finally:
            await backend.aclose()

    summary = asyncio.run(go()).raise_for_stop()
    return summary, runner.handler


def test_a_repair_that_clears_the_warning_is_stored_as_an_undoable_revision(project: Store, server: FakeOllama) -> None:
    copy, non = flagged_pairs(project)
    server.responder = scripted({COPY_Q: FIXED_A, NON_Q: STILL_NON_A})
    run_id = plan_repair(project)
    assert run_id is not None and project.job_counts(run_id, task="repair")["queued"] == 2
    summary, handler = run_repair(project, server)
    assert (summary.done, summary.failed) == (2, 0)
    outcomes = {o.pair_id: o for o in handler.outcomes}
    assert outcomes[copy.id].outcome == REPAIRED and outcomes[copy.id].cleared == ("mimicry",)
    assert outcomes[copy.id].applied and outcomes[copy.id].before == (COPY_Q, SOURCE)
    # The second answer is still a non-answer: the original stays, and the report says why.
    assert outcomes[non.id].outcome == UNCHANGED and "still has non_answer" in outcomes[non.id].reason
    repaired = project.get_pair(copy.id)
    assert repaired.response == FIXED_A and repaired.warnings == [] and repaired.revision == copy.revision + 1
    assert project.get_pair(non.id).response == NON_A
    assert project.list_jobs(run_id=run_id)[0].result_pair_ids == [copy.id]
    # The repair prompt carries the pair, its source, its warning and the instruction for its check.
    prompts = {question_of(r.body): r.body["messages"][-1]["content"] for r in server.requests_to("/api/chat")}
    assert SOURCE in prompts[COPY_Q] and "mimicry:" in prompts[COPY_Q] and "own words" in prompts[COPY_Q]
    assert "State the fact itself" in prompts[NON_Q]
    assert project.log_tail(1, step="repair")[0].detail["repaired"] == 1
    # Undo brings the original back, warning included.
    assert project.undo() == ("repair", [copy.id])
    restored = project.get_pair(copy.id)
    assert restored.response == SOURCE and [w.check for w in restored.warnings] == ["mimicry"]


def test_a_repair_that_brings_a_new_error_is_rejected_and_the_original_kept(project: Store, server: FakeOllama) -> None:
    copy, _ = flagged_pairs(project)
    server.responder = scripted({COPY_Q: WORSE_A})
    plan_repair(project, checks=["mimicry"])
    summary, handler = run_repair(project, server)
    assert (summary.done, summary.failed) == (0, 1)
    (outcome,) = handler.outcomes
    assert outcome.outcome == FAILED and outcome.introduced == ("ai_disclaimer",)
    assert "brought new problems (ai_disclaimer" in outcome.reason and outcome.after == (COPY_Q, WORSE_A)
    kept = project.get_pair(copy.id)
    assert kept.response == SOURCE and kept.revision == copy.revision
    job = project.list_jobs()[0]
    assert job.status == "failed" and "original was kept" in (job.error or "")
    assert len(server.requests_to("/api/chat")) == 1  # a worse repair is not asked again
    assert project.undo() is None  # nothing was stored, so there is nothing to undo


def test_model_failures_keep_the_original_and_say_why(project: Store, server: FakeOllama) -> None:
    copy, non = flagged_pairs(project)
    server.set_fault("invalid_json")
    assert plan_repair(project) is not None
    summary, handler = run_repair(project, server, max_attempts=2)
    assert (summary.done, summary.failed) == (0, 2)
    assert {o.outcome for o in handler.outcomes} == {FAILED}
    assert all("no valid repair after 2 attempt(s)" in o.reason for o in handler.outcomes)
    assert [p.response for p in project.get_pairs([copy.id, non.id])] == [SOURCE, NON_A]


def test_a_model_that_never_answers_validly_stops_the_run(project: Store, server: FakeOllama) -> None:
    project.add_pairs([
        Pair.simple(f"What is setting number {i} for?", f"Sure! Setting {i} sets the retry limit of the worker.")
        for i in range(7)
    ])
    recheck(project)
    server.set_fault("invalid_json")
    plan_repair(project, checks=["sycophantic_opener"])
    with pytest.raises(InvalidModelOutputError, match="no valid repair for the first 5 pairs"):
        run_repair(project, server, max_attempts=1, concurrency_per_host=1)
    assert project.job_counts(task="repair")["queued"] == 2


def test_changes_made_while_the_model_answers_are_kept(project: Store, server: FakeOllama) -> None:
    """A pair accepted meanwhile keeps its status under the repaired text; a pair edited meanwhile keeps the edit."""
    copy, non = flagged_pairs(project)
    fixed_non = "A failed job is tried three more times, two seconds apart at first and twice as long each time after."
    edited = "Three retries, with a wait that starts at two seconds and doubles."
    other = Store.open(project.root)
    answers = {COPY_Q: FIXED_A, NON_Q: fixed_non}

    def respond(request: dict[str, Any]) -> dict[str, Any]:
        # Someone reviews in the app while the model is answering.
        question = question_of(request)
        if question == COPY_Q:
            other.set_status([copy.id], "accepted")
        else:
            other.update_pair(with_text(other.get_pair(non.id), NON_Q, edited))
        return {"question": question, "answer": answers[question]}

    server.responder = respond
    plan_repair(project)
    try:
        _, handler = run_repair(project, server, concurrency_per_host=1)
    finally:
        other.close()
    outcomes = {o.pair_id: o for o in handler.outcomes}
    repaired = project.get_pair(copy.id)
    assert outcomes[copy.id].applied and repaired.response == FIXED_A and repaired.status == "accepted"
    assert outcomes[non.id].outcome == UNCHANGED and "edited or deleted while it was repaired" in outcomes[non.id].reason
    assert project.get_pair(non.id).response == edited


def test_a_dry_run_reports_before_and_after_and_stores_nothing(project: Store, server: FakeOllama) -> None:
    copy, _ = flagged_pairs(project)
    server.responder = scripted({COPY_Q: FIXED_A, NON_Q: STILL_NON_A})
    plan_repair(project, flt=PairFilter(warning="mimicry"))
    summary, handler = run_repair(project, server, apply=False)
    (outcome,) = handler.outcomes
    assert outcome.pair_id == copy.id and outcome.outcome == REPAIRED and not outcome.applied
    assert outcome.before == (COPY_Q, SOURCE) and outcome.after == (COPY_Q, FIXED_A)
    assert project.get_pair(copy.id).response == SOURCE and project.undo() is None
    assert "would repair 1 pair(s)" in summary.message


def test_planning_skips_clean_pairs_and_pairs_already_queued(project: Store) -> None:
    copy, non = flagged_pairs(project)
    project.add_pairs([Pair.simple("How many retries does a job get?", "Three, with the wait doubling each time.")])
    assert plan_repair(project, checks=["non_answer"]) is not None
    assert [j.pair_id for j in project.list_jobs()] == [non.id]
    assert plan_repair(project, checks=["non_answer"]) is None  # already queued
    assert plan_repair(project, ids=[copy.id]) is not None
    assert plan_repair(project, checks=["mimicry"]) is None  # the copy is queued now too


def test_unknown_and_unrepairable_checks_and_filters_are_named() -> None:
    with pytest.raises(ConfigError, match="Unknown check 'nope'"):
        resolve_checks(["nope"])
    with pytest.raises(ConfigError, match="cannot be fixed by rewriting"):
        resolve_checks(["pii_email"])
    with pytest.raises(ConfigError, match="write key=value"):
        parse_filter(["colour=red"])
    assert parse_filter(["status=pending", "doc=3", "search=a, b"]) == PairFilter(
        status="pending", document_id=3, search="a, b"
    )


def test_assessment_counts_only_new_warnings_and_errors() -> None:
    from engine.models import PairWarning

    original = Pair.simple(COPY_Q, SOURCE)
    target = PairWarning(check="mimicry", severity=Severity.WARNING, reason="copies")
    info = PairWarning(check="low_grounding", severity=Severity.INFO, reason="weak")
    candidate = with_text(original, COPY_Q, FIXED_A)
    assert assess_repair(original, [target], candidate, [info], [target]).outcome == REPAIRED
    assert assess_repair(original, [target], original, [target], [target]).outcome == UNCHANGED
    # A partial repair keeps the flaw it did not fix: it is not kept either.
    leak = PairWarning(check="prompt_leak", severity=Severity.ERROR, reason="leaks")
    partial = assess_repair(original, [target, leak], candidate, [leak], [target, leak])
    assert partial.outcome == UNCHANGED and partial.remaining == ("prompt_leak",)
    multi = Pair.simple("q", "a", system="Be brief.")
    rewritten = with_text(multi, "new q", "new a")
    assert [m.content for m in rewritten.messages] == ["Be brief.", "new q", "new a"]


def test_refusal_prompts_carry_no_source_text() -> None:
    from engine.models import PairWarning

    pair = Pair.simple("Who won the 1998 World Cup?", "France won it.", kind=PairKind.REFUSAL)
    warning = PairWarning(check="refusal_no_declination", severity=Severity.ERROR, reason="answers")
    content = build_repair_messages(pair, [], [warning])[-1]["content"]
    assert "Source text: none" in content and "knowledge base" in content


def test_cli_repair_is_a_dry_run_unless_apply(tmp_path: Path, server: FakeOllama) -> None:
    root = tmp_path / "proj"
    store = Store.init(root)
    copy, non = flagged_pairs(store)
    store.close()
    server.responder = scripted({COPY_Q: FIXED_A, NON_Q: STILL_NON_A})
    cli = CliRunner()

    def invoke(*args: str):
        result = cli.invoke(main, ["-p", str(root), *args, "--backend", "ollama", "--model", MODEL, "--host", server.url])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    dry = invoke("repair")
    assert dry.exit_code == 0, dry.output
    assert f"#{copy.id} would repair" in dry.output and "+ answer: A failing job gets three" in dry.output
    assert f"#{non.id} unchanged" in dry.output and "Would repair 1 pair(s); 1 unchanged, 0 failed" in dry.output
    with Store.open(root) as check:
        assert check.get_pair(copy.id).response == SOURCE
    applied = json.loads(invoke("repair", "--check", "mimicry", "--apply", "--json").output)
    assert applied["counts"] == {"repaired": 1, "unchanged": 0, "failed": 0}
    assert applied["outcomes"][0]["after"]["response"] == FIXED_A
    nothing = invoke("repair", "--check", "mimicry")
    assert "nothing to do" in nothing.output
    bad = invoke("repair", "--check", "pii_email")
    assert bad.exit_code != 0 and "cannot be fixed by rewriting" in bad.output
    undone = cli.invoke(main, ["-p", str(root), "undo"])
    assert undone.exit_code == 0
    with Store.open(root) as check:
        assert check.get_pair(copy.id).response == SOURCE


# ---------------------------------------------------------------- the app


async def test_review_key_fixes_the_pair_and_undo_brings_it_back(tmp_path: Path, server: FakeOllama) -> None:
    """F repairs the pair under the cursor through the stand-in; u undoes it; b then f repairs the whole filter."""
    from tests.test_tui import settle
    from tests.test_tui_flows import wait_until
    from tui.app import PairForgeApp
    from tui.dialogs import BulkActionScreen
    from tui.panes.review import ReviewPane
    from tui.widgets.pair_detail import PairDetail

    root = tmp_path / "proj"
    store = Store.init(root)
    copy, non = flagged_pairs(store)
    store.change_settings({"generation": {"backend": "ollama", "model": MODEL, "hosts": [server.url], "concurrency": 1}})
    store.close()
    server.responder = scripted({COPY_Q: FIXED_A, NON_Q: WORSE_A})
    app = PairForgeApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        pane = app.screen.query_one(ReviewPane)
        pane.go_to_pair(copy.id)
        await pilot.press("F")
        await wait_until(pilot, lambda: not pane.repairing)
        assert app.store is not None
        assert app.store.get_pair(copy.id).response == FIXED_A
        shown = app.screen.query_one(PairDetail).pane.text.plain
        assert FIXED_A in shown and "mimicry" not in shown
        await pilot.press("u")
        assert app.store.get_pair(copy.id).response == SOURCE
        # The whole list at once, from the bulk dialog: one repaired, one rejected for bringing a new error.
        await pilot.press("b")
        assert isinstance(app.screen, BulkActionScreen)
        await pilot.press("f")
        await wait_until(pilot, lambda: not pane.repairing)
        assert [p.response for p in app.store.get_pairs([copy.id, non.id])] == [FIXED_A, NON_A]
        failed = app.store.list_jobs(status="failed")
        assert [j.pair_id for j in failed] == [non.id] and "ai_disclaimer" in (failed[0].error or "")


def test_a_repair_that_echoes_the_repair_prompt_is_rejected(project: Store, server: FakeOllama) -> None:
    """A weak model answers with the instruction it was given ("copies its source word for word"): not a repair."""
    copy, _ = flagged_pairs(project)
    echo = "The answer copies its source word for word, so a failing job is tried three more times and then parked."
    server.responder = scripted({COPY_Q: echo})
    plan_repair(project, checks=["mimicry"])
    _, handler = run_repair(project, server)
    (outcome,) = handler.outcomes
    assert outcome.outcome == FAILED and "repeats the repair prompt" in outcome.reason
    assert project.get_pair(copy.id).response == SOURCE
