"""Diversity check benchmark: a labeled set of diverse and repetitive instruction datasets, and how the warning does.

    python bench/diversity_bench.py            # caught and false-alarm rates, dev and held-out
    python bench/diversity_bench.py --verbose  # every dataset's figures

Diverse datasets are drawn from the gate set's 204 hand-written questions and from hand-written
developer questions, including hard ones where 40-50% of the questions legitimately open "How do I"
or "What is the", and long ones (230-271 questions) whose raw distinct-2 is low only because they are
long. Repetitive ones are what weak generators produce: one frame for most questions ("What is the
purpose of X?"), several openers around one shared frame (low distinct-2, openers spread), every
question of one length, and mixes where a frame holds 60% or more. A dataset is caught when the
check warns. Each dataset is one (kind, mode) group, so the per-group figures are the dataset's.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from pathlib import Path

from engine.quality.diversity import measure_diversity

HERE = Path(__file__).parent

CONCEPTS = [
    "lease renewal", "the dead-letter queue", "retry backoff", "the visibility timeout", "the worker pool",
    "result caching", "the broker token", "heartbeats", "payload hashing", "job coalescing", "the SQLite backend",
    "the Postgres backend", "SIGHUP reloads", "cache TTLs", "fatal errors", "retryable errors", "the Go worker",
    "the Python client", "job priorities", "scheduled jobs", "the admin API", "metrics export", "log levels",
    "the config file", "queue names", "worker concurrency", "graceful shutdown", "job cancellation",
    "exactly-once delivery", "idempotency keys", "rate limits", "the health endpoint", "TLS certificates",
    "report workers", "batch enqueue", "job timeouts", "the jitter setting", "broker clustering",
    "cache invalidation", "the release notes",
]

# Hand-written how-to questions a developer asks; about half open "How do I", and they are
# still varied: different verbs, objects and lengths.
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
    "How do I schedule a job for midnight UTC every day?",
    "How do I turn off caching for one call?",
    "How do I move from SQLite to Postgres with jobs in flight?",
    "How do I raise the lease for slow report workers, and what does it cost?",
    "How do I get the broker to reload its config?",
    "How do I keep payload secrets out of the logs?",
    "How do I bump worker concurrency on a 2-core box?",
    "How do I requeue everything in the dead-letter queue at once?",
    "How do I know the broker is healthy from a load balancer?",
    "How do I hash only the fields that matter for caching?",
    "How do I pin a job to one queue?",
    "How do I add TLS?",
    "How do I upgrade?",
    "How do I debug a worker that hangs forever after the third retry?",
    "How do I find jobs stuck in running?",
    "How do I stop one noisy tenant from starving the others?",
    "How do I lower the log level?",
    "How do I batch a thousand enqueues into one call?",
    "How do I handle a payload that no longer decodes after a schema change?",
]
OTHER_DEV = [
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
    "Is exactly-once delivery possible here?",
    "What limits how many workers one broker can serve?",
    "Jitter: on or off by default?",
    "Which Go version does the worker package need?",
    "Can I share one token across environments?",
    "What does a 409 from enqueue mean?",
    "Are scheduled jobs kept across a broker restart?",
    "What breaks if the clock on a worker drifts?",
    "Why is my cache hit rate zero?",
    "What is the default visibility timeout, and when should I change it?",
    "Could a retry storm take down the database?",
    "Is the admin API safe to expose?",
    "What should a handler return for a partial success?",
    "Why did the third attempt wait so long?",
]
WHAT_IS_THE = [
    "What is the default lease length?",
    "What is the largest payload the broker accepts?",
    "What is the point of coalescing enqueues if keys are unique anyway?",
    "What is the order jobs of equal priority run in?",
    "What is the safest way to shrink the worker pool at night?",
    "What is the retry delay after the fifth failure?",
    "What is the health endpoint's path?",
    "What is the TTL of a cached result when none is set?",
    "What is the broker doing during a SIGHUP?",
    "What is the cost of a very long lease?",
    "What is the recommended backend for several brokers?",
    "What is the exit code when the token is missing on a public address?",
]

# Frames weak generators repeat: one per repetitive dataset, filled with the concepts.
FRAMES = [
    "What is the purpose of {c} in Tidewater?",
    "Can you explain {c} in the Tidewater system?",
    "What is the role of {c}?",
    "How does {c} work in Tidewater?",
    "What are the key features of {c}?",
    "Explain the concept of {c}.",
]
# One frame behind several openers: openers spread, wording repeats (low distinct-2).
SHARED_FRAME_OPENERS = ["What does", "How does", "Why does", "When does", "Where does", "In Tidewater, what does"]
SHARED_FRAME = "{o} the documentation say about {c} in the Tidewater job queue system configuration?"
# Questions of one length (nine words), openers varied: a weak model told to "be concise".
NINE_WORDS = [
    "What does {c} change for a worker under load?",
    "Why would anyone turn on {c} in production today?",
    "How often should {c} be checked by the operators here?",
    "When is {c} the wrong choice for a new team?",
    "Which setting controls {c} and what is its default?",
]


@dataclass(frozen=True)
class Dataset:
    name: str
    label: str  # diverse | repetitive
    split: str  # dev | held-out
    instructions: list[str]


def _fill(frame: str, rng: random.Random, n: int) -> list[str]:
    concepts = CONCEPTS[:]
    out: list[str] = []
    while len(out) < n:
        rng.shuffle(concepts)
        out += [frame.format(c=c) for c in concepts]
    return out[:n]


def _nine_words(c: str, frame: str) -> str:
    # Pad or cut the concept so the question has exactly nine words.
    words = frame.format(c=c).split()
    while len(words) < 9:
        words.insert(-1, "there")
    return " ".join(words[:9]).rstrip("?") + "?"


def build_datasets() -> list[Dataset]:
    """The labeled set, built the same way every run."""
    rng = random.Random(7)
    gate = sorted({json.loads(line)["instruction"] for line in (HERE / "gate_set.jsonl").read_text().splitlines()})
    sets: list[Dataset] = []
    for size, split in [(40, "dev"), (60, "held-out"), (100, "dev"), (150, "held-out"), (204, "dev")]:
        sets.append(Dataset(f"gate-questions-{size}", "diverse", split, rng.sample(gate, size)))
    # Hard diverse: "How do I" opens 45-50% of the questions, the rest varied.
    for size, share, split in [(50, 0.5, "dev"), (54, 0.45, "held-out"), (40, 0.5, "held-out")]:
        how = rng.sample(HOW_DO_I, round(size * share))
        sets.append(Dataset(f"how-do-i-{share:.0%}-{size}", "diverse", split,
                            how + rng.sample(OTHER_DEV + WHAT_IS_THE, size - len(how))))
    what = WHAT_IS_THE + rng.sample(OTHER_DEV, 14) + rng.sample(gate, 6)
    sets.append(Dataset("what-is-the-38%", "diverse", "dev", what[:32]))
    # Long diverse datasets: most of the hand-written questions (271 and 230).
    every = gate + HOW_DO_I + OTHER_DEV + WHAT_IS_THE
    sets.append(Dataset("all-hand-written-271", "diverse", "dev", rng.sample(every, 271)))
    sets.append(Dataset("gate-and-how-do-i-230", "diverse", "held-out", rng.sample(gate + HOW_DO_I, 230)))
    # Hard diverse: a fifth of the questions from one frame, the rest hand-written.
    sets.append(Dataset("gate-with-20%-frame-100", "diverse", "held-out", _fill(FRAMES[0], rng, 20) + rng.sample(gate, 80)))
    sets.append(Dataset("gate-with-25%-frame-80", "diverse", "dev", _fill(FRAMES[1], rng, 20) + rng.sample(gate, 60)))
    # Repetitive: one frame throughout, or over 60% of a dataset.
    for n, frame in enumerate(FRAMES):
        split = "dev" if n % 2 == 0 else "held-out"
        sets.append(Dataset(f"frame-{n}-all-40", "repetitive", split, _fill(frame, rng, 40)))
    for n, (frame, share, size) in enumerate([(FRAMES[0], 0.7, 60), (FRAMES[3], 0.6, 100), (FRAMES[1], 0.65, 80),
                                              (FRAMES[4], 0.8, 200)]):
        templated = _fill(frame, rng, round(size * share))
        rest = rng.sample(gate, size - len(templated))
        sets.append(Dataset(f"frame-mix-{share:.0%}-{size}", "repetitive", "dev" if n % 2 == 0 else "held-out",
                            templated + rest))
    # Three frames of 30% each: no opener dominates, the wording repeats.
    for size, split, frames in [(100, "dev", (0, 1, 3)), (90, "held-out", (2, 4, 5))]:
        third = size * 3 // 10
        mixed = [q for f in frames for q in _fill(FRAMES[f], rng, third)] + rng.sample(gate, size - 3 * third)
        sets.append(Dataset(f"three-frames-90%-{size}", "repetitive", split, mixed))
    for size, split in [(40, "dev"), (120, "held-out")]:
        shared = [SHARED_FRAME.format(o=rng.choice(SHARED_FRAME_OPENERS), c=c) for c in _fill("{c}", rng, size)]
        sets.append(Dataset(f"shared-frame-{size}", "repetitive", split, shared))
    for size, split in [(40, "dev"), (75, "held-out")]:
        uniform = [_nine_words(c, NINE_WORDS[i % len(NINE_WORDS)]) for i, c in enumerate(_fill("{c}", rng, size))]
        sets.append(Dataset(f"nine-words-{size}", "repetitive", split, uniform))
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verbose", action="store_true", help="print every dataset's figures")
    args = parser.parse_args()
    datasets = build_datasets()
    results: dict[tuple[str, str], list[bool]] = {}
    by_measure: dict[tuple[str, str], dict[str, int]] = {}
    for d in datasets:
        report = measure_diversity(("instruction", "developer", text) for text in d.instructions)
        warned = bool(report.warnings)
        results.setdefault((d.split, d.label), []).append(warned)
        counts = by_measure.setdefault((d.split, d.label), {"opener": 0, "distinct-2": 0, "lengths": 0})
        for measure, marker in (("opener", "open with"), ("distinct-2", "distinct-2"), ("lengths", "words long")):
            counts[measure] += any(marker in w for w in report.warnings)
        if args.verbose:
            g = report.groups[0]
            print(f"{d.split:8} {d.label:10} {d.name:26} n={report.instructions:3} opener {g.share:.2f} "
                  f"\"{g.opener}\"  distinct-2 raw {report.distinct_2:.2f} rarefied {report.distinct_2_rarefied:.2f}  "
                  f"length cv {report.length_cv:.2f}  {'WARN' if warned else 'ok'}")
            for w in report.warnings:
                print(f"{'':48}! {w}")
    for split in ("dev", "held-out"):
        bad = results.get((split, "repetitive"), [])
        clean = results.get((split, "diverse"), [])
        print(f"{split}: caught {sum(bad)} of {len(bad)} repetitive datasets ({sum(bad) / max(1, len(bad)):.0%}); "
              f"false alarms on {sum(clean)} of {len(clean)} diverse ones ({sum(clean) / max(1, len(clean)):.0%}); "
              f"repetitive ones flagged by each measure: "
              + ", ".join(f"{m} {n}" for m, n in by_measure.get((split, "repetitive"), {}).items()))


if __name__ == "__main__":
    main()
