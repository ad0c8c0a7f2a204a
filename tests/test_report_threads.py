"""The live report under concurrent writers: snapshots never fail and never mix two moments."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from engine.models import Pair, PairKind, PairStatus
from engine.quality import LiveReport
from engine.store import PairChange, Store

WRITERS = 4
PAIRS_PER_WRITER = 600
BATCH = 3


@pytest.fixture
def fast_switching() -> Iterator[None]:
    # Thread switches every microsecond make an unguarded read meet a write within a few hundred snapshots.
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def _pair(pair_id: int) -> Pair:
    # A new mode and language-free text per pair: every write adds keys to the report's counters.
    kind = (PairKind.INSTRUCTION, PairKind.REFUSAL, PairKind.MULTI_HOP)[pair_id % 3]
    pair = Pair.simple(f"Question number {pair_id} about retries?", f"Answer {pair_id}: retries back off and then give up.")
    return pair.model_copy(update={"id": pair_id, "kind": kind, "mode": f"mode-{pair_id}", "status": PairStatus.PENDING})


def test_snapshots_stay_whole_while_several_threads_apply_changes(project: Store, fast_switching: None) -> None:
    live = LiveReport.build(project)
    failures: list[BaseException] = []
    torn: list[str] = []
    writing = threading.Event()
    writing.set()

    def write(first_id: int) -> None:
        try:
            ids = range(first_id, first_id + PAIRS_PER_WRITER)
            for start in range(0, PAIRS_PER_WRITER, BATCH):
                batch = [_pair(i) for i in ids[start : start + BATCH]]
                live.apply([PairChange(p.id or 0, None, p) for p in batch])
        except BaseException as exc:  # any failure on a writer fails the test
            failures.append(exc)

    def read() -> None:
        try:
            while writing.is_set():
                report = live.snapshot(contradictions=False)
                # Every figure of one snapshot describes the same moment.
                if not (sum(report.by_kind.values()) == report.total == sum(report.by_mode.values()) == report.tokens.count):
                    torn.append(f"total {report.total}, kinds {sum(report.by_kind.values())}, "
                                f"modes {sum(report.by_mode.values())}, tokens {report.tokens.count}")
        except BaseException as exc:  # any failure on the reader fails the test
            failures.append(exc)

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=write, args=(1 + n * PAIRS_PER_WRITER,)) for n in range(WRITERS)]
    reader.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    writing.clear()
    reader.join()
    live.close()

    assert not failures, f"{len(failures)} failure(s), first: {failures[0]!r}"
    assert not torn, f"{len(torn)} torn snapshot(s), first: {torn[0]}"
    final = live.snapshot(contradictions=False)
    assert final.total == WRITERS * PAIRS_PER_WRITER == live.pair_count
    assert final.by_kind == {"instruction": 800, "refusal": 800, "multi_hop": 800}
