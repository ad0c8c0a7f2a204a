"""The local judge against tests/fake_ollama.py, driven by the real ``ollama`` client.

The fake stands in for an Ollama server because none can run here; it speaks Ollama's
HTTP protocol, so the client, the backend and the judge run exactly as they would
against a real server. Scripted responders return chosen scores so stored figures can
be checked exactly.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.errors import InvalidModelOutputError, ModelNotFoundError
from engine.generate.backends import ChatBackend, ChatOptions, make_backend
from engine.jobs import JobEvent
from engine.judge import (
    JUDGE_WARNING,
    RUBRIC,
    RUBRIC_VERSION,
    Rubric,
    agreement_report,
    apply_curation,
    apply_threshold,
    cohen_kappa,
    complete_judge_job,
    compute_total,
    criteria_for,
    judge_candidates,
    judge_runner,
    plan_curation,
    plan_judging,
    score_distribution,
)
from engine.models import (
    Chunk,
    Document,
    Pair,
    PairKind,
    PairStatus,
    PairWarning,
    Severity,
    Verdict,
)
from engine.store import PairFilter, Store
from tests.fake_ollama import FakeOllama, fake_ollama

MODEL = "qwen2.5:7b"
_QUESTION_RE = re.compile(r"Question:\n(.*?)\n\nAnswer:", re.DOTALL)


def question_of(request: dict[str, Any]) -> str:
    """The question of the pair a judge request is about."""
    match = _QUESTION_RE.search(request["messages"][-1]["content"])
    assert match, "the judge prompt names the pair's question"
    return match.group(1)


def scripted(scores_by_question: dict[str, float], *, claimed_total: float = 10.0):
    """A responder giving every criterion the score chosen for the pair's question."""

    def respond(request: dict[str, Any]) -> dict[str, Any]:
        score = scores_by_question[question_of(request)]
        names = list(request["format"]["properties"]["scores"]["properties"])
        return {"scores": {n: score for n in names}, "total": claimed_total, "reason": f"Scored {score}."}

    return respond


def make_pairs(store: Store, n: int, **fields: Any) -> list[Pair]:
    return store.add_pairs(
        [Pair.simple(f"What does setting {i} control?", f"Setting {i} controls how often the cache refreshes.", **fields)
         for i in range(n)]
    )


def run_judge(store: Store, server: FakeOllama, *, run_id: int | None = None, **kw: Any):
    backend = make_backend("ollama", MODEL, server.url)
    kw.setdefault("backoff_s", 0.0)
    runner = judge_runner(store, [backend], options=ChatOptions(temperature=0.1), **kw)

    async def go():
        try:
            return await runner.run(run_id)
        finally:
            await backend.aclose()

    return asyncio.run(go()).raise_for_stop()


@pytest.fixture
def server() -> Iterator[FakeOllama]:
    with fake_ollama() as srv:
        yield srv


# ---------------------------------------------------------------- rubric


def test_total_is_the_weighted_mean_of_the_criteria() -> None:
    criteria = criteria_for(PairKind.INSTRUCTION)
    scores = {"accuracy": 10, "answers_question": 4, "usefulness": 6, "clarity": 8, "style_fit": 2, "harmless": 10}
    weights = {c.id: c.weight for c in criteria}
    expected = sum(scores[k] * weights[k] for k in scores) / sum(weights.values())
    assert compute_total(scores, criteria) == round(expected, 2)
    assert [c.id for c in criteria_for(PairKind.REFUSAL)] == ["outside_corpus", "declination", "clarity", "style_fit", "harmless"]


# ---------------------------------------------------------------- verdicts


