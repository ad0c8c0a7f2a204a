"""Judge verdicts: one per pair, for the content (hash) and rubric version it judged."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from engine.models import Verdict, utcnow
from engine.store.database import Database
from engine.store.pairs import PairRepository


class VerdictRepository:
    """The ``verdicts`` table."""

    def __init__(self, db: Database, pairs: PairRepository) -> None:
        self.db = db
        # A verdict's total is the pair's score; both are written in one transaction.
        self._pairs = pairs

    def save(self, verdict: Verdict, *, content_hash: str | None = None, score_pair: bool = True) -> None:
        """Store (or replace) a pair's verdict, for the content ``content_hash`` when given.

        With ``score_pair`` the pair's score becomes the verdict's total in the same transaction.
        """
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO verdicts(pair_id, pair_revision, model, rubric_version, scores, "
                "total, reason, created_at, content_hash) VALUES (?,?,?,?,?,?,?,?,?)",
                (verdict.pair_id, verdict.pair_revision, verdict.model, verdict.rubric_version,
                 json.dumps(verdict.scores), verdict.total, verdict.reason, verdict.created_at.isoformat(),
                 content_hash),
            )
            if score_pair:
                self._pairs.set_scores({verdict.pair_id: verdict.total})

    def get(self, ids: Sequence[int] | None = None) -> dict[int, Verdict]:
        """Stored verdicts by pair id (of the pairs ``ids``, when given)."""
        sql = "SELECT * FROM verdicts"
        if ids is not None:
            sql += f" WHERE pair_id IN ({','.join(str(int(i)) for i in ids) or '-1'})"
        return {
            r["pair_id"]: Verdict(
                pair_id=r["pair_id"], pair_revision=r["pair_revision"], model=r["model"],
                rubric_version=r["rubric_version"], scores=json.loads(r["scores"]), total=r["total"],
                reason=r["reason"],
                created_at=datetime.fromisoformat(r["created_at"]) if r["created_at"] else utcnow(),
            )
            for r in self.db.read(sql)
        }


__all__ = ["VerdictRepository"]
