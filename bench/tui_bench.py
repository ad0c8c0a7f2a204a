"""How the app feels on a big project: 100k pairs, some with warnings and duplicates.

Prints: time to first paint of the Review screen, median and p95 time per key for 200
``j`` presses and 20 page-downs, time to apply a filter, peak RSS.
Targets: first paint < 1 s, per-key median < 30 ms and p95 < 80 ms, filter < 300 ms, < 600 MB.

Then the Generate screen with 20k queued jobs while 5 jobs a second complete (as a run's
events arrive): UI time per progress update (target < 16 ms) and per key in the job list
(median < 30 ms).

    .venv/bin/python bench/tui_bench.py [--pairs 100000] [--jobs 20000] [--screen all|review|generate]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")

from textual import events

from engine.models import Job, Pair, PairKind, PairWarning
from engine.store import PairFilter, Store
from tui.app import PairForgeApp
from tui.messages import GenerationUpdate
from tui.panes.generate import GeneratePane
from tui.panes.review import ReviewPane
from tui.widgets.job_list import JobList
from tui.widgets.pair_list import PairList

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
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class FrameClock:
    """Records when each frame is written to the terminal, and times a key from its arrival to the frame showing it.

    Pilot's ``press`` waits for the whole app to go idle (at least 20 ms per check, and longer while
    background threads are busy), which is not what a user feels. Here a key is sent the way the
    terminal driver sends it, and its time ends with the frame that shows the new list row, title and
    detail with nothing left to redraw.
    """

    def __init__(self, app: PairForgeApp) -> None:
        self.app = app
        self.frames: list[float] = []
        self.first_review_frame: float | None = None
        display = app._display

        def timed_display(screen: Any, renderable: Any) -> None:
            display(screen, renderable)
            self.frames.append(time.perf_counter())
            if self.first_review_frame is None and screen is app.workspace and screen.query_one(PairList).ids:
                self.first_review_frame = self.frames[-1]

        app._display = timed_display  # type: ignore[method-assign]

    def settled(self) -> bool:
        screen = self.app.screen
        return not (
            screen._dirty_widgets or screen._layout_required or screen._repaint_required
            or screen._scroll_required or screen._recompose_required
        )

    async def key(self, key: str, done: Callable[[], bool], timeout: float = 5.0) -> float:
        """Seconds from sending ``key`` until a frame after it, once ``done()`` holds and the screen is settled."""
        driver = self.app._driver
        assert driver is not None
        event = events.Key(key, key if len(key) == 1 else None)
        event.set_sender(self.app)
        return await self.time_to_frame(lambda: driver.send_message(event), done, timeout, what=repr(key))

    async def time_to_frame(
        self, act: Callable[[], None], done: Callable[[], bool], timeout: float = 5.0, *, what: str = "the change",
    ) -> float:
        """Seconds from ``act()`` until a frame after it, once ``done()`` holds and the screen is settled."""
        frames_before = len(self.frames)
        start = time.perf_counter()
        act()
        while time.perf_counter() - start < timeout:
            await asyncio.sleep(0.0005)
            if len(self.frames) > frames_before and done() and self.settled():
                return self.frames[-1] - start
        raise TimeoutError(f"{what} showed no settled frame within {timeout} s")


def moved(review: ReviewPane, before: int) -> Callable[[], bool]:
    lst = review.pair_list
    return lambda: lst.cursor != before and review.detail.pair_id == lst.current_id


async def keys(clock: FrameClock, review: ReviewPane, key: str, count: int, until: Callable[[], bool] | None = None) -> list[float]:
    times: list[float] = []
    for _ in range(count):
        if until is not None and until():
            break
        times.append(await clock.key(key, moved(review, review.pair_list.cursor)))
    return times


async def drive(root: Path) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    start = time.perf_counter()
    app = PairForgeApp(root)
    async with app.run_test(size=(120, 40)):
        clock = FrameClock(app)
        # First paint: the first frame of the workspace with the Review list's rows in it.
        while clock.first_review_frame is None:
            await asyncio.sleep(0.001)
            if time.perf_counter() - start > 60:
                raise TimeoutError("the Review screen never painted")
        figures["first_paint_s"] = clock.first_review_frame - start
        assert app.workspace is not None
        review = app.workspace.query_one(ReviewPane)
        # While the quality report reads every pair in the background.
        figures["j_busy"] = await keys(clock, review, "j", 200, until=lambda: app.quality.report is not None)
        while app.quality.report is None:
            await asyncio.sleep(0.05)
        figures["report_s"] = time.perf_counter() - start
        await asyncio.sleep(1.0)  # let the panel's first full refresh land
        figures["j"] = await keys(clock, review, "j", 200)
        figures["pagedown"] = await keys(clock, review, "pagedown", 20)
        assert review.pair_list.cursor > 200
        # Pairs arriving as generation writes them (5 a second, from another thread) while keys are pressed.
        store = app.store
        assert store is not None
        stop = threading.Event()

        def generate() -> None:
            n = 0
            while not stop.wait(0.2):
                store.add_pairs([Pair.simple(f"Live question {n} about Tidewater retries?", f"Live answer {n}.")])
                n += 1

        writer = threading.Thread(target=generate, daemon=True)
        writer.start()
        await asyncio.sleep(0.5)
        figures["j_live"] = await keys(clock, review, "j", 200)
        stop.set()
        writer.join()
        await asyncio.sleep(1.0)

        async def filtered(flt: PairFilter) -> float:
            return await clock.time_to_frame(lambda: review.show_filter(flt), lambda: True, what=f"filter {flt}")

        figures["filter_s"] = await filtered(PairFilter(warning="mimicry", mode="thinker"))
        figures["filtered"] = len(review.pair_list.ids)
        figures["search_s"] = await filtered(PairFilter(search="scenario 4242"))
        figures["found"] = len(review.pair_list.ids)
        figures["unfilter_s"] = await filtered(PairFilter())
        figures["all"] = len(review.pair_list.ids)
    return figures


def build_jobs(root: Path, n: int) -> None:
    """A project with one document chunk and ``n`` queued generation jobs on it."""
    store = Store.init(root, name="bench-jobs")
    kinds = (PairKind.INSTRUCTION, PairKind.MULTI_HOP, PairKind.THINKING, PairKind.REFUSAL)
    store.create_run("generate", {}, [
        Job(kind=kinds[i % len(kinds)], mode=("developer", "thinker", "factual")[i % 3], chunk_ids=[1])
        for i in range(n)
    ])
    store.close()


async def drive_generate(root: Path) -> dict[str, Any]:
    """The Generate screen while jobs complete from another thread, 5 a second."""
    figures: dict[str, Any] = {"update_ms": []}
    app = PairForgeApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        clock = FrameClock(app)
        await pilot.press("f3")  # a new project opens on Documents with its path input focused
        while not app.screen.query(GeneratePane):
            await asyncio.sleep(0.01)
        pane = app.screen.query_one(GeneratePane)
        job_list = pane.query_one(JobList)
        while not job_list.ids:
            await asyncio.sleep(0.01)
        figures["jobs"] = len(job_list.ids)
        handler = GeneratePane.on_generation_update

        def timed_update(self: GeneratePane, message: GenerationUpdate) -> None:
            started = time.perf_counter()
            handler(self, message)
            figures["update_ms"].append(1000 * (time.perf_counter() - started))

        # Textual finds handlers on the class, so the timing wraps the class's method.
        GeneratePane.on_generation_update = timed_update  # type: ignore[method-assign]
        store = app.store
        assert store is not None
        stop = threading.Event()

        def complete_jobs() -> None:
            # What the runner does per job, and the event the app receives for it.
            while not stop.wait(0.2):
                job = store.claim_job("http://bench:11434", task="generate")
                if job is None:
                    return
                store.complete_job(job.id or 0, [Pair.simple(f"Question of job {job.id}?", f"Answer of job {job.id}.")])
                counts = store.job_counts()
                app.call_from_thread(pane.post_message, GenerationUpdate(
                    {**counts, "pairs_per_min": 300.0, "tokens_per_s": 40.0, "eta_s": 3600.0}, [job.id or 0],
                ))

        worker = threading.Thread(target=complete_jobs, daemon=True)
        worker.start()
        job_list.focus()
        await asyncio.sleep(1.0)

        def down(before: int) -> Callable[[], bool]:
            return lambda: job_list.cursor != before

        figures["keys"] = [await clock.key("down", down(job_list.cursor)) for _ in range(100)]
        figures["pagedown"] = [await clock.key("pagedown", down(job_list.cursor)) for _ in range(20)]
        await asyncio.sleep(2.0)
        stop.set()
        worker.join()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--screen", choices=("all", "review", "generate"), default="all")
    args = parser.parse_args()
    ms = 1000
    if args.screen in ("all", "generate"):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "bench-jobs"
            build_jobs(root, args.jobs)
            gen = asyncio.run(drive_generate(root))
        updates = gen["update_ms"]
        print(f"Generate screen, {gen['jobs']} jobs, 5 completing a second:")
        print(f"  UI time per progress update ({len(updates)}): median {statistics.median(updates):.2f} ms, "
              f"p95 {pct(updates, 95):.2f} ms, max {max(updates):.2f} ms  (target < 16 ms)")
        print(f"  down x100 in the job list: median {statistics.median(gen['keys']) * ms:.1f} ms, "
              f"p95 {pct(gen['keys'], 95) * ms:.1f} ms  (target median < 30 ms)")
        print(f"  pagedown x20: median {statistics.median(gen['pagedown']) * ms:.1f} ms, "
              f"p95 {pct(gen['pagedown'], 95) * ms:.1f} ms")
        if args.screen == "generate":
            return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench"
        built = build_project(root, args.pairs)
        print(f"built {args.pairs} pairs in {built:.1f} s")
        figures = asyncio.run(drive(root))

    def keyline(label: str, times: list[float], targets: str = "") -> None:
        if times:
            print(f"{label:<34} median {statistics.median(times) * ms:5.1f} ms  p95 {pct(times, 95) * ms:5.1f} ms  {targets}")

    print(f"first paint of Review:             {figures['first_paint_s']:.2f} s  (target < 1 s)")
    keyline(f"j x{len(figures['j_busy'])} while the report builds:", figures["j_busy"])
    print(f"quality report built after:        {figures['report_s']:.1f} s")
    keyline("j x200:", figures["j"], "(targets < 30 / < 80 ms)")
    keyline("pagedown x20:", figures["pagedown"])
    keyline("j x200 while 5 pairs/s arrive:", figures["j_live"])
    print(f"filter (warning+mode, {figures['filtered']} pairs): {figures['filter_s'] * ms:.0f} ms  (target < 300 ms)")
    print(f"search (substring, {figures['found']} pairs):    {figures['search_s'] * ms:.0f} ms")
    print(f"clear the filter ({figures['all']} rows): {figures['unfilter_s'] * ms:.0f} ms")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS:                {peak_mb:.0f} MB  (target < 600 MB)")


if __name__ == "__main__":
    main()