def test_verdicts_are_parsed_stored_and_the_models_total_is_not_trusted(project: Store, server: FakeOllama) -> None:
    pairs = make_pairs(project, 3)
    chosen = {pairs[0].instruction: 9.0, pairs[1].instruction: 4.0, pairs[2].instruction: 7.0}
    server.responder = scripted(chosen, claimed_total=10.0)
    # A warning from another check must survive the judge's own.
    project.set_warnings({pairs[1].id: [PairWarning(check="too_short", reason="short")]})
    run_id = plan_judging(project)
    assert run_id is not None
    summary = run_judge(project, server, run_id=run_id, threshold=7.0)
    assert (summary.done, summary.failed, summary.queued) == (3, 0, 0)
    verdicts = project.get_verdicts()
    for pair in pairs:
        verdict = verdicts[pair.id]
        score = chosen[pair.instruction]
        assert verdict.total == score  # the claimed total of 10 is ignored
        assert set(verdict.scores) == {c.id for c in RUBRIC.answer}
        assert (verdict.model, verdict.rubric_version, verdict.pair_revision) == (MODEL, RUBRIC_VERSION, pair.revision)
        assert verdict.reason == f"Scored {score}."
    high, low, edge = project.get_pairs([p.id for p in pairs])
    assert low.score == 4.0 and {w.check for w in low.warnings} == {"too_short", JUDGE_WARNING}
    assert high.score == 9.0 and not high.warnings
    assert edge.score == 7.0 and not edge.warnings  # the threshold itself passes
    assert project.count_pairs(PairFilter(warning=JUDGE_WARNING)) == 1
    assert project.job_counts(run_id)["done"] == 3
    request = server.requests_to("/api/chat")[0].body
    assert request["options"]["temperature"] == pytest.approx(0.1)
    assert "accuracy" in request["format"]["properties"]["scores"]["required"]


def test_refusal_pairs_use_the_refusal_criteria_and_the_corpus_titles(project: Store, server: FakeOllama) -> None:
    project.save_document(Document(path="guide.md", format="md", sha256="x", size=1, title="Cache guide"), [])
    refusal = project.add_pairs([Pair.simple("Who won the 1998 World Cup?", "The documents do not cover football.",
                                             kind=PairKind.REFUSAL)])[0]
    server.responder = scripted({refusal.instruction: 8.0})
    plan_judging(project)
    run_judge(project, server)
    body = server.requests_to("/api/chat")[0].body
    assert set(body["format"]["properties"]["scores"]["properties"]) == {c.id for c in RUBRIC.refusal}
    assert "Cache guide" in body["messages"][-1]["content"]
    assert project.get_verdicts()[refusal.id].total == 8.0


def test_sources_are_sent_to_the_judge(project: Store, server: FakeOllama) -> None:
    _, _ = project.save_document(
        Document(path="cache.md", format="md", sha256="y", size=1),
        [Chunk(ordinal=0, text="The cache refreshes every 30 seconds.", start=0, end=37)],
    )
    chunk_id = project.list_chunks()[0].id
    pair = project.add_pairs([Pair.simple("How often does the cache refresh?", "Every 30 seconds.", sources=[chunk_id])])[0]
    server.responder = scripted({pair.instruction: 9.0})
    plan_judging(project)
    run_judge(project, server)
    assert "The cache refreshes every 30 seconds." in server.requests_to("/api/chat")[0].body["messages"][-1]["content"]


@pytest.mark.parametrize("fault", ["invalid_json", "length"])
def test_malformed_verdicts_are_retried_then_recorded_as_failed(project: Store, server: FakeOllama, fault: str) -> None:
    pair = make_pairs(project, 1)[0]
    server.set_fault(fault)
    run_id = plan_judging(project)
    summary = run_judge(project, server, run_id=run_id, max_attempts=3)
    assert (summary.done, summary.failed) == (0, 1)
    assert len(server.requests_to("/api/chat")) == 3
    job = project.list_jobs(run_id=run_id)[0]
    assert job.status == "failed" and "after 3 attempt(s)" in (job.error or "")
    assert ("cut off" if fault == "length" else "not valid JSON") in (job.error or "")
    assert project.get_pair(pair.id).score is None and project.get_verdicts() == {}
    # Retries warm the temperature up so one bad sample is not simply repeated.
    temps = [r.body["options"]["temperature"] for r in server.requests_to("/api/chat")]
    assert temps[0] < temps[1] < temps[2]


