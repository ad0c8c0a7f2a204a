"""Embedding cache: one vector per (model, sha256 of a normalized text), stored as float32 bytes.

A vector depends only on the model and the text it embedded, so the key is those two: a second
embedding pass asks the server only for texts it has not embedded with that model before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np

from engine.store.database import Database

# Keys per lookup: well under SQLite's limit of bound parameters.
LOOKUP_BATCH = 500


class EmbeddingRepository:
    """The ``embeddings`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get_many(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors of ``model`` for those of ``hashes`` it has, by hash (float32 arrays)."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        for start in range(0, len(unique), LOOKUP_BATCH):
            part = unique[start : start + LOOKUP_BATCH]
            marks = ",".join("?" * len(part))
            rows = self.db.read(
                f"SELECT content_hash, vector FROM embeddings WHERE model = ? AND content_hash IN ({marks})",
                (model, *part),
                plain=True,
            )
            for content_hash, blob in rows:
                found[content_hash] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, model: str, vectors: Mapping[str, Sequence[float] | np.ndarray]) -> None:
        """Store ``model``'s vectors by hash in one transaction (a hash already stored is replaced)."""
        now = datetime.now(UTC).isoformat()
        rows = []
        for content_hash, vector in vectors.items():
            array = np.asarray(vector, dtype=np.float32)
            rows.append((model, content_hash, int(array.shape[0]), array.tobytes(), now))
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings(model, content_hash, dims, vector, created_at) VALUES (?,?,?,?,?)",
                rows,
            )

    def count(self, model: str | None = None) -> int:
        """How many vectors are cached (of ``model``, or of every model)."""
        if model is None:
            return int(self.db.read("SELECT COUNT(*) FROM embeddings", plain=True)[0][0])
        return int(self.db.read("SELECT COUNT(*) FROM embeddings WHERE model = ?", (model,), plain=True)[0][0])


__all__ = ["EmbeddingRepository"]
