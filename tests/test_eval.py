"""Eval of a fine-tuned model against its base, over real HTTP against tests/fake_ollama.py.

The stand-in server plays the models under test (no real Ollama can run here) with
``eval_responder``: the "mimic" model answers with verbatim corpus passages and never
declines, the "assistant" model declines out-of-corpus questions, asks back on ambiguous
ones and answers the rest in its own words. Everything else is real: the sample corpus
imported by the importer, the split, the official ollama client, the job runner, SQLite.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.evaluate import (
    asks_to_clarify,
    build_probes,
    comparison,
    current_probes,
    declines,
    failing_probes,
    generate_more_like,
    keeps_meaning,
    run_eval,
    run_metrics,
    teaching_pairs,
    write_report,
)
from engine.generate.backends import make_backend
from engine.ingest.importer import import_paths
from engine.models import Pair, PairKind
from engine.quality.split import make_split
from engine.store import Store
from engine.store.evals import AMBIGUOUS, OUT_OF_CORPUS, PARAPHRASE, VALIDATION
from tests.fake_ollama import FakeOllama, eval_responder

MIMIC, ASSISTANT, GENERATOR = "mimic:latest", "assistant:latest", "qwen2.5:7b"


def _question(chunk_text: str, i: int) -> str:
    words = [w.strip(".,:;()`*#'\"") for w in chunk_text.split()]
    terms = [w for w in words if len(w) > 5 and w.isalpha()][:3] or ["this", "part"]
    return f"How does {' and '.join(terms[:2])} work in case {i}?"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[str]]]:
    """A project over the sample docs with one pair per chunk (half in validation), and the chunk texts."""
    from engine.resources import sample_docs_dir

    root = tmp_path_factory.mktemp("eval") / "project"
    store = Store.init(root)
    import_paths(store, [sample_docs_dir()])
    chunks = [c for c in store.list_chunks() if len(c.text.split()) > 30][:24]
    store.add_pairs(
        Pair.simple(
            _question(c.text, i),
            "In short, it comes down to " + ", ".join(w for w in c.text.split()[::7][:12]) + ".",
            sources=[c.id or 0], kind=PairKind.INSTRUCTION,
        )
        for i, c in enumerate(chunks)
    )
    make_split(store, validation_fraction=0.5, seed=1)
    texts = [c.text for c in store.list_chunks()]
    store.close()
    yield root, texts


@pytest.fixture
def project(corpus: tuple[Path, list[str]], tmp_path: Path) -> Iterator[Store]:
    """A fresh copy of the corpus project for one test."""
    import shutil

    copy = tmp_path / "project"
    shutil.copytree(corpus[0], copy)
    store = Store.open(copy)
    yield store
    store.close()


@pytest.fixture
def server(corpus: tuple[Path, list[str]]) -> Iterator[FakeOllama]:
    with FakeOllama([MIMIC, ASSISTANT, GENERATOR], responder=eval_responder(corpus[1])) as srv:
        yield srv


def _eval(store: Store, url: str, model: str, baseline: str | None = None, *, judge: bool = True) -> object:
    async def go() -> object:
        backends = [make_backend("ollama", model, url)]
        base = [make_backend("ollama", baseline, url)] if baseline else []
        para = [make_backend("ollama", GENERATOR, url)]
        judge_backend = make_backend("ollama", GENERATOR, url) if judge else None
        try:
            return await run_eval(
                store, model=model, backends=backends, baseline=baseline, baseline_backends=base,
                paraphrase_backends=para, judge=judge_backend, concurrency=4,
            )
        finally:
            for b in [*backends, *base, *para, *([judge_backend] if judge_backend else [])]:
                await b.aclose()

    return asyncio.run(go())


def test_probes_are_built_once_and_kept(project: Store) -> None:
    first = build_probes(project)
    assert first.added[VALIDATION] == project.count_pairs() // 2 or first.added[VALIDATION] > 0
    assert first.added[OUT_OF_CORPUS] >= 10 and first.added[AMBIGUOUS] >= 10
    again = build_probes(project)
    assert again.added == {} and again.stored == first.stored
    # Out-of-corpus questions are verified absent: none names a topic the sample docs cover.
    topics = [p.topic for p in project.evals.probes(OUT_OF_CORPUS)]
    assert topics and not any("cache" in t.lower() or "worker" in t.lower() for t in topics)


def test_a_validation_pair_moved_into_training_is_no_longer_asked(project: Store) -> None:
    build_probes(project)
    validation = project.evals.probes(VALIDATION)
    moved = validation[0].pair_id or 0
    project.set_splits({moved: "train"})
    asked = {p.pair_id for p in current_probes(project) if p.kind == VALIDATION}
    assert moved not in asked and len(asked) == len(validation) - 1


def test_paraphrases_must_keep_the_meaning() -> None:
    original = "How does the retry backoff work for the payment worker?"
    assert keeps_meaning(original, "For the payment worker, how does its retry backoff work?") is not None
    assert keeps_meaning(original, original) is None
    assert keeps_meaning(original, "What is the weather like in Lisbon tomorrow?") is None


def test_a_free_rewording_keeps_the_meaning() -> None:
    """Synonyms, irregular verbs and a rebuilt sentence that says one word its own way are rewordings."""
    assert keeps_meaning("How do I enable metrics on the broker?", "How can I turn on the broker's metrics?") is not None
    assert keeps_meaning(
        "Why did my job run twice when nothing crashed?", "Nothing crashed, yet my job ran twice. Why?"
    ) is not None
    assert keeps_meaning(
        "Does the Python client retry requests when the broker is unreachable?",
        "When the broker can't be reached, will the Python client retry its requests?",
    ) is not None
    assert keeps_meaning(
        "How do I cancel a job that is already running?",
        "Is there a way to stop a job that has already started running?",
    ) is not None


def test_a_paraphrase_that_swaps_or_negates_what_is_asked_does_not_keep_it() -> None:
    """Each keeps almost every word of its original, which the overlap alone let through."""
    assert keeps_meaning("How often does the Go worker heartbeat?", "How often does the Python worker heartbeat?") is None
    assert keeps_meaning(
        "Which port does the broker listen on by default?", "Which port does the worker listen on by default?"
    ) is None
    assert keeps_meaning(
        "What is the default value of retry.max_backoff?", "What is the default value of retry.max_attempts?"
    ) is None
    assert keeps_meaning("How do I turn on TLS for the Python client?", "How do I turn off TLS for the Python client?") is None
    assert keeps_meaning(
        "Which settings can be changed without restarting the broker?",
        "Which settings cannot be changed without restarting the broker?",
    ) is None
    assert keeps_meaning(
        "Is it safe to run the same handler on two workers?", "Why is it unsafe to run the same handler on two workers?"
    ) is None
    assert keeps_meaning("Why was my job dead-lettered?", "My job was dead-lettered. How do I requeue it?") is None
    assert keeps_meaning(
        "What does worker.concurrency control?", "worker.concurrency controls how many handlers a worker runs at once."
    ) is None
    # Rebuilt, and naming another thing in place of the broker.
    assert keeps_meaning(
        "What happens to running jobs when the broker shuts down?",
        "When the worker is shut down, what becomes of the jobs that are running?",
    ) is None


def test_declines_and_clarifications_are_recognised() -> None:
    assert declines("That isn't covered in the documentation I was trained on.")
    assert declines("I don't have any information about Kafka consumer groups.")
    assert not declines("The worker retries three times; there is no limit on the queue length after that.")
    assert asks_to_clarify("Which service do you mean? Tell me and I will explain.")
    assert not asks_to_clarify("Set the timeout to 30 seconds. Why? Because the default is too short.")


def test_polite_and_indirect_declines_are_recognised() -> None:
    assert declines(
        "That's outside what the documentation I was trained on covers, so I'd rather not give you a "
        "Kubernetes HPA configuration that might be wrong."
    )
    assert declines("I wasn't trained on anything about SAP integrations, so I can't give you a reliable answer.")
    assert declines("None of the documents I have describe Helm charts.")
    assert declines("The library's lending rules I have say nothing about interlibrary loans from abroad.")
    assert declines("Regrettably that isn't a subject my documentation touches on.")
    assert declines("Honestly, I'd be guessing: there's no mention of OAuth scopes in my sources.")
    assert declines("The Tidewater documentation is silent on Windows service installation.")


def test_an_answer_saying_what_the_system_does_not_do_is_not_a_decline() -> None:
    assert not declines(
        "Tidewater does not cover jobs that never reached the broker: retry those in your own code with the client's retries."
    )
    assert not declines("The payload isn't included in the metrics; only counts and latencies are exported at /metrics.")
    assert not declines(
        "I can't find a better way than polling for this: call client.result(job_id, wait=30) and it blocks until the job finishes."
    )
    assert not declines(
        "The docs don't recommend setting worker.lease below 10 seconds, because heartbeats every third of it would flood the broker."
    )
    assert not declines("It's not documented as a separate setting: the heartbeat interval is a third of worker.lease.")
    # Only the opening counts: an answer that later says what the docs leave out still answered.
    assert not declines(
        "Run the broker with systemd: copy tidewaterd.service to /etc/systemd/system, set broker.listen and "
        "queue.backend in tidewater.toml, then systemctl enable --now tidewaterd. Workers need the same broker URL "
        "and their queues in worker.queues; restart them after changing worker.concurrency. "
        "The docs don't cover running it as a Windows service."
    )


def test_declines_that_say_so_indirectly_are_recognised() -> None:
    assert declines("Nothing I learned covers Azure Functions, I'm afraid.")
    assert declines("I couldn't find that in the manual: it doesn't say anything about using the machine with oat milk.")
    assert declines("I'm not aware of any information on that in the docs I was trained on.")
    assert declines("The knowledge I have doesn't extend to OpenTelemetry tracing.")
    assert declines("What I've learned is limited to Tidewater, and Kinesis is not one of its topics.")
    assert declines("Ruby bindings are not one my sources mention.")


def test_short_and_hedged_declines_are_recognised() -> None:
    assert declines("Not sure, sorry.")
    assert declines("I'm not sure what the best Postgres vacuum settings would be for that.")
    assert declines("No idea, sorry.")
    assert declines("I have no idea how Azure Service Bus sessions work.")
    assert declines("Can't say, I'm afraid.")
    assert declines("I don't have a reliable answer on Elasticsearch index lifecycle policies.")


def test_declines_that_send_the_user_elsewhere_are_recognised() -> None:
    assert declines("That's a question for the Docker Swarm documentation.")
    assert declines("For Ansible playbooks you'd need to consult Ansible's own documentation.")
    assert declines("You'd be better off asking in the Grafana community forum about dashboards.")


def test_hedged_answers_and_answers_about_what_is_missing_are_not_declines() -> None:
    assert not declines("I'm not sure which version you run, but since 1.4 the default lease is 30 seconds.")
    assert not declines("I'm not sure how much memory you have, so start with worker.concurrency = 4.")
    assert not declines("Can't say for sure, but the default for retry.max_attempts is 5.")
    assert not declines("No idea is too small for a queue: each queue name is created the first time a job is enqueued to it.")
    assert not declines("Nothing in the docs says you must restart workers after a config change; the broker reloads it.")
    assert not declines("Cannot answer requests while draining: the broker returns 503 until shutdown_grace ends.")
    assert not declines("I couldn't find that setting in 1.2 either; it was renamed to worker.lease in 1.3.")
    assert not declines("That's a question for your own handler: the broker only sees whether it returned an error.")
    assert not declines("You'd want worker.concurrency at 4 to 8 on a small host; more than the CPU count rarely helps.")
    assert not declines("The client doesn't extend leases itself; the Go worker does it with heartbeats every 10 seconds.")
    assert not declines("I can't recommend running the broker on a laptop that sleeps: leases expire and jobs run twice.")
    assert not declines("Unfortunately, the memory cache is lost on restart; use the redis backend to keep results.")
    assert not declines("It fails with 'not found' because the job id has expired from the result store.")


def test_a_question_about_which_of_two_things_is_asking_back() -> None:
    assert asks_to_clarify("Are you asking about the broker's queue backend or the result cache backend?")
    assert asks_to_clarify("Hmm, that could mean two settings. The payload limit, or the rate limit?")
    assert asks_to_clarify("Which operating system is the broker running on?")
    # Asked without a question mark.
    assert asks_to_clarify("Let me know whether you're on the Go worker or the Python one, and I'll give you the exact setting.")
    assert asks_to_clarify("Tell me which command you ran and what it printed.")
    assert asks_to_clarify("Not sure which one you mean here: the broker's lease or the worker's heartbeat?")


def test_offers_rhetorical_and_quoted_questions_are_not_asking_back() -> None:
    assert not asks_to_clarify(
        "Set worker.lease to 2m for long handlers. Should I also show how to heartbeat by hand?"
    )
    assert not asks_to_clarify(
        "Install the client with pip install tidewater. Do you want the Go worker too? It ships in the release archive."
    )
    assert not asks_to_clarify(
        "Should you use Postgres? Once you run more than one broker, yes, because SQLite allows one writer."
    )
    assert not asks_to_clarify(
        "Is there a limit on queue names? No, any UTF-8 string up to 200 bytes works. Anything else I can help with?"
    )
    assert not asks_to_clarify("Query finished jobs with GET /v1/jobs?state=done; the response is paged by 100.")
    assert not asks_to_clarify(
        'The docs\' question "How do I requeue a dead job?" has the full steps: run twctl dead requeue <id>.'
    )
    assert not asks_to_clarify(
        "Use Postgres once you have more than one broker. Not sure how many you have? Run twctl status: "
        "it lists every broker connected to the database."
    )
    assert not asks_to_clarify(
        "Travel booked through the portal is paid by the company directly. Did you book outside the portal? "
        "Then submit the receipt within 30 days."
    )


def test_a_mimic_is_reported_as_a_mimic_and_an_assistant_is_not(project: Store, server: FakeOllama) -> None:
    outcome = _eval(project, server.url, ASSISTANT, baseline=MIMIC)
    assert outcome.stopped_reason is None  # type: ignore[attr-defined]
    report = comparison(project)
    tuned, base = report["runs"]
    assert (tuned["model"], base["model"]) == (ASSISTANT, MIMIC)
    # The mimic recites the corpus and never declines.
    assert base["copy_rate"] >= 0.9 and base["refusal_recall"] <= 0.1 and base["mimic"]
    assert base["clarification_rate"] <= 0.1
    # The assistant answers in its own words, declines what the corpus lacks, asks back when unclear.
    assert tuned["copy_rate"] <= 0.1 and tuned["refusal_recall"] >= 0.9 and not tuned["mimic"]
    assert tuned["refusal_precision"] >= 0.9 and tuned["clarification_rate"] >= 0.9
    assert tuned["non_answer_rate"] == 0
    # The judge scored both against the references (a recital holds the reference's facts too).
    assert tuned["agreement"] is not None and base["agreement"] is not None
    judged = [r for r in server.requests_to("/api/chat") if "Reference answer:" in json.dumps(r.body)]
    assert len(judged) == 2 * sum(1 for p in project.evals.probes() if p.reference)
    # Paraphrases were written, checked and asked too.
    assert project.evals.probe_counts()[PARAPHRASE] > 0 and tuned["agreement_paraphrased"] is not None
    # Every probe row has both answers, with the gate's flags on them.
    row = next(r for r in report["probes"] if r["kind"] == VALIDATION)
    assert set(row["answers"]) == {str(tuned["run_id"]), str(base["run_id"])}
    assert "mimicry" in row["answers"][str(base["run_id"])]["flags"]


def test_probes_are_reused_and_runs_compare_over_time(project: Store, server: FakeOllama) -> None:
    _eval(project, server.url, MIMIC, judge=False)
    stored = project.evals.probe_counts()
    asked = sum(1 for r in server.requests_to("/api/chat") if (r.body or {}).get("model") == GENERATOR)
    _eval(project, server.url, MIMIC, judge=False)
    assert project.evals.probe_counts() == stored
    # No question is paraphrased twice.
    assert sum(1 for r in server.requests_to("/api/chat") if (r.body or {}).get("model") == GENERATOR) == asked
    runs = [r for r in project.evals.runs() if r["params"]["model"] == MIMIC]
    assert len(runs) == 2
    first, second = (run_metrics(project, r["id"]) for r in runs)
    assert first.copy_rate == second.copy_rate and first.answered == second.answered


def test_an_interrupted_eval_resumes_where_it_stopped(project: Store, server: FakeOllama) -> None:
    from engine.evaluate import plan_eval

    build_probes(project)
    run_id = plan_eval(project, ASSISTANT, role="tuned", params={"baseline_run": None, "baseline_model": None})
    # A process died holding one job and having answered none: its lease ran out.
    job = project.jobs.claim("gone", run_id=run_id, task="eval", lease_s=-1)
    assert job is not None
    outcome = _eval(project, server.url, ASSISTANT, judge=False)
    assert outcome.tuned_run == run_id  # type: ignore[attr-defined]
    counts = project.job_counts(run_id)
    assert counts["queued"] == counts["running"] == 0 and counts["done"] == len(project.evals.answers(run_id))


def test_failing_probes_become_targeted_jobs_and_lead_to_their_pairs(project: Store, server: FakeOllama) -> None:
    outcome = _eval(project, server.url, MIMIC, judge=False)
    failing = failing_probes(project, outcome.tuned_run)  # type: ignore[attr-defined]
    kinds = {p.kind for p in failing}
    assert {VALIDATION, OUT_OF_CORPUS, AMBIGUOUS} <= kinds
    run_id, plan = generate_more_like(project, failing)
    jobs = project.list_jobs(run_id=run_id)
    assert len(jobs) == len(plan.jobs) and all(j.task == "generate" for j in jobs)
    planned = {j.kind for j in jobs}
    assert {PairKind.INSTRUCTION, PairKind.REFUSAL, PairKind.CLARIFICATION} <= planned
    in_corpus = next(p for p in failing if p.kind == VALIDATION)
    grounded = {c for j in jobs if j.kind is PairKind.INSTRUCTION for c in j.chunk_ids}
    assert set(in_corpus.chunk_ids) <= grounded
    taught, label = teaching_pairs(project, in_corpus)
    assert in_corpus.pair_id not in taught and "sources" in label
    assert all(project.get_pair(i).split != "validation" for i in taught)


def test_markdown_report_and_cli(project: Store, server: FakeOllama, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [
        "--project", str(project.root), "eval", "--model", ASSISTANT, "--baseline", MIMIC,
        "--host", server.url, "--backend", "ollama", "--paraphrase-model", GENERATOR, "--judge-model", GENERATOR,
        "--json",
    ])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["model"] for r in data["runs"]] == [ASSISTANT, MIMIC]
    assert data["runs"][1]["mimic"] and not data["runs"][0]["mimic"]
    report = Path(data["report"])
    assert report.exists() and "| verbatim copies |" in report.read_text()
    text = CliRunner().invoke(main, ["--project", str(project.root), "eval", "--report-only"])
    assert text.exit_code == 0 and "verbatim copies" in text.output and MIMIC in text.output
    more = CliRunner().invoke(main, ["--project", str(project.root), "eval", "--more-like", "failing", "--json"])
    assert more.exit_code == 0, more.output
    assert json.loads(more.stdout)["jobs"] > 0
    path = write_report(project, comparison(project), tmp_path / "r.md")
    assert "Failing probes" in path.read_text()


def test_eval_without_a_validation_split_says_what_to_do(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "bare")
    store.close()
    result = CliRunner().invoke(main, ["--project", str(tmp_path / "bare"), "eval", "--model", ASSISTANT])
    assert result.exit_code != 0
    assert "no validation pairs" in result.output and "pairforge split" in result.output
    assert "Traceback" not in result.output
