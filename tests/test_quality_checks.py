"""Per-pair checks: each trips on a bad pair and stays quiet on a good one."""

from __future__ import annotations

import pytest

from engine.models import Chunk, Pair, PairKind
from engine.quality import CHECKS, check_pair, recheck
from engine.settings import QualitySettings

SETTINGS = QualitySettings()
GOOD = Pair.simple(
    "How many attempts does a Tidewater job get by default?",
    "Five. After the fifth retryable failure the broker moves the job to the dead-letter queue.",
)
SOURCE_TEXT = (
    "A job gets 5 attempts by default. After each retryable failure the broker waits base_delay times "
    "multiplier to the power of the attempt minus one, capped at max_delay, and spread by jitter. "
    "The fifth failure moves the job to the dead-letter queue where it stays until requeued."
)


def chunk(text: str = SOURCE_TEXT, chunk_id: int = 1, document_id: int = 1) -> Chunk:
    return Chunk(id=chunk_id, document_id=document_id, ordinal=0, text=text, start=0, end=len(text))


def ids(pair: Pair, sources: list[Chunk] | None = None, settings: QualitySettings = SETTINGS) -> set[str]:
    return {w.check for w in check_pair(pair, sources or [], settings)}


def test_good_pair_passes_every_check() -> None:
    assert ids(GOOD, [chunk()]) == set()


def test_every_warning_uses_a_registered_check_id() -> None:
    bad = Pair.simple("Hi?", "As an AI language model I am sorry. Email me at a.b@example.org", kind=PairKind.MULTI_HOP)
    warnings = check_pair(bad, [], SETTINGS)
    assert warnings and all(w.check in CHECKS and w.severity == CHECKS[w.check].severity for w in warnings)


@pytest.mark.parametrize(
    ("instruction", "response", "expected"),
    [
        ("Why?", "Because the broker retries jobs with backoff.", "too_short_instruction"),
        ("How many attempts does a job get?", "Five.", "too_short_response"),
        ("Describe every setting of the broker.", "word " * 1000, "too_long_response"),
        ("How do retries work in Tidewater?", "How do retries work in Tidewater?", "identical_turns"),
        ("Describe the retry loop in detail.", " ".join(["retry the job again"] * 12), "low_unique_words"),
        ("List the worker steps one by one.", "\n".join(["- claim the job from the queue"] * 6 + ["- run it", "- report"]), "repeated_ngrams"),
        ("Which address does tidewaterd listen on?", "As an AI language model, I cannot see your server, but it listens on port 7420.", "ai_disclaimer"),
        ("How do I requeue a dead job?", "I'm sorry, but I can't help with requeueing jobs right now.", "apology_refusal"),
        ("Show how to enqueue a job from Python.", "Sure! Here is an example: client.enqueue('invoice.render', payload).", "sycophantic_opener"),
        ("How does Tidewater compute the delay between retries?", "How does Tidewater compute the delay between retries? It multiplies the base delay.", "restates_question"),
        ("How does Tidewater compute the retry delay?", "Question: how is it computed? It multiplies the base delay each attempt.", "restates_question"),
        ("What does the document say about errors?", "The document says errors should be handled gracefully.", "document_says"),
        ("How should handlers treat errors?", "According to the text, handlers return retryable or fatal errors.", "document_says"),
        ("Who is on call for the broker?", "Write to jane.doe@example.com for anything broker related.", "pii_email"),
        ("Who is on call for the broker?", "Call Jane on +1 415 555 0134 when the broker is down.", "pii_phone"),
        ("Which token does the client use?", "It uses the key sk-abcdefghijklmnopqrstuvwxyz0123 from the vault.", "pii_api_key"),
    ],
)
def test_check_trips(instruction: str, response: str, expected: str) -> None:
    assert expected in ids(Pair.simple(instruction, response))


@pytest.mark.parametrize(
    ("instruction", "response"),
    [
        ("How do I list dead jobs?", "Run `twctl dead list --since 24h`; it prints each job id, type and last error."),
        ("Which port does tidewaterd use?", "It listens on 127.0.0.1:7420 by default (server.listen), version 1.3.0 and later."),
        ("When was 1.3.0 released?", "Version 1.3.0 shipped on 2024-03-18 and dropped Python 3.8 support."),
        ("Is the result cache shared?", "Yes: every worker reads the same cache, keyed by the job type and payload hash."),
        ("Explain the document type field.", "Each job's document_type names the schema its payload follows, such as invoice."),
    ],
)
def test_clean_pairs_are_not_flagged(instruction: str, response: str) -> None:
    assert ids(Pair.simple(instruction, response)) == set()