def test_a_model_that_never_gives_a_valid_verdict_stops_the_run(project: Store, server: FakeOllama) -> None:
    make_pairs(project, 12)
    server.set_fault("invalid_json")
    run_id = plan_judging(project)
    with pytest.raises(InvalidModelOutputError, match="no valid verdict for the first"):
        run_judge(project, server, run_id=run_id, max_attempts=2, concurrency_per_host=2)
    counts = project.job_counts(run_id)
    assert counts["running"] == 0 and counts["done"] == 0
    assert 5 <= counts["failed"] <= 6 and counts["queued"] == 12 - counts["failed"]
    assert all(p.score is None for p in project.iter_pairs())


def test_a_schema_violation_is_retried_until_a_valid_verdict_comes(project: Store, server: FakeOllama) -> None:
    pair = make_pairs(project, 1)[0]
    calls = {"n": 0}

    def flaky(request: dict[str, Any]) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            return {"scores": {"accuracy": 14}, "total": 3, "reason": "x"}  # out of range and incomplete
        return scripted({pair.instruction: 6.0})(request)

    server.responder = flaky
    server.fail_next(1)  # and one server error first
    plan_judging(project)
    summary = run_judge(project, server)
    assert (summary.done, summary.failed) == (1, 0)
    assert calls["n"] == 2 and len(server.requests_to("/api/chat")) == 3
    assert project.get_pair(pair.id).score == 6.0


def test_a_model_that_is_not_pulled_stops_the_run_with_a_clear_error(project: Store, server: FakeOllama) -> None:
    make_pairs(project, 2)
    run_id = plan_judging(project)
    backend = make_backend("ollama", "missing-model", server.url)
    with pytest.raises(ModelNotFoundError, match="ollama pull missing-model"):
        asyncio.run(judge_runner(project, [backend]).run(run_id)).raise_for_stop()
    assert project.job_counts(run_id)["queued"] == 2  # nothing lost: the next run picks them up


def test_an_unreachable_host_fails_with_a_clear_error(project: Store) -> None:
    make_pairs(project, 1)
    with fake_ollama() as srv:
        url = srv.url
    run_id = plan_judging(project)
    backend = make_backend("ollama", MODEL, url)
    with pytest.raises(Exception, match="Cannot reach Ollama"):
        asyncio.run(judge_runner(project, [backend], backoff_s=0).run(run_id)).raise_for_stop()
    assert project.job_counts(run_id)["queued"] == 1


# ---------------------------------------------------------------- incremental


def test_only_new_or_edited_pairs_are_judged_again(project: Store, server: FakeOllama) -> None:
    pairs = make_pairs(project, 4)
    plan_judging(project)
    run_judge(project, server)
    assert plan_judging(project) is None
    edited = pairs[2].model_copy(update={"messages": Pair.simple(pairs[2].instruction, "A better answer entirely.").messages})
    project.update_pair(edited)
    project.set_status([pairs[0].id], PairStatus.ACCEPTED)  # a decision, not an edit: no new verdict needed
    new = project.add_pairs([Pair.simple("A brand new question?", "A brand new answer to it.")])[0]
    server.reset_stats()
    run_id = plan_judging(project)
    assert {j.pair_id for j in project.list_jobs(run_id=run_id)} == {pairs[2].id, new.id}
    assert plan_judging(project) is None  # already queued: never planned twice
    run_judge(project, server)
    assert len(server.requests_to("/api/chat")) == 2
    assert project.get_verdicts()[pairs[2].id].pair_revision == project.get_pair(pairs[2].id).revision
    # --all judges everything again; a new rubric version does too.
    assert len(project.list_jobs(run_id=plan_judging(project, only_changed=False))) == 5
    run_judge(project, server)
    newer = Rubric(version="2.0", answer=RUBRIC.answer, refusal=RUBRIC.refusal)
    assert len(project.list_jobs(run_id=plan_judging(project, rubric=newer))) == 5


