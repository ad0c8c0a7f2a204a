"""Near-duplicate index benchmark: full cluster pass time and peak RSS, recall/precision vs brute force, similar_to latency.

    python bench/dedup_bench.py            # 10k and 100k pairs, brute force on a 10k sample
    python bench/dedup_bench.py --quick    # 2k and 20k pairs, brute force on 2k
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import time

import numpy as np
from rapidfuzz import fuzz, process

from engine.models import Pair
from engine.quality.dedup import NearDuplicateIndex, content_form
from engine.quality.textstats import normalize

VOCAB = ["job", "queue", "worker", "broker", "lease", "retry", "backoff", "jitter", "cache", "token", "handler", "payload", "schedule", "cron", "priority", "timeout", "heartbeat", "deadline", "webhook", "metric", "shard", "replica", "snapshot", "migration", "tenant", "quota"]
OPENERS = ["How do I", "How can I", "What is the way to", "Explain how to", "Why does", "When should I", "Can I"]
VERBS = ["configure", "inspect", "requeue", "limit", "monitor", "debug", "rotate", "disable", "scale", "tune"]


def synthetic(n: int, seed: int = 1) -> list[str]:
    """n instructions; about 20% are planted near duplicates (paraphrase, reordering or typo) of earlier ones."""
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.2:
            base = rng.choice(out)
            kind = rng.random()
            if kind < 0.33:  # paraphrase the opener
                text = base
                for opener in OPENERS:
                    if text.startswith(opener):
                        text = rng.choice(OPENERS) + text[len(opener):]
                        break
            elif kind < 0.66:  # reorder around a colon
                words = base.rstrip("?").split()
                text = " ".join(words[3:] + words[:3]) + "?"
            else:  # one or two typos
                chars = list(base)
                for _ in range(rng.randint(1, 2)):
                    i = rng.randrange(len(chars))
                    chars[i] = rng.choice("abcdefghijklmnopqrstuvwxyz")
                text = "".join(chars)
            out.append(text)
        else:
            words = rng.sample(VOCAB, rng.randint(3, 6))
            out.append(f"{rng.choice(OPENERS)} {rng.choice(VERBS)} the {' '.join(words)} in region {rng.randint(1, 999)}?")
    return out


def pairs_of(texts: list[str]) -> list[Pair]:
    return [Pair.simple(t, f"answer {i}", id=i + 1) for i, t in enumerate(texts)]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cluster_pass(n: int) -> NearDuplicateIndex:
    pairs = pairs_of(synthetic(n))
    start = time.perf_counter()
    index = NearDuplicateIndex.from_pairs(pairs, 90)
    built = time.perf_counter()
    clusters = index.clusters()
    done = time.perf_counter()
    print(f"{n:>7} pairs: index {built - start:.1f} s + clusters {done - built:.1f} s = {done - start:.1f} s, "
          f"{len(clusters)} clusters, peak RSS {peak_rss_mb():.0f} MB")
    return index


def precision_recall(n: int) -> None:
    texts = synthetic(n, seed=2)
    norm = [normalize(t) for t in texts]
    content = [content_form(t) for t in norm]
    start = time.perf_counter()
    scores = np.maximum.reduce([
        process.cdist(norm, norm, scorer=fuzz.ratio, dtype=np.uint8, workers=-1, score_cutoff=89),
        process.cdist(norm, norm, scorer=fuzz.token_sort_ratio, dtype=np.uint8, workers=-1, score_cutoff=89),
        process.cdist(content, content, scorer=fuzz.ratio, dtype=np.uint8, workers=-1, score_cutoff=89),
    ])
    brute_time = time.perf_counter() - start
    index = NearDuplicateIndex.from_pairs(pairs_of(texts), 90)
    predicted = {(a - 1, b - 1) for a, b in index.edges()}
    # The uint8 matrix rounds down, so recheck borderline brute-force hits with the exact float scorer.
    from engine.quality.dedup import _similarity
    truth = {
        (int(a), int(b)) for a, b in zip(*np.nonzero(np.triu(scores, 1)), strict=True)
        if _similarity(norm[a], content[a], norm[b], content[b], 90) >= 90
    }
    hits = len(predicted & truth)
    print(f"brute force on {n} pairs ({brute_time:.1f} s): {len(truth)} true pairs, index found {len(predicted)}; "
          f"recall {hits / max(1, len(truth)):.3f}, precision {hits / max(1, len(predicted)):.3f}")


def similar_latency(index: NearDuplicateIndex, n: int) -> None:
    rng = random.Random(3)
    queries = pairs_of(synthetic(n))
    times = []
    for pair in rng.sample(queries, 500):
        start = time.perf_counter()
        index.similar_to(pair)
        times.append((time.perf_counter() - start) * 1000)
    print(f"similar_to at {len(index)} pairs: median {statistics.median(times):.2f} ms, p95 {sorted(times)[474]:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    small, large, sample = (2_000, 20_000, 2_000) if args.quick else (10_000, 100_000, 10_000)
    cluster_pass(small)
    index = cluster_pass(large)
    similar_latency(index, large)
    del index
    precision_recall(sample)


if __name__ == "__main__":
    main()
