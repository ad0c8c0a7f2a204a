"""Trial subset: how close a draw keeps each kind, split, mode and document to its share of the full
set, and how long drawing takes, on projects of distinct pairs with near-duplicate clusters.

    python bench/trial_bench.py [--pairs 400,5000,20000] [--size 300] [--seeds 10]

For each project size: the worst gap (pairs drawn minus the share of the trial size) over the seeds,
per level, and the median seconds per draw (near-duplicate index included).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.export import draw_trial_set
from engine.models import Pair, PairStatus
from engine.store import Store
from tests.trial_support import build_diverse_project


def _document(chunk_document: dict[int, str], pair: Pair) -> str:
    found = sorted({chunk_document[c] for c in pair.sources if c in chunk_document})
    return found[0] if found else "(none)"


def bench(pairs: int, size: int, seeds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        store = Store.init(Path(folder) / "project")
        # One cluster of three per 50 pairs, plus one large cluster: the lumps a draw must balance.
        build_diverse_project(store, n=pairs, clusters=max(2, pairs // 50), big_cluster=max(10, pairs // 40))
        accepted = [p for p in store.iter_pairs() if p.status is PairStatus.ACCEPTED]
        names = {d.id: d.path for d in store.list_documents()}
        chunk_document = {c.id: names[c.document_id] for c in store.list_chunks(include_retired=True)
                          if c.id is not None and c.document_id is not None}
        levels = {
            "kind": lambda p: str(p.kind), "split": lambda p: str(p.split), "mode": lambda p: p.mode,
            "document": lambda p: _document(chunk_document, p),
        }
        full = {name: Counter(key(p) for p in accepted) for name, key in levels.items()}
        ratio = size / len(accepted)
        worst = dict.fromkeys(levels, 0.0)
        seconds: list[float] = []
        drawn_sizes: list[int] = []
        for seed in range(seeds):
            started = time.perf_counter()
            draw = draw_trial_set(store, size, seed=seed)
            seconds.append(time.perf_counter() - started)
            drawn_sizes.append(draw.drawn)
            chosen = [p for p in accepted if p.id in draw.pair_ids]
            for name, key in levels.items():
                trial = Counter(key(p) for p in chosen)
                gap = max(abs(trial[value] - n * ratio) for value, n in full[name].items())
                worst[name] = max(worst[name], gap)
        store.close()
    return {"pairs": len(accepted), **{f"worst {k} gap": v for k, v in worst.items()},
            "drawn min": min(drawn_sizes), "drawn max": max(drawn_sizes), "median s": statistics.median(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="400,5000,20000")
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    print(f"trial size {args.size}, {args.seeds} seeds; gaps in pairs (drawn - share of the trial size)")
    header = None
    for n in (int(x) for x in args.pairs.split(",")):
        row = bench(n, args.size, args.seeds)
        if header is None:
            header = list(row)
            print(" | ".join(header))
        print(" | ".join(f"{row[h]:.2f}" if isinstance(row[h], float) else str(row[h]) for h in header), flush=True)


if __name__ == "__main__":
    main()