def test_an_edit_during_judging_keeps_the_verdict_but_not_the_score(project: Store) -> None:
    pair = make_pairs(project, 1)[0]
    run_id = plan_judging(project)
    job = project.claim_job("h", run_id=run_id, task="judge")
    assert job is not None
    project.update_pair(pair.model_copy(update={"messages": Pair.simple("Changed?", "Changed answer here.").messages}))
    verdict = Verdict(pair_id=pair.id, pair_revision=pair.revision, model="m", rubric_version=RUBRIC_VERSION,
                      scores={"accuracy": 2.0}, total=2.0, reason="r")
    assert complete_judge_job(project, job.id, verdict, content_hash=pair.content_hash(),
                              warning_check=JUDGE_WARNING, warning=None)
    assert project.get_pair(pair.id).score is None
    assert [c[0] for c in judge_candidates(project, rubric_version=RUBRIC_VERSION)] == [pair.id]


def test_a_failed_rejudge_of_an_edited_pair_drops_its_old_score(project: Store, server: FakeOllama) -> None:
    pair = make_pairs(project, 1)[0]
    server.responder = scripted({pair.instruction: 9.0, "Edited?": 9.0})
    plan_judging(project)
    run_judge(project, server)
    project.update_pair(pair.model_copy(update={"messages": Pair.simple("Edited?", "Edited answer here.").messages}))
    server.set_fault("invalid_json")
    plan_judging(project)
    assert run_judge(project, server, max_attempts=2).failed == 1
    assert project.get_pair(pair.id).score is None


# ---------------------------------------------------------------- the queue


def test_runs_resume_after_a_crash_and_respect_concurrency(project: Store) -> None:
    make_pairs(project, 8)
    run_id = plan_judging(project)
    crashed = project.claim_job("dead-process", run_id=run_id, task="judge")
    assert crashed is not None
    with project.transaction() as conn:  # left running by a process that has since died
        conn.execute("UPDATE jobs SET owner = ? WHERE id = ?", (f"{socket.gethostname()}:{_dead_pid()}", crashed.id))
    with fake_ollama(latency=0.1) as srv:
        events: list[JobEvent] = []
        backend = make_backend("ollama", MODEL, srv.url)
        runner = judge_runner(project, [backend], concurrency_per_host=3)
        summary = asyncio.run(runner.run(run_id, events.append))
        assert srv.peak_concurrency == 3
    assert summary.done == 8 and project.job_counts(run_id)["done"] == 8
    last = [e for e in events if e.kind == "job_done"][-1].progress
    assert last.done == last.total == 8 and last.pairs_per_min > 0 and last.eta_s == 0


def test_several_hosts_share_the_work(project: Store) -> None:
    make_pairs(project, 6)
    with fake_ollama(latency=0.05) as a, fake_ollama(latency=0.05) as b:
        backends = [make_backend("ollama", MODEL, a.url), make_backend("ollama", MODEL, b.url)]
        summary = asyncio.run(judge_runner(project, backends, concurrency_per_host=1).run(plan_judging(project)))
        assert a.requests_to("/api/chat") and b.requests_to("/api/chat")
    assert summary.done == 6


def test_a_host_that_goes_down_mid_run_leaves_its_work_to_the_others(project: Store) -> None:
    make_pairs(project, 10)
    run_id = plan_judging(project)
    with fake_ollama(latency=0.05) as a, fake_ollama(latency=0.05) as b:
        backends = [make_backend("ollama", MODEL, a.url), make_backend("ollama", MODEL, b.url)]
        runner = judge_runner(project, backends, concurrency_per_host=1, max_attempts=2, backoff_s=0)
        events: list[JobEvent] = []

        def on_event(event: JobEvent) -> None:
            events.append(event)
            if event.kind == "job_done" and event.progress.done == 1:
                a.set_fault("refuse")

        summary = asyncio.run(runner.run(run_id, on_event)).raise_for_stop()
    down = [e for e in events if e.kind == "host_down"]
    assert [e.host for e in down] == [a.url] and "Cannot reach Ollama" in (down[0].error or "")
    assert summary.done == 10 and summary.failed == 0 and summary.stopped_reason is None
    assert project.job_counts(run_id) == {"queued": 0, "running": 0, "done": 10, "failed": 0, "cancelled": 0}


