"""Import benchmark: 1,000 Markdown files (~50 MB), one 200 MB text file, and `pairforge --help`.

Run: .venv/bin/python bench/import_bench.py [--skip-big]
Targets on a 2-core machine: the corpus import under 20 s and 500 MB RSS; --help under 0.5 s.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from engine.ingest import import_paths
from engine.store import Store

MB = 1024 * 1024


class PeakRss:
    """Samples this process's resident memory in a thread and keeps the peak."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def make_corpus(folder: Path, files: int = 1000, target_mb: float = 50.0) -> int:
    """Write ``files`` Markdown files totalling about ``target_mb``; returns bytes written."""
    rng = random.Random(7)
    words = ["broker", "worker", "lease", "retry", "queue", "cache", "token", "job", "result", "schedule", "backoff", "dead", "letter"]
    per_file = int(target_mb * MB / files)
    total = 0
    for i in range(files):
        parts = [f"# Guide {i}\n"]
        size = 0
        section = 0
        while size < per_file:
            section += 1
            para = " ".join(rng.choices(words, k=rng.randint(40, 160))).capitalize() + "."
            block = f"\n## Section {section}\n\n{para}\n\n```python\nretry.max_attempts = {section}\n```\n"
            parts.append(block)
            size += len(block)
        text = "".join(parts)
        (folder / f"guide-{i:04d}.md").write_text(text, encoding="utf-8")
        total += len(text.encode())
    return total


def bench_corpus() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        size = make_corpus(corpus)
        store = Store.init(Path(tmp) / "project")
        with PeakRss() as rss:
            started = time.perf_counter()
            report = import_paths(store, [corpus])
            wall = time.perf_counter() - started
        store.close()
        files = len(report.imported)
        print(f"corpus: {files} files, {size / MB:.1f} MB, {report.chunks} chunks")
        print(f"corpus: {wall:.2f} s wall, {files / wall:.0f} files/s, {size / MB / wall:.1f} MB/s, "
              f"peak RSS {rss.peak / MB:.0f} MB (targets: < 20 s, < 500 MB)")


def bench_big_file(mb: int = 200) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.txt"
        paragraph = ("The broker leases each job to one worker and renews the lease while it runs. " * 12 + "\n\n").encode()
        block = paragraph * (MB // len(paragraph) + 1)
        with path.open("wb") as handle:
            for _ in range(mb):
                handle.write(block[:MB])
        store = Store.init(Path(tmp) / "project")
        with PeakRss() as rss:
            started = time.perf_counter()
            report = import_paths(store, [path])
            wall = time.perf_counter() - started
        store.close()
        print(f"big file: {mb} MB, {report.chunks} chunks, {wall:.1f} s, {mb / wall:.1f} MB/s, "
              f"peak RSS {rss.peak / MB:.0f} MB")


def bench_help() -> None:
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from tui.cli import main; main(['--help'])"],
                       capture_output=True, check=False)
        runs.append(time.perf_counter() - started)
    print(f"pairforge --help: {min(runs) * 1000:.0f} ms best of 3 (target < 500 ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-big", action="store_true", help="Skip the 200 MB single-file import.")
    args = parser.parse_args()
    bench_help()
    bench_corpus()
    if not args.skip_big:
        bench_big_file()


if __name__ == "__main__":
    main()
