"""Dataset report benchmark: full build over N stored pairs, then the median cost of one incremental update.

    python bench/report_bench.py           # 100k pairs
    python bench/report_bench.py --quick   # 20k pairs
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from engine.models import Pair, PairKind
from engine.quality import LiveReport
from engine.store import PairChange, Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20k pairs instead of 100k")
    args = parser.parse_args()
    n = 20_000 if args.quick else 100_000
    rng = random.Random(1)
    words = ["job", "queue", "worker", "broker", "lease", "retry", "backoff", "jitter", "cache", "token", "handler", "payload"]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.init(Path(tmp) / "p")
        batch = []
        for i in range(n):
            answer = " ".join(rng.choice(words) for _ in range(rng.randint(10, 300)))
            batch.append(Pair.simple(f"Question {i} about {answer[:40]}?", answer, kind=rng.choice(list(PairKind)), mode=rng.choice(["factual", "developer", "thinker"])))
            if len(batch) == 5000:
                store.add_pairs(batch)
                batch = []
        start = time.perf_counter()
        live = LiveReport.build(store)
        built = time.perf_counter() - start
        start = time.perf_counter()
        live.snapshot(contradictions=False)
        snap = time.perf_counter() - start
        print(f"full report over {n} pairs: build {built:.2f} s, snapshot {snap * 1000:.1f} ms (without the contradiction pass)")
        ids = store.pair_ids()
        samples = []
        for _ in range(1000):
            before = store.get_pair(rng.choice(ids))
            after = before.model_copy(update={"messages": Pair.simple(before.instruction, before.response + " retry").messages})
            start = time.perf_counter()
            live.apply([PairChange(before.id or 0, before, after)])
            samples.append((time.perf_counter() - start) * 1000)
            live.apply([PairChange(before.id or 0, after, before)])
        print(f"incremental edit: median {statistics.median(samples):.3f} ms, p95 {sorted(samples)[949]:.3f} ms (engine time, excluding the SQLite write)")
        live.close()
        store.close()


if __name__ == "__main__":
    main()