def test_seed_failure_names_both_turns() -> None:
    pair = Pair.simple("What does the document say about errors?", "The document says errors should be handled gracefully.")
    (warning,) = [w for w in check_pair(pair, [], SETTINGS) if w.check == "document_says"]
    assert "instruction and the answer" in warning.reason


def test_strict_profile_raises_the_minimum_answer_length() -> None:
    pair = Pair.simple("How many attempts by default?", "Five attempts, then the dead-letter queue.")
    assert "too_short_response" not in ids(pair)
    assert "too_short_response" in ids(pair, settings=QualitySettings(profile="strict"))


def test_mimicry_flags_verbatim_copy_with_a_reason() -> None:
    copied = Pair.simple("How do retries work?", SOURCE_TEXT[:220], sources=[1])
    (warning,) = [w for w in check_pair(copied, [chunk()], SETTINGS) if w.check == "mimicry"]
    assert "-word run from its source" in warning.reason and '"A job gets 5 attempts by default.' in warning.reason
    assert "source: document 1, characters 0-" in warning.reason
    assert "mimicry" not in ids(GOOD.model_copy(update={"sources": [1]}), [chunk()])


def test_low_grounding_when_answer_is_unrelated_to_source() -> None:
    invented = Pair.simple(
        "How do retries work?",
        "Kubernetes operators reconcile custom resources through controllers watching etcd snapshots continuously.",
        sources=[1],
    )
    assert "low_grounding" in ids(invented, [chunk()])
    assert "low_grounding" not in ids(GOOD.model_copy(update={"sources": [1]}), [chunk()])


def test_refusal_rules() -> None:
    good = Pair.simple("What does Tidewater cost?", "The Tidewater docs do not cover pricing, so I cannot say.", kind=PairKind.REFUSAL)
    assert ids(good) == set()
    answered = Pair.simple("What does Tidewater cost?", "It costs five dollars per month on the team plan.", kind=PairKind.REFUSAL)
    assert "refusal_no_declination" in ids(answered)
    grounded = good.model_copy(update={"sources": [1]})
    assert "refusal_has_source" in ids(grounded, [chunk()])


def test_multi_hop_needs_two_documents() -> None:
    pair = Pair.simple("How do retries relate to caching?", "A cache miss runs as a normal job, so the retry policy applies to it.", kind=PairKind.MULTI_HOP, sources=[1, 2])
    one_doc = [chunk(chunk_id=1, document_id=1), chunk(chunk_id=2, document_id=1)]
    two_docs = [chunk(chunk_id=1, document_id=1), chunk(chunk_id=2, document_id=2)]
    assert "multi_hop_one_document" in ids(pair, one_doc)
    assert "multi_hop_one_document" not in ids(pair, two_docs)


def test_over_max_seq_length_and_stale() -> None:
    long_pair = Pair.simple("Paste the whole configuration reference.", "setting = value\n" * 700)
    warnings = {w.check: w for w in check_pair(long_pair, [], QualitySettings(max_seq_length=1024, max_response_chars=20000))}
    assert "over_max_seq_length" in warnings and "(estimated)" in warnings["over_max_seq_length"].reason
    assert "stale_source" in ids(GOOD.model_copy(update={"stale": True}))


def test_recheck_stores_warnings_and_reports_changes(project) -> None:
    saved = project.add_pairs([GOOD, Pair.simple("What does the document say about errors?", "The document says errors should be handled gracefully.")])
    events: list = []
    project.subscribe(events.extend)
    assert recheck(project) == 1
    assert [w.check for w in project.get_pair(saved[1].id).warnings] == ["document_says", "non_answer"]
    assert project.warning_counts() == {"document_says": 1, "non_answer": 1}
    assert events and events[0].after.warnings
    assert recheck(project) == 0
    assert recheck(project, [saved[0].id]) == 0
