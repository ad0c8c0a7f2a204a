"""The pipeline log: one entry per decision a step made (imported N, skipped M because ...)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from engine.models import LogEntry, utcnow
from engine.store.database import Database


class LogRepository:
    """The ``pipeline_log`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        step: str,
        action: str,
        count: int = 0,
        message: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record one pipeline decision."""
        self.db.write(
            "INSERT INTO pipeline_log(ts, step, action, count, message, detail) VALUES (?,?,?,?,?,?)",
            (datetime.now(UTC).isoformat(), step, action, count, message, json.dumps(detail or {})),
        )

    def tail(self, limit: int = 20, step: str | None = None) -> list[LogEntry]:
        """The newest ``limit`` log entries (of one step, when given), oldest first."""
        where, params = ("WHERE step = ?", [step]) if step else ("", [])
        rows = self.db.read(f"SELECT * FROM pipeline_log {where} ORDER BY id DESC LIMIT ?", [*params, limit])
        return [
            LogEntry(
                id=r["id"], ts=datetime.fromisoformat(r["ts"]) if r["ts"] else utcnow(), step=r["step"],
                action=r["action"], count=r["count"], message=r["message"], detail=json.loads(r["detail"]),
            )
            for r in reversed(rows)
        ]

    def summary(self) -> list[dict[str, Any]]:
        """Totals per (step, action) over the whole log, for reports and the dataset card."""
        rows = self.db.read(
            "SELECT step, action, SUM(count) AS total, COUNT(*) AS entries FROM pipeline_log "
            "GROUP BY step, action ORDER BY MIN(id)"
        )
        return [dict(r) for r in rows]


__all__ = ["LogRepository"]
