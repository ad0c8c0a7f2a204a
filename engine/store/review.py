"""Review samples: the pairs drawn for a read-through and the pass/fail verdict a person gave each.

A sample is kept until a new one is drawn (the newest is the current one; older ones stay as
history). A verdict is a reviewer's finding about the pair as drawn, apart from its status: a
failed pair that is later fixed or rejected still counts as failed in its sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.store.database import Database

VERDICTS = ("pass", "fail")


@dataclass(frozen=True)
class StoredSample:
    """One drawn sample: its pairs in order and each one's verdict (None while unreviewed)."""

    id: int
    drawn_at: str
    seed: int | None
    method: str
    pairs: tuple[tuple[int, str | None], ...]


class ReviewSampleRepository:
    """The ``review_samples`` and ``review_sample_pairs`` tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, pair_ids: Sequence[int], *, seed: int | None, method: str) -> int:
        """Store a newly drawn sample (it becomes the current one); returns its id."""
        with self.db.transaction() as conn:
            sample_id = conn.execute(
                "INSERT INTO review_samples(drawn_at, size, seed, method) VALUES (?,?,?,?)",
                (datetime.now(UTC).isoformat(), len(pair_ids), seed, method),
            ).lastrowid
            conn.executemany(
                "INSERT INTO review_sample_pairs(sample_id, pair_id, position) VALUES (?,?,?)",
                [(sample_id, pair_id, n) for n, pair_id in enumerate(pair_ids)],
            )
        return int(sample_id or 0)

    def current(self) -> StoredSample | None:
        """The newest sample, or None when none was drawn."""
        rows = self.db.read("SELECT * FROM review_samples ORDER BY id DESC LIMIT 1")
        if not rows:
            return None
        head = rows[0]
        entries = self.db.read(
            "SELECT pair_id, verdict FROM review_sample_pairs WHERE sample_id = ? ORDER BY position", (head["id"],)
        )
        return StoredSample(head["id"], head["drawn_at"], head["seed"], head["method"],
                            tuple((r["pair_id"], r["verdict"]) for r in entries))

    def mark(self, sample_id: int, pair_id: int, verdict: str | None) -> bool:
        """Set (or, with None, clear) a pair's verdict in a sample; whether the pair is in it."""
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, not {verdict!r}")
        written = self.db.write(
            "UPDATE review_sample_pairs SET verdict = ?, marked_at = ? WHERE sample_id = ? AND pair_id = ?",
            (verdict, datetime.now(UTC).isoformat() if verdict else None, sample_id, pair_id),
        )
        return written.rowcount > 0


__all__ = ["VERDICTS", "ReviewSampleRepository", "StoredSample"]