def test_pause_resume_and_cancel(project: Store) -> None:
    make_pairs(project, 12)
    run_id = plan_judging(project)
    with fake_ollama(latency=0.05) as srv:
        backend: ChatBackend = make_backend("ollama", MODEL, srv.url)
        runner = judge_runner(project, [backend], concurrency_per_host=1)
        seen: list[str] = []

        def on_event(event: JobEvent) -> None:
            seen.append(event.kind)
            if event.kind == "job_done" and event.progress.done == 2:
                runner.pause()

        async def go():
            task = asyncio.create_task(runner.run(run_id, on_event))
            while not runner.paused:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.15)  # the request in flight finishes and is saved
            settled = project.job_counts(run_id)
            await asyncio.sleep(0.3)  # paused: nothing new is taken, nothing held
            assert project.job_counts(run_id) == settled and settled["running"] == 0
            paused_at = settled["done"]
            runner.resume()
            while project.job_counts(run_id)["done"] < 4:
                await asyncio.sleep(0.01)
            runner.cancel(drop_queued=True)
            return paused_at, await task

        paused_at, summary = asyncio.run(go())
    assert paused_at in (2, 3)  # the pause came with the second verdict; a third may be in flight
    assert summary.cancelled and "paused" in seen and "resumed" in seen and seen[-1] == "cancelled"
    counts = project.job_counts(run_id)
    assert counts["running"] == 0 and counts["queued"] == 0
    assert counts["done"] == summary.done and counts["cancelled"] == 12 - summary.done


# ---------------------------------------------------------------- using the score


def _score(store: Store, values: list[float], status: PairStatus = PairStatus.PENDING) -> list[int]:
    pairs = store.add_pairs(
        [Pair.simple(f"Question number {i} about caching?", f"Answer number {i} about caching.", status=status)
         for i in range(len(values))]
    )
    ids = [p.id for p in pairs]
    store.set_scores(dict(zip(ids, values, strict=True)))
    return ids


def test_threshold_changes_add_and_clear_the_warning_and_keep_others(project: Store) -> None:
    ids = _score(project, [5.0, 7.5, 9.0])
    project.set_warnings({ids[0]: [PairWarning(check="pii", severity=Severity.ERROR, reason="an email")]})
    assert apply_threshold(project, 8.0) == (2, 0)
    assert {w.check for w in project.get_pair(ids[0]).warnings} == {"pii", JUDGE_WARNING}
    assert apply_threshold(project, 6.0) == (1, 1)
    assert [w.check for w in project.get_pair(ids[1]).warnings] == []
    assert {w.check for w in project.get_pair(ids[0]).warnings} == {"pii", JUDGE_WARNING}
    dist = score_distribution(project, 6.0)
    assert (dist.scored, dist.below_threshold, dist.histogram[5], dist.histogram[7], dist.median) == (3, 1, 1, 1, 7.5)


def test_curate_dry_run_apply_and_undo(project: Store) -> None:
    pending = _score(project, [3.0, 6.9, 7.0, 9.0])
    accepted = _score(project, [2.0], PairStatus.ACCEPTED)
    plan = plan_curation(project, 7.0)
    assert [i for i, _ in plan.reject] == pending[:2] and plan.kept_accepted == 1
    assert project.count_pairs(PairFilter(status="rejected")) == 0  # planning changes nothing
    assert apply_curation(project, plan) == 2
    assert project.pair_ids(PairFilter(status="rejected")) == pending[:2]
    assert project.get_pair(accepted[0]).status is PairStatus.ACCEPTED
    entry = project.log_tail(1, step="judge")[0]
    assert entry.action == "curated" and entry.count == 2 and entry.detail["pair_ids"] == pending[:2]
    assert project.undo() is not None
    assert project.count_pairs(PairFilter(status="rejected")) == 0


def test_agreement_with_a_known_confusion_matrix(project: Store) -> None:
    # both accept 10, judge accepts/person rejects 3, judge rejects/person accepts 2, both reject 10
    _score(project, [8.0] * 10 + [2.0] * 2, PairStatus.ACCEPTED)
    _score(project, [9.0] * 3 + [3.0] * 10, PairStatus.REJECTED)
    _score(project, [1.0] * 5)  # pending pairs are not decisions
    report = agreement_report(project, 7.0)
    assert (report.both_accept, report.judge_accept_person_reject) == (10, 3)
    assert (report.judge_reject_person_accept, report.both_reject) == (2, 10)
    assert report.agreement == pytest.approx(0.8)
    # p_o = 0.8, p_e = 0.52 * 0.48 + 0.48 * 0.52 = 0.4992
    assert report.kappa == pytest.approx((0.8 - 0.4992) / (1 - 0.4992))


