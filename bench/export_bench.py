"""Export benchmark: 100k pairs to every format, the Hugging Face dataset and the card.

Run: .venv/bin/python bench/export_bench.py [N]  (prints seconds and peak RSS; targets < 15 s, < 1.5 GB)
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.export import ExportOptions, export_dataset
from engine.models import Message, Pair, PairKind, PairOrigin, PairStatus, Role
from engine.store import Store

KINDS = list(PairKind)
MODES = ["developer", "thinker", "factual"]


def _pair(i: int) -> Pair:
    messages = [
        Message(role=Role.SYSTEM, content="You are a helpful guide."),
        Message(role=Role.USER, content=f"Question {i}: how does the tidal pump behave when the intake freezes? " * 3),
        Message(role=Role.ASSISTANT, content=f"Answer {i}: drain the intake, close the valve and flush the line. " * 12),
    ]
    if i % 10 == 0:
        messages += [Message(role=Role.USER, content="And in spring?"),
                     Message(role=Role.ASSISTANT, content="Reopen the valve and prime the pump before use.")]
    return Pair(
        messages=messages, context="Section 4 of the manual." if i % 4 == 0 else None,
        mode=MODES[i % 3], kind=KINDS[i % len(KINDS)], status=PairStatus.ACCEPTED,
        split="validation" if i % 10 == 3 else "train", score=float(i % 10) if i % 2 else None,
        origin=PairOrigin(backend="ollama", model="qwen2.5:7b-instruct", prompt_version="v2"),
    )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.init(Path(tmp) / "project")
        started = time.perf_counter()
        for start in range(0, n, 10_000):
            store.add_pairs(_pair(i) for i in range(start, min(n, start + 10_000)))
        print(f"built a project of {n} pairs in {time.perf_counter() - started:.1f} s")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        result = export_dataset(store, Path(tmp) / "out", ExportOptions(formats=["all"]))
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        size = sum(p.stat().st_size for p in (Path(tmp) / "out").rglob("*") if p.is_file()) / 1e6
        print(f"exported {result.exported} pairs, {len(result.files)} files, {size:.0f} MB")
        print(f"export seconds: {seconds:.1f}  (target < 15)")
        print(f"peak RSS: {peak:.0f} MB (before export {rss_before:.0f} MB; target < 1536)")
        store.close()


if __name__ == "__main__":
    main()
