"""Project-wide values stored as JSON under a key (the last split's seed and sizes, ...)."""

from __future__ import annotations

import json
from typing import Any

from engine.store.database import Database


class MetaRepository:
    """The ``meta`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key``, or ``default``."""
        rows = self.db.read("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def set(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key``."""
        self.db.write(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)),
        )


__all__ = ["MetaRepository"]