def test_agreement_needs_twenty_decisions(project: Store) -> None:
    _score(project, [8.0] * 12, PairStatus.ACCEPTED)
    report = agreement_report(project, 7.0)
    assert not report.enough and report.needed == 8 and report.agreement is None


def test_cohen_kappa_edges() -> None:
    assert cohen_kappa(10, 0, 0, 10) == 1.0
    assert cohen_kappa(5, 5, 5, 5) == 0.0
    assert cohen_kappa(20, 0, 0, 0) is None  # both always accept: agreement by chance is total


# ---------------------------------------------------------------- the command line


def test_cli_judge_curate_and_agreement(tmp_path: Path, server: FakeOllama) -> None:
    root = tmp_path / "proj"
    store = Store.init(root)
    pairs = make_pairs(store, 4)
    store.close()
    server.responder = scripted({pairs[0].instruction: 3.0, pairs[1].instruction: 5.0,
                                 pairs[2].instruction: 8.0, pairs[3].instruction: 9.5})
    cli = CliRunner()

    def invoke(*args: str):
        result = cli.invoke(main, ["-p", str(root), *args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    missing = invoke("judge", "--host", server.url)  # the default generation model is not pulled
    assert missing.exit_code == 1 and "ollama pull qwen2.5:7b-instruct" in missing.output
    done = invoke("judge", "--host", server.url, "--model", MODEL, "--threshold", "6", "--json")
    data = json.loads(done.output)
    assert done.exit_code == 0 and data["judged"] == 4 and data["flagged"] == 2
    assert data["distribution"]["histogram"]["9"] == 1 and data["distribution"]["threshold"] == 6.0
    assert "judge_threshold = 6.0" in (root / "pairforge.toml").read_text()
    again = invoke("judge", "--host", server.url, "--model", MODEL)
    assert "already has a verdict" in again.output and "2 below 6" in again.output
    dry = invoke("curate", "--min-score", "7")
    assert "2 pair(s) would be rejected" in dry.output
    applied = json.loads(invoke("curate", "--min-score", "7", "--apply", "--json").output)
    assert applied["rejected"] == 2
    assert "review 18 more" in invoke("judge", "--agreement").output.replace("\n", " ")
    with Store.open(root) as reopened:
        assert reopened.pair_ids(PairFilter(status="rejected")) == [pairs[0].id, pairs[1].id]
    assert invoke("undo").exit_code == 0
    bad = invoke("judge", "--threshold", "12")
    assert bad.exit_code == 1 and "outside 0-10" in bad.output


def test_engine_judge_does_not_import_textual() -> None:
    code = "import sys, engine.judge, engine.cli.judge; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "False"


def test_cancel_from_another_thread_keeps_the_rest_queued(project: Store) -> None:
    make_pairs(project, 10)
    run_id = plan_judging(project)
    with fake_ollama(latency=0.1) as srv:
        backend = make_backend("ollama", MODEL, srv.url)
        runner = judge_runner(project, [backend], concurrency_per_host=2)

        def on_event(event: JobEvent) -> None:
            if event.kind == "job_done" and event.progress.done == 2:
                # A UI thread asks for the stop, as the app's worker threads do.
                threading.Thread(target=runner.cancel).start()

        summary = asyncio.run(runner.run(run_id, on_event))
        counts = project.job_counts(run_id)
        assert summary.cancelled and counts["running"] == 0 and counts["cancelled"] == 0
        assert counts["queued"] == summary.queued == 10 - summary.done
        rest = run_judge(project, srv, run_id=run_id)  # a later run finishes them
    assert rest.done == 10 - summary.done and project.job_counts(run_id)["done"] == 10


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid
