"""How the app feels on a big project: 100k pairs, some with warnings and duplicates.

Prints: time to first paint of the Review screen, median and p95 time per key for 200
``j`` presses and 20 page-downs, time to apply a filter, peak RSS.
Targets: first paint < 1 s, per-key median < 30 ms and p95 < 80 ms, filter < 300 ms, < 600 MB.

    .venv/bin/python bench/tui_bench.py [--pairs 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")

from engine.models import Pair, PairKind, PairWarning  # noqa: E402
from engine.store import PairFilter, Store  # noqa: E402
from tui.app import PairForgeApp  # noqa: E402
from tui.screens.review import ReviewPane  # noqa: E402
from tui.widgets.pair_list import PairList  # noqa: E402

TOPICS = ["retries", "queues", "workers", "backoff", "scheduling", "priorities", "dead letters", "metrics"]


def build_project(root: Path, n: int) -> float:
    """A project with ``n`` pairs: every 10th warned, every 25th a near copy of its neighbour."""
    start = time.perf_counter()
    store = Store.init(root, name="bench")
    batch: list[Pair] = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        base = i - 1 if i % 25 == 0 and i else i
        warnings = [PairWarning(check="mimicry", reason="copies its source")] if i % 10 == 3 else []
        batch.append(Pair.simple(
            f"How does Tidewater handle {topic} in scenario {base}?",
            f"In scenario {base}, Tidewater handles {topic} by retrying with backoff and recording metrics {i % 7}.",
            kind=PairKind.REFUSAL if i % 50 == 0 else PairKind.INSTRUCTION,
            mode=("developer", "thinker", "factual")[i % 3], warnings=warnings,
        ))
        if len(batch) == 5000:
            store.add_pairs(batch)
            batch = []
    if batch:
        store.add_pairs(batch)
    store.close()
    return time.perf_counter() - start


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def drive(root: Path) -> dict[str, float | list[float]]:
    figures: dict[str, float | list[float]] = {}
    start = time.perf_counter()
    app = PairForgeApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        # First paint: the Review list shows its first row.
        while True:
            await pilot.pause()
            screens = [s for s in app.screen_stack if s.query(PairList)]
            if screens and screens[-1].query_one(PairList).ids:
                break
        figures["first_paint_s"] = time.perf_counter() - start
        lst = app.screen.query_one(PairList)
        j_times: list[float] = []
        for _ in range(200):
            t = time.perf_counter()
            await pilot.press("j")
            await pilot.pause()
            j_times.append(time.perf_counter() - t)
        figures["j"] = j_times
        page_times: list[float] = []
        for _ in range(20):
            t = time.perf_counter()
            await pilot.press("pagedown")
            await pilot.pause()
            page_times.append(time.perf_counter() - t)
        figures["pagedown"] = page_times
        assert lst.cursor > 200
        review = app.screen.query_one(ReviewPane)
        t = time.perf_counter()
        review.show_filter(PairFilter(warning="mimicry", mode="thinker"))
        await pilot.pause()
        figures["filter_s"] = time.perf_counter() - t
        figures["filtered"] = float(len(lst.ids))
        t = time.perf_counter()
        review.show_filter(PairFilter(search="scenario 4242"))
        await pilot.pause()
        figures["search_s"] = time.perf_counter() - t
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench"
        built = build_project(root, args.pairs)
        print(f"built {args.pairs} pairs in {built:.1f} s")
        figures = asyncio.run(drive(root))
    j, pages = figures["j"], figures["pagedown"]
    assert isinstance(j, list) and isinstance(pages, list)
    ms = 1000
    print(f"first paint of Review:   {figures['first_paint_s']:.2f} s   (target < 1 s)")
    print(f"j x200:        median {statistics.median(j) * ms:.1f} ms  p95 {pct(j, 95) * ms:.1f} ms  (targets < 30 / < 80 ms)")
    print(f"pagedown x20:  median {statistics.median(pages) * ms:.1f} ms  p95 {pct(pages, 95) * ms:.1f} ms")
    print(f"filter (warning+mode, {int(figures['filtered'])} pairs): {figures['filter_s'] * ms:.0f} ms  (target < 300 ms)")
    print(f"search (substring):      {figures['search_s'] * ms:.0f} ms")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS:                {peak_mb:.0f} MB  (target < 600 MB)")


if __name__ == "__main__":
    main()
