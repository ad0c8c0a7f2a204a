"""The gate's content checks: non-answers, copies on prose, leaks, non-requests, vacuous, one-sided, offensive."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.models import Chunk, Pair, PairKind
from engine.quality import CHECKS, check_pair, recheck
from engine.quality.mimicry import find_copies
from engine.quality.offensive import offensive_classifier
from engine.quality.prose import prose_words
from engine.settings import QualitySettings

SETTINGS = QualitySettings()
RETRY = (
    "When an attempt fails with a retryable error, the broker computes the delay before the next attempt "
    "from the base delay and the multiplier, caps it at the maximum delay, and then spreads it randomly by "
    "up to the jitter in either direction so that many jobs failing together do not all come back at the "
    "same instant. The fifth failure exhausts the attempts and sends the job to the dead-letter queue."
)
CACHE = (
    "The cache lives in the broker, not in the client, so every client and every language shares it. With "
    "the memory backend it is an LRU of at most ten thousand results inside one broker process and is lost "
    "on restart; with the redis backend entries survive restarts and are shared between several brokers."
)


def chunk(text: str = RETRY, chunk_id: int = 1, document_id: int = 1, heading: str = "The retry policy") -> Chunk:
    return Chunk(id=chunk_id, document_id=document_id, ordinal=0, text=text, start=100, end=100 + len(text),
                 heading_path=["Error Handling", heading])


def checks(pair: Pair, sources: list[Chunk] | None = None, settings: QualitySettings = SETTINGS) -> set[str]:
    return {w.check for w in check_pair(pair, sources or [], settings)}


def reason(pair: Pair, check: str, sources: list[Chunk] | None = None) -> str:
    (warning,) = [w for w in check_pair(pair, sources or [], SETTINGS) if w.check == check]
    assert warning.severity == CHECKS[check].severity
    return warning.reason


# ------------------------------------------------------------------------------------------ non_answer


@pytest.mark.parametrize(
    ("instruction", "response"),
    [
        ("What IS the error handling pattern?", "Chapter 5 discusses error handling patterns and when to use them."),
        ("What is mentioned about caching?", "Caching is mentioned as a performance optimization."),
        ("How are delays computed?", "This is explained in the section on the retry policy."),
        ("How long do dead jobs stay?", "The dead-letter queue is covered in the error-handling guide."),
        ("How do I handle fatal errors?", "The guide says that fatal errors should be handled gracefully."),
        ("What does the cached_job decorator do?", "The manual has a section about the decorator. It is an important topic."),
        ("How do I requeue a job?", "For details, see the section on the dead-letter queue."),
    ],
)
def test_non_answer_trips_and_names_the_phrase(instruction: str, response: str) -> None:
    text = reason(Pair.simple(instruction, response), "non_answer")
    assert "instead of stating it" in text and "state the fact" in text


@pytest.mark.parametrize(
    ("instruction", "response"),
    [
        ("What is Chapter 5's pattern?", "Chapter 5's pattern is: wrap the error with context, then return it; mark deterministic failures fatal."),
        ("What does the chapter say about plain errors?", "The error-handling chapter explains that unmarked errors are retried, since most surprises in a queue pass on their own."),
        ("What does the guide say about dead jobs?", "The dead-letter section of the guide says a job dies when it fails fatally or runs out of attempts, and stays 168 hours."),
        ("How do retries back off?", "Delays double from 2 seconds, capped at five minutes, with 20% jitter. (Source: Error Handling › The retry policy)"),
        ("What is covered by the retry policy?", "Only retryable failures are covered by the retry policy; fatal errors go straight to the dead-letter queue."),
    ],
)
def test_naming_a_chapter_while_stating_its_content_is_not_a_non_answer(instruction: str, response: str) -> None:
    assert "non_answer" not in checks(Pair.simple(instruction, response))


def test_non_english_answers_get_no_false_non_answer() -> None:
    for instruction, response in [
        ("Was passiert nach fünf Fehlversuchen?", "Der Job landet in der Dead-Letter-Queue; das Kapitel beschreibt, wie man ihn erneut einreiht."),
        ("¿Dónde se explica el lease?", "El capítulo de arquitectura explica que el lease dura treinta segundos y se extiende con latidos."),
        ("Que dit la section sur le cache ?", "La section explique que la clé vient du type de job et d'un hachage du payload."),
    ]:
        assert checks(Pair.simple(instruction, response)) & {"non_answer", "vacuous_answer", "not_a_request"} == set()


def test_refusals_and_clarifications_are_not_non_answers() -> None:
    refusal = Pair.simple("How do I deploy on Kubernetes?", "The knowledge base does not cover Kubernetes; it covers the broker and workers.", kind=PairKind.REFUSAL)
    clarify = Pair.simple("How long is the timeout?", "Do you mean the lease described in the architecture guide, or the client's wait?", kind=PairKind.CLARIFICATION)
    assert "non_answer" not in checks(refusal) and "non_answer" not in checks(clarify)


# --------------------------------------------------------------------------------------------- mimicry


def test_one_copied_sentence_among_original_ones_is_flagged_with_its_span_and_place() -> None:
    copied = "The fifth failure exhausts the attempts and sends the job to the dead-letter queue."
    answer = f"Waits grow from two seconds and are randomised a little. {copied} Nothing else changes."
    text = reason(Pair.simple("What happens after repeated failures?", answer, sources=[1]), "mimicry", [chunk()])
    assert '"The fifth failure exhausts the attempts and sends the job to the dead-letter queue" (answer' in text
    start = answer.index(copied)
    assert f"answer characters {start}-{start + len(copied) - 1}" in text
    source_start = 100 + RETRY.index("The fifth failure")
    assert f"source: document 1, Error Handling › The retry policy, characters {source_start}-" in text


def test_near_verbatim_copy_with_small_edits_is_one_run() -> None:
    edited = (
        "When an attempt fails with a retryable error, the server computes the delay before next attempt from "
        "the base delay and also the multiplier, caps it at the maximum, and then spreads it by up to the "
        "jitter in either direction so that many tasks failing together do not all come back at the same instant."
    )
    report = find_copies(edited, [chunk()])
    assert report.longest is not None and report.longest.words >= 40 and len(report.spans) == 1
    assert "mimicry" in checks(Pair.simple("How is the retry delay computed?", edited, sources=[1]), [chunk()])


def test_paraphrase_and_shared_short_phrases_pass() -> None:
    paraphrase = (
        "Each retry waits longer than the one before, starting from the base delay and multiplying, never beyond "
        "the cap, with some random spread so a burst of failures does not return all at once. After five failures "
        "the job lands in the dead-letter queue."
    )
    assert "mimicry" not in checks(Pair.simple("How do retries back off?", paraphrase, sources=[1]), [chunk()])


def test_code_quotes_paths_and_identifiers_are_left_out_of_the_comparison() -> None:
    source = chunk(
        "Run twctl dead requeue job_01HQ8A0C4R7Y2B1F6E3G9K5M2N to requeue it.\n\n```sh\n"
        "twctl dead list --queue email --since 24h\ntwctl dead show job_01HQ8A0C4R7Y2B1F6E3G9K5M2N\n"
        "twctl dead requeue job_01HQ8A0C4R7Y2B1F6E3G9K5M2N\n```\n\nThe configuration lives in "
        "/etc/tidewater/tidewater.toml and the token in /etc/tidewater/token, read as TIDEWATER_TOKEN."
    )
    answer = (
        "List, inspect, then requeue:\n\n```sh\ntwctl dead list --queue email --since 24h\n"
        "twctl dead show job_01HQ8A0C4R7Y2B1F6E3G9K5M2N\ntwctl dead requeue job_01HQ8A0C4R7Y2B1F6E3G9K5M2N\n```\n\n"
        "Settings are read from `/etc/tidewater/tidewater.toml`; the secret comes from \"TIDEWATER_TOKEN\"."
    )
    assert "mimicry" not in checks(Pair.simple("How do I requeue a dead email job?", answer, sources=[1]), [source])
    assert [w.word for w in prose_words("Set `max_attempts` in /etc/x.toml with --config and cachedJob().")] == ["set", "in", "with", "and"]


def test_code_only_answer_passes_the_content_checks() -> None:
    answer = "```python\nclient = TidewaterClient()\njob_id = client.enqueue(\"greet\", {\"name\": \"Ada\"})\n```"
    found = checks(Pair.simple("Show me how to enqueue a greet job in Python.", answer, sources=[1]), [chunk()])
    assert found & {"mimicry", "non_answer", "vacuous_answer", "prompt_leak", "offensive_content"} == set()


def test_copied_share_and_run_length_are_settings() -> None:
    half = "Waits grow and are randomised. " + RETRY.split(". ")[1]  # one copied 17-word sentence
    pair = Pair.simple("What happens after the fifth failure?", half, sources=[1])
    assert "mimicry" in checks(pair, [chunk()])
    assert "mimicry" not in checks(pair, [chunk()], QualitySettings(mimicry_min_run_words=30, mimicry_threshold=0.9))


def test_imported_pairs_are_compared_with_the_corpus(project, tmp_path) -> None:
    from engine.ingest.importer import import_paths

    doc = tmp_path / "retry.md"
    doc.write_text("# Retries\n\n" + RETRY + "\n")
    import_paths(project, [doc])
    copied = Pair.simple("How do retries work?", RETRY.split(". ")[0] + ".", kind=PairKind.IMPORTED)
    own = Pair.simple("How do retries work?", "Each retry waits longer than the previous one, up to a cap, with random spread.", kind=PairKind.IMPORTED)
    first, second = project.add_pairs([copied, own])
    recheck(project)
    warnings = {w.check: w.reason for w in project.get_pair(first.id).warnings}
    assert "from the imported documents" in warnings["mimicry"]
    assert "mimicry" not in {w.check for w in project.get_pair(second.id).warnings}


# ----------------------------------------------------------------------------- prompt_leak, not_a_request


@pytest.mark.parametrize(
    ("instruction", "response", "where"),
    [
        ("What is the solution to the [type] of [data1]?", "The [type] is [data1] in [data2] for every retry.", "instruction"),
        ("The user asked: how do retries work?", "The user asked: [source_content]", "instruction"),
        ("How is the key computed?", "Source text: <<< the key is the job type and a hash >>>", "answer"),
        ("How long is a lease?", "A lease lasts {lease_duration} and heartbeats extend it every {heartbeat} seconds.", "answer"),
        ("What happens on a miss?", "Return JSON with the question and the answer. The job is enqueued normally.", "answer"),
        ("How do I requeue a dead job?", "Write one question a real user of this system would ask; then run twctl dead requeue.", "answer"),
        ("<insert question here>", "A dead job is requeued with twctl dead requeue and keeps its payload.", "instruction"),
        ("How is a lease renewed?", "<your answer here> The worker heartbeats every ten seconds.", "answer"),
        ("What does the broker store for <topic>?", "It stores the payload, the attempt count and the lease owner.", "instruction"),
    ],
)
def test_prompt_leak_trips(instruction: str, response: str, where: str) -> None:
    assert reason(Pair.simple(instruction, response), "prompt_leak").startswith(f"The {where} contains")


def test_prompt_leak_spares_redaction_placeholders_links_and_code() -> None:
    for instruction, response in [
        ("Who owns the broker?", "Write to [EMAIL] or call [PHONE]; the on-call rota is in the wiki."),
        ("Where is the API reference?", "See the [API reference](https://example.org/api) for every endpoint and its errors."),
        ("How do I template a job id in a URL?", "Use the path `/v1/jobs/{id}` and the shell form:\n\n```sh\ncurl -s \"$URL/v1/jobs/{id}\" <<< \"$BODY\"\n```"),
        ("How do retries back off?", "Delays double from two seconds with jitter. (Source: Error Handling › The retry policy)"),
        ("How do I mark up a question in the FAQ file?", "Wrap it in a tag:\n\n```xml\n<question>How do I retry?</question>\n```"),
        ("Which is larger?", "The queue holds at most 500 jobs, so 500 <= limit holds when the limit is 600 > 500."),
    ]:
        assert "prompt_leak" not in checks(Pair.simple(instruction, response))


@pytest.mark.parametrize(
    "instruction",
    ["The retry policy", "You ask a question about a friendly chatbot.", "The user asks about leases.", "Cache keys in the broker"],
)
def test_not_a_request_trips(instruction: str) -> None:
    answer = "Retries wait 2, 4, 8 and 16 seconds by default, and the fifth failure dead-letters the job."
    assert "not_a_request" in checks(Pair.simple(instruction, answer))


@pytest.mark.parametrize(
    "instruction",
    [
        "How do retries back off?", "Explain the lease protocol step by step.", "List every state a job can be in.",
        "I get FatalJobError from result() even though the worker logged success", "Wie funktioniert der Cache?",
        "Compare the memory and redis cache backends", "Please show a minimal Go worker",
    ],
)
def test_questions_and_requests_are_requests(instruction: str) -> None:
    answer = "Retries wait 2, 4, 8 and 16 seconds by default, and the fifth failure dead-letters the job."
    assert "not_a_request" not in checks(Pair.simple(instruction, answer))


# ------------------------------------------------------------------------------------------ vacuous_answer


def test_vacuous_answer_trips_on_restatement() -> None:
    pair = Pair.simple(
        "How does the retry policy work?",
        "The retry policy is a behavior that can only be implemented by the server itself, and is implemented by the server itself.",
        sources=[1],
    )
    assert "vacuous_answer" in checks(pair, [chunk()])
    assert "vacuous_answer" in checks(Pair.simple("What is the result cache?", "The result cache is a cache for results that caches the results of jobs."))


def test_short_factual_answers_are_not_vacuous() -> None:
    for instruction, response in [
        ("What is the default lease?", "The default lease is 30 seconds."),
        ("Which flag validates the configuration?", "Run tidewaterd --check-config before installing."),
        ("Is the result cache shared?", "Yes: every worker reads the same cache, keyed by job type and payload hash."),
    ]:
        assert "vacuous_answer" not in checks(Pair.simple(instruction, response))


def test_empty_answer_has_only_its_length_error() -> None:
    found = checks(Pair.simple("How do retries back off?", "", sources=[1]), [chunk()])
    assert "too_short_response" in found
    assert found & {"non_answer", "vacuous_answer", "mimicry", "prompt_leak", "offensive_content"} == set()


# ------------------------------------------------------------------------------------- multi_hop_one_sided


def test_multi_hop_answer_must_use_each_source() -> None:
    sources = [chunk(RETRY, 1, 1), chunk(CACHE, 2, 2, heading="Cache backends")]
    one_sided = Pair.simple(
        "How do retries relate to the cache backend?",
        "Delays grow from the base delay by the multiplier, capped, with jitter; the fifth failure dead-letters the job.",
        kind=PairKind.MULTI_HOP, sources=[1, 2],
    )
    text = reason(one_sided, "multi_hop_one_sided", sources)
    assert "document 2 (Error Handling › Cache backends)" in text
    both = Pair.simple(
        "How do retries relate to the cache backend?",
        "A retried job waits its jittered delay; only the attempt that succeeds writes to the broker's cache, which "
        "redis keeps across restarts while the memory LRU loses it.",
        kind=PairKind.MULTI_HOP, sources=[1, 2],
    )
    assert "multi_hop_one_sided" not in checks(both, sources)


# --------------------------------------------------------------------------------------- offensive_content


def test_offensive_classifier_matches_the_packages_own_probabilities() -> None:
    from profanity_check import predict_prob

    classifier = offensive_classifier()
    assert classifier is not None
    texts = ["How do I configure the retry policy?", "You are a stupid idiot and I hate you", "Kill the worker with SIGTERM.", ""]
    for text, expected in zip(texts, predict_prob(texts), strict=True):
        assert classifier.probability(text) == pytest.approx(float(expected), abs=1e-9)


def test_offensive_content_trips_on_insults_and_not_on_job_vocabulary() -> None:
    insult = Pair.simple("How long is the default lease?", "Thirty seconds, and anyone who asks that is a fucking idiot.")
    assert "probability" in reason(insult, "offensive_content")
    slur = Pair.simple("Why does my stupid worker keep crashing, you idiots?", "A crashed worker loses its lease and the job moves on.")
    assert "offensive_content" in checks(slur)
    technical = Pair.simple(
        "What happens to a worker that is killed?",
        "A killed worker's lease expires and the job is retried; a job that dies of a fatal error will die again, "
        "so fix the cause before you requeue it. Abort the master process with SIGKILL only as a last resort.",
    )
    assert "offensive_content" not in checks(technical)


# --------------------------------------------------------------------------------- registry, CLI, report


def test_new_checks_are_registered_with_severities() -> None:
    expected = {"non_answer": "error", "prompt_leak": "error", "offensive_content": "error", "mimicry": "warning",
                "not_a_request": "warning", "vacuous_answer": "warning", "multi_hop_one_sided": "warning"}
    assert {k: str(CHECKS[k].severity) for k in expected} == expected


def test_pairforge_check_counts_the_new_checks(project) -> None:
    project.add_pairs([
        Pair.simple("What IS the error handling pattern?", "Chapter 5 discusses error handling patterns in depth."),
        Pair.simple("The retry policy", "Retries wait 2, 4, 8 and 16 seconds by default, then the job is dead-lettered."),
        Pair.simple("How long is a lease?", "The ideal answer: a lease lasts {lease} and heartbeats extend it."),
    ])
    result = CliRunner().invoke(main, ["-p", str(project.root), "check", "--json"])
    counts = json.loads(result.output)["warning_counts"]
    assert counts["non_answer"] == 1 and counts["not_a_request"] == 1 and counts["prompt_leak"] == 1
    table = CliRunner().invoke(main, ["-p", str(project.root), "check"]).output
    assert all(check in table for check in ("non_answer", "not_a_request", "prompt_leak"))
    assert "instead of stating it" in table  # the registry's description, shown beside the count


def test_dataset_card_lists_the_new_checks_with_counts(project, tmp_path) -> None:
    project.add_pairs([
        Pair.simple("What IS the error handling pattern?", "Chapter 5 discusses error handling patterns in depth."),
        Pair.simple("The retry policy", "Retries wait 2, 4, 8 and 16 seconds by default, then the job is dead-lettered."),
    ])
    recheck(project)
    out = tmp_path / "export"
    result = CliRunner().invoke(main, ["-p", str(project.root), "export", str(out), "--include-pending"])
    assert result.exit_code == 0, result.output
    card = (out / "README.md").read_text()
    assert "| non_answer | 1 |" in card and "| not_a_request | 1 |" in card


def test_a_slot_the_source_holds_is_a_quote_not_a_leak() -> None:
    api = chunk("Fetch one job with GET /v1/jobs/{job_id}; the reply holds {job_id} and its state.", heading="Jobs")
    pair = Pair.simple("How do I read one job?", "Call GET on the jobs path with {job_id} filled in; the reply holds its state.", sources=[1])
    assert "prompt_leak" not in checks(pair, [api])
    assert "prompt_leak" in checks(pair, [chunk()])


def test_offensive_weights_are_cached_and_read_back_unchanged(tmp_path, monkeypatch) -> None:
    from engine.quality import offensive

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = offensive._load()  # from the package, written to the cache
    (cached,) = (tmp_path / "pairforge").glob("offensive-*.json")
    again = offensive._load()  # from the cache
    for text in ("You are a stupid idiot", "Requeue the dead job after fixing the payload.", ""):
        assert again.probability(text) == pytest.approx(first.probability(text), abs=1e-12)
    cached.write_text("{not json")
    assert offensive._load().probability("idiot") == pytest.approx(first.probability("idiot"))  # a bad cache is replaced
