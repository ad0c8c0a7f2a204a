"""The diversity check: openers per kind and mode, rarefied distinct-2, length spread; live and from the CLI."""

from __future__ import annotations

import json
import random
from collections import Counter

from click.testing import CliRunner

from engine.cli import main
from engine.models import Pair, PairKind, PairStatus
from engine.quality import LiveReport, measure_diversity
from engine.quality.diversity import DiversityTally, instruction_words, rarefied_distinct

TOPICS = [
    "lease renewal", "the dead-letter queue", "retry backoff", "the worker pool", "result caching", "the broker token",
    "heartbeats", "payload hashing", "job coalescing", "the SQLite backend", "SIGHUP reloads", "cache TTLs",
    "fatal errors", "the Go worker", "the Python client", "job priorities", "scheduled jobs", "the admin API",
    "metrics export", "log levels", "queue names", "graceful shutdown", "job cancellation", "rate limits",
]

HOW_DO_I = [
    "How do I rotate the broker token without restarting workers?",
    "How do I run two brokers against one Postgres database?",
    "How do I see why a job landed in the dead-letter queue?",
    "How do I cap retries at three for one job type only?",
    "How do I tell a Go handler that an error is fatal?",
    "How do I drain a worker before a deploy?",
    "How do I cancel a job that is already running?",
    "How do I set a per-queue rate limit?",
    "How do I read the broker's metrics from Prometheus?",
    "How do I test a handler locally?",
    "How do I make enqueue idempotent?",
    "How do I schedule a job for midnight UTC every day, including on weekends?",
]
OTHERS = [
    "Why does my worker restart every 30 seconds?",
    "What happens to a job when its worker is killed mid-run?",
    "Is there a way to see queue depth per job type?",
    "Can cached results go stale after a deploy?",
    "Which errors does the Python client retry for me?",
    "Should I run the broker behind a reverse proxy?",
    "What's the difference between a timeout and a lease expiry?",
    "When is a job considered dead?",
    "Does SIGHUP drop in-flight connections?",
    "Where does the broker write its pid file?",
    "My jobs run twice after a network blip. Why?",
    "Jitter: on or off?",
]


def test_a_templated_dataset_warns_on_its_opener_wording_and_lengths() -> None:
    report = measure_diversity(("instruction", "factual", f"What is the purpose of {t} in Tidewater?") for t in TOPICS)
    group = report.groups[0]
    assert (group.opener, group.count, group.share) == ("what is the", 24, 1.0)
    assert len(report.warnings) == 2  # opener and lengths; 24 instructions are too few to judge distinct-2
    assert 'open with "what is the"' in report.warnings[0] and "words long" in report.warnings[1]
    assert report.status == "warning"


def test_many_how_do_i_questions_that_differ_after_the_opener_do_not_warn() -> None:
    report = measure_diversity(("instruction", "developer", q) for q in HOW_DO_I + OTHERS)
    group = report.groups[0]
    assert group.opener == "how do i" and group.share == 0.5
    assert report.warnings == [] and report.status == "ok"


def test_openers_are_counted_per_kind_and_mode() -> None:
    # Templated refusals in one group warn even though the instructions of the dataset as a whole vary.
    rows = [("instruction", "developer", q) for q in HOW_DO_I + OTHERS]
    rows += [("refusal", "developer", f"Can you tell me about {t}?") for t in TOPICS]
    report = measure_diversity(rows)
    by_kind = {g.kind: g for g in report.groups}
    assert by_kind["refusal"].share == 1.0 and by_kind["instruction"].share == 0.5
    assert any("refusal pairs in mode developer" in w for w in report.warnings)
    assert not any("instruction pairs" in w for w in report.warnings)


def test_shared_wording_behind_varied_openers_warns_on_distinct_2() -> None:
    openers = ["What does", "How does", "Why does", "When does", "Where does"]
    rows = [("instruction", "factual", f"{openers[n % 5]} the documentation say about {t} in the Tidewater job queue system?")
            for n, t in enumerate(TOPICS + TOPICS[:12])]
    report = measure_diversity(rows)
    assert report.groups[0].share < 0.25
    assert report.distinct_2_rarefied < 0.6
    assert any("distinct-2" in w for w in report.warnings)


def test_rarefied_distinct_matches_random_draws() -> None:
    rng = random.Random(3)
    population = [rng.choice(range(400)) for _ in range(5000)]  # items with uneven frequencies
    frequencies = Counter(Counter(population).values())
    expected = rarefied_distinct(frequencies, len(population), 1000)
    draws = [len(set(rng.sample(population, 1000))) / 1000 for _ in range(200)]
    assert abs(expected - sum(draws) / len(draws)) < 0.005
    # With no more items than the draw, the figure is the plain distinct share.
    assert rarefied_distinct(Counter({1: 30, 2: 10}), 50, 1000) == 40 / 50


def test_tally_follows_additions_and_removals_and_bulk_equals_one_by_one() -> None:
    rows = [("instruction", "developer", instruction_words(q)) for q in HOW_DO_I + OTHERS]
    bulk = DiversityTally()
    bulk.add_many(rows)
    single = DiversityTally()
    for kind, mode, words in rows:
        single.add(kind, mode, words)
    assert bulk.report() == single.report()
    extra = instruction_words("What is the purpose of lease renewal?")
    single.add("instruction", "developer", extra)
    single.add("instruction", "developer", extra, -1)
    assert single.report() == bulk.report()
    for kind, mode, words in rows:
        single.add(kind, mode, words, -1)
    assert single.report().instructions == 0 and single.report().groups == [] and single.report().bigrams == 0


def test_live_report_follows_edits_and_leaves_rejected_pairs_out(project) -> None:
    pairs = [Pair.simple(f"What is the purpose of {t} in Tidewater?", "An answer long enough to count.", mode="factual")
             for t in TOPICS]
    stored = project.add_pairs(pairs)
    live = LiveReport.build(project)
    assert live.snapshot(contradictions=False).diversity.groups[0].share == 1.0
    varied = [q for both in zip(HOW_DO_I, OTHERS, strict=True) for q in both]
    for n, pair in enumerate(stored[:12]):
        edited = Pair.simple(varied[n], pair.response, mode="factual").model_copy(update={"id": pair.id})
        project.update_pair(edited)
    project.set_status([p.id or 0 for p in stored[12:16]], PairStatus.REJECTED)
    report = live.snapshot(contradictions=False).diversity
    live.close()
    group = report.groups[0]
    assert group.pairs == 20 and group.opener == "what is the" and group.count == 8
    rebuilt = LiveReport.build(project)
    assert rebuilt.snapshot(contradictions=False).diversity == report
    rebuilt.close()


def test_check_reports_diversity_in_text_and_json(project) -> None:
    project.add_pairs([Pair.simple(f"Can you explain {t} in the Tidewater system?", "An answer long enough to count.",
                                   mode="factual", kind=PairKind.INSTRUCTION) for t in TOPICS])
    runner = CliRunner()
    data = json.loads(runner.invoke(main, ["-p", str(project.root), "check", "--json"]).output)
    diversity = data["diversity"]
    assert diversity["groups"][0]["opener"] == "can you explain" and diversity["status"] == "warning"
    assert diversity["warnings"] and "distinct_2_rarefied" in diversity
    text = runner.invoke(main, ["-p", str(project.root), "check"]).output
    assert 'top opener "can you explain" 100% of instruction/factual' in text
    assert 'open with "can you explain"' in text
