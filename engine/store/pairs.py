"""Pairs and their revisions: reads, derived fields, and user edits kept for undo and redo.

User edits (``update``, ``set_status``, ``delete``, ``add_manual``) are recorded as revisions
grouped in batches, which gives undo and redo across restarts. Derived fields (warnings,
score, split) are not user edits: no revision, no undo.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.errors import NotFoundError
from engine.models import Pair, PairStatus, PairWarning, utcnow
from engine.store.changes import PairChange
from engine.store.database import Database

# The stored columns a Pair is built from.
PAIR_COLUMNS = (
    "id, messages, context, mode, kind, sources, status, origin, warnings, stale, score, split, "
    "revision, created_at, updated_at"
)

# How many ids one IN (...) lists, well under SQLite's limit on bound parameters.
_ID_BATCH = 500


@dataclass(frozen=True)
class PairFilter:
    """Which pairs to list; every field left None matches all."""

    status: str | None = None
    kind: str | None = None
    mode: str | None = None
    warning: str | None = None  # a check id, or "any"
    document_id: int | None = None
    search: str | None = None  # substring of instruction or response
    ids: Sequence[int] | None = None


def _now() -> str:
    return datetime.now(UTC).isoformat()


def pair_to_row(pair: Pair) -> dict[str, Any]:
    """The stored columns of ``pair`` (without id, document and timestamps)."""
    return {
        "messages": json.dumps([m.model_dump(mode="json") for m in pair.messages], ensure_ascii=False),
        "context": pair.context,
        "mode": pair.mode,
        "kind": str(pair.kind),
        "sources": json.dumps(pair.sources),
        "status": str(pair.status),
        "origin": pair.origin.model_dump_json(exclude_none=True),
        "warnings": json.dumps([w.model_dump(mode="json", exclude_none=True) for w in pair.warnings], ensure_ascii=False),
        "stale": int(pair.stale),
        "score": pair.score,
        "split": pair.split,
        "revision": pair.revision,
        "instruction": pair.instruction,
        "response": pair.response,
        "content_hash": pair.content_hash(),
    }


def pair_from_row(r: sqlite3.Row) -> Pair:
    """The Pair a row of ``PAIR_COLUMNS`` holds."""
    return Pair.model_validate(
        {
            "id": r["id"],
            "messages": json.loads(r["messages"]),
            "context": r["context"],
            "mode": r["mode"],
            "kind": r["kind"],
            "sources": json.loads(r["sources"]),
            "status": r["status"],
            "origin": json.loads(r["origin"]),
            "warnings": json.loads(r["warnings"]),
            "stale": bool(r["stale"]),
            "score": r["score"],
            "split": r["split"],
            "revision": r["revision"],
            "created_at": r["created_at"],
            "updated_at": r["updated_at"],
        }
    )


def filter_sql(flt: PairFilter | None) -> tuple[str, list[Any]]:
    """The WHERE clause (empty for no filter) and its parameters for ``flt``."""
    if flt is None:
        return "", []
    clauses: list[str] = []
    params: list[Any] = []
    for column in ("status", "kind", "mode"):
        value = getattr(flt, column)
        if value:
            clauses.append(f"{column} = ?")
            params.append(str(value))
    if flt.warning == "any":
        clauses.append("warnings != '[]'")
    elif flt.warning == "none":
        clauses.append("warnings = '[]'")
    elif flt.warning:
        clauses.append('id IN (SELECT pair_id FROM pair_warnings WHERE "check" = ?)')
        params.append(flt.warning)
    if flt.document_id is not None:
        clauses.append(
            "(document_id = ? OR id IN (SELECT ps.pair_id FROM pair_sources ps JOIN chunks c "
            "ON c.id = ps.chunk_id WHERE c.document_id = ?))"
        )
        params += [flt.document_id, flt.document_id]
    if flt.search:
        clauses.append("(instruction LIKE ? ESCAPE '\\' OR response LIKE ? ESCAPE '\\')")
        needle = "%" + flt.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        params += [needle, needle]
    if flt.ids is not None:
        ids = list(flt.ids) or [-1]
        clauses.append(f"id IN ({','.join(str(int(i)) for i in ids)})")
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


def _write_warnings(conn: sqlite3.Connection, pair_id: int, warnings: Sequence[PairWarning]) -> None:
    conn.execute("DELETE FROM pair_warnings WHERE pair_id = ?", (pair_id,))
    conn.executemany(
        'INSERT OR REPLACE INTO pair_warnings(pair_id, "check", severity) VALUES (?,?,?)',
        [(pair_id, w.check, str(w.severity)) for w in warnings],
    )


def _write_links(conn: sqlite3.Connection, pair: Pair) -> None:
    """The index rows of a pair's sources and warnings, rewritten from the pair."""
    assert pair.id is not None
    conn.execute("DELETE FROM pair_sources WHERE pair_id = ?", (pair.id,))
    conn.executemany(
        "INSERT OR IGNORE INTO pair_sources(pair_id, chunk_id, position) "
        "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM chunks WHERE id = ?)",
        [(pair.id, chunk_id, pos, chunk_id) for pos, chunk_id in enumerate(pair.sources)],
    )
    _write_warnings(conn, pair.id, pair.warnings)


class PairRepository:
    """The ``pairs`` table with its source and warning indexes, and the revisions of user edits."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ writes

    def add(self, pairs: Iterable[Pair], *, document_id: int | None = None) -> list[Pair]:
        """Insert new pairs in one transaction (a savepoint inside another); returns them with their ids."""
        with self.db.transaction() as conn:
            return self.insert(conn, pairs, document_id=document_id)

    def insert(
        self, conn: sqlite3.Connection, pairs: Iterable[Pair], *, document_id: int | None = None
    ) -> list[Pair]:
        """Insert new pairs in the caller's open transaction on ``conn``; returns them with their ids.

        For another repository's write that already is one block (a job and its pairs): no
        savepoint of its own. The listeners hear of the pairs when that transaction commits.
        """
        added: list[Pair] = []
        now = _now()
        for pair in pairs:
            row = pair_to_row(pair)
            row["created_at"] = row["updated_at"] = now
            row["document_id"] = document_id
            if pair.id is not None:
                row["id"] = pair.id
            cols = ",".join(f'"{k}"' for k in row)
            marks = ",".join(f":{k}" for k in row)
            pair_id = conn.execute(f"INSERT INTO pairs({cols}) VALUES ({marks})", row).lastrowid
            saved = pair.model_copy(update={"id": pair_id})
            _write_links(conn, saved)
            added.append(saved)
        self.db.announce([PairChange(p.id or 0, None, p) for p in added])
        return added

    def set_warnings(
        self, updates: dict[int, list[PairWarning]], *, changes: Sequence[PairChange] | None = None
    ) -> None:
        """Replace the warnings of several pairs (results of quality checks) and tell the listeners.

        ``changes`` may carry the before/after pairs the caller already has, to save a re-read.
        """
        if not updates:
            return
        if changes is None:
            befores = self.get_many(list(updates))
            changes = [
                PairChange(p.id or 0, p, p.model_copy(update={"warnings": updates[p.id or 0]})) for p in befores
            ]
        with self.db.transaction() as conn:
            for pair_id, warnings in updates.items():
                conn.execute(
                    "UPDATE pairs SET warnings = ? WHERE id = ?",
                    (json.dumps([w.model_dump(mode="json", exclude_none=True) for w in warnings], ensure_ascii=False), pair_id),
                )
                _write_warnings(conn, pair_id, warnings)
            self.db.announce(changes)

    def replace_warning(
        self, pair_id: int, check: str, warning: PairWarning | None, *, score: float | None
    ) -> PairChange | None:
        """Set a pair's score and its one warning of ``check`` (None removes it), keeping its other warnings.

        Returns the change (also told to the listeners), or None when the pair does not exist.
        """
        with self.db.transaction() as conn:
            row = conn.execute(f"SELECT {PAIR_COLUMNS} FROM pairs WHERE id = ?", (pair_id,)).fetchone()
            if row is None:
                return None
            kept = [w for w in json.loads(row["warnings"]) if w.get("check") != check]
            if warning is not None:
                kept.append(warning.model_dump(mode="json", exclude_none=True))
            conn.execute(
                "UPDATE pairs SET score = ?, warnings = ? WHERE id = ?",
                (score, json.dumps(kept, ensure_ascii=False), pair_id),
            )
            conn.execute('DELETE FROM pair_warnings WHERE pair_id = ? AND "check" = ?', (pair_id, check))
            if warning is not None:
                conn.execute(
                    'INSERT OR REPLACE INTO pair_warnings(pair_id, "check", severity) VALUES (?,?,?)',
                    (pair_id, warning.check, str(warning.severity)),
                )
            found = conn.execute(f"SELECT {PAIR_COLUMNS} FROM pairs WHERE id = ?", (pair_id,)).fetchone()
            change = PairChange(pair_id, pair_from_row(row), pair_from_row(found))
            self.db.announce([change])
        return change

    def set_splits(self, assignments: dict[int, str | None]) -> None:
        """Store each pair's split name (train / validation)."""
        with self.db.transaction() as conn:
            conn.executemany("UPDATE pairs SET split = ? WHERE id = ?", [(s, i) for i, s in assignments.items()])

    def set_scores(self, scores: dict[int, float | None]) -> None:
        """Store each pair's judge score."""
        with self.db.transaction() as conn:
            conn.executemany("UPDATE pairs SET score = ? WHERE id = ?", [(s, i) for i, s in scores.items()])

    # ------------------------------------------------------------------ reads

    def get(self, pair_id: int) -> Pair:
        """The pair with this id; raises NotFoundError."""
        found = self.find(pair_id)
        if found is None:
            raise NotFoundError(f"No pair with id {pair_id}: it may have been deleted.")
        return found

    def find(self, pair_id: int) -> Pair | None:
        """The pair with this id, or None."""
        rows = self.db.read(f"SELECT {PAIR_COLUMNS} FROM pairs WHERE id = ?", (pair_id,))
        return pair_from_row(rows[0]) if rows else None

    def content_hash(self, pair_id: int) -> str | None:
        """The stored hash of a pair's content (what a judge verdict is for), or None when it does not exist."""
        rows = self.db.read("SELECT content_hash FROM pairs WHERE id = ?", (pair_id,))
        return str(rows[0]["content_hash"]) if rows else None

    def get_many(self, ids: Sequence[int]) -> list[Pair]:
        """The pairs with these ids, in the order given (missing ids are skipped)."""
        found: dict[int, Pair] = {}
        for start in range(0, len(ids), _ID_BATCH):
            part = list(ids[start : start + _ID_BATCH])
            marks = ",".join("?" * len(part))
            for r in self.db.read(f"SELECT {PAIR_COLUMNS} FROM pairs WHERE id IN ({marks})", part):
                found[r["id"]] = pair_from_row(r)
        return [found[i] for i in ids if i in found]

    def ids(self, flt: PairFilter | None = None) -> list[int]:
        """Ids of the matching pairs in id order: the cheap index a virtual list pages over."""
        where, params = filter_sql(flt)
        # No ORDER BY: SQLite then reads a narrow covering index instead of every pair's row,
        # and sorting ids that arrive nearly in order costs next to nothing.
        ids = [r[0] for r in self.db.read(f"SELECT id FROM pairs {where}", params, plain=True)]
        ids.sort()
        return ids

    def count(self, flt: PairFilter | None = None) -> int:
        """How many pairs match."""
        where, params = filter_sql(flt)
        return int(self.db.read(f"SELECT COUNT(*) FROM pairs {where}", params)[0][0])

    def iter(self, flt: PairFilter | None = None, *, batch: int = 2000) -> Iterator[Pair]:
        """Every matching pair, in id order, fetched in batches so memory stays bounded."""
        where, params = filter_sql(flt)
        last = 0
        joiner = "AND" if where else "WHERE"
        while True:
            rows = self.db.read(
                f"SELECT {PAIR_COLUMNS} FROM pairs {where} {joiner} id > ? ORDER BY id LIMIT ?",
                [*params, last, batch],
            )
            if not rows:
                return
            for r in rows:
                yield pair_from_row(r)
            last = rows[-1]["id"]

    def iter_rows(self, flt: PairFilter | None = None, *, batch: int = 5000) -> Iterator[dict[str, Any]]:
        """Every matching pair as a plain dict of its stored columns, in id order, fetched in batches.

        The bulk read for exports: no model validation, and the JSON columns (messages, sources,
        origin, warnings) stay as their stored text for the caller to decode as it needs.
        """
        where, params = filter_sql(flt)
        last = 0
        joiner = "AND" if where else "WHERE"
        while True:
            rows = self.db.read(
                "SELECT id, messages, context, mode, kind, sources, status, origin, warnings, score, split "
                f"FROM pairs {where} {joiner} id > ? ORDER BY id LIMIT ?",
                [*params, last, batch],
            )
            if not rows:
                return
            for r in rows:
                yield dict(r)
            last = rows[-1]["id"]

    def rows(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """Light rows (id, status, kind, mode, instruction, warning count, stale, score) for list views."""
        if not ids:
            return []
        marks = ",".join(str(int(i)) for i in ids)
        rows = self.db.read(
            "SELECT id, status, kind, mode, substr(instruction, 1, 300) AS instruction, "
            "json_array_length(warnings) AS n_warnings, stale, score, split FROM pairs "
            f"WHERE id IN ({marks})"
        )
        by_id = {r["id"]: dict(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def counts(self, by: str) -> dict[str, int]:
        """Pair counts grouped by ``status``, ``kind``, ``mode`` or ``split``; raises ValueError for another column."""
        if by not in {"status", "kind", "mode", "split"}:
            raise ValueError(f"cannot group pairs by {by!r}")
        rows = self.db.read(f"SELECT {by} AS k, COUNT(*) AS n FROM pairs GROUP BY {by} ORDER BY n DESC")
        return {str(r["k"]): r["n"] for r in rows}

    def questions_citing(self, chunk_ids: Sequence[int], limit: int) -> list[str]:
        """The newest ``limit`` distinct instructions of pairs (not rejected) grounded on any of ``chunk_ids``."""
        if not chunk_ids:
            return []
        marks = ",".join(str(int(i)) for i in chunk_ids)
        rows = self.db.read(
            "SELECT p.instruction AS q FROM pairs p JOIN pair_sources s ON s.pair_id = p.id "
            f"WHERE s.chunk_id IN ({marks}) AND p.status != 'rejected' AND p.instruction != '' "
            "GROUP BY p.instruction ORDER BY MAX(p.id) DESC LIMIT ?",
            (limit,),
        )
        return [r["q"] for r in rows]

    def refusal_sources(self) -> dict[str, int]:
        """Refusal pairs not rejected, by where their topic came from: ``model``, ``fallback`` or ``unrecorded``."""
        rows = self.db.read(
            "SELECT COALESCE(json_extract(origin, '$.refusal_source'), 'unrecorded') AS k, COUNT(*) AS n FROM pairs "
            "WHERE kind = 'refusal' AND status != 'rejected' GROUP BY k ORDER BY n DESC"
        )
        return {str(r["k"]): r["n"] for r in rows}

    def refusal_topics(self) -> set[str]:
        """The topics (lower-cased) refusal pairs not rejected already decline."""
        rows = self.db.read(
            "SELECT DISTINCT lower(json_extract(origin, '$.refusal_topic')) AS t FROM pairs "
            "WHERE kind = 'refusal' AND status != 'rejected' AND json_extract(origin, '$.refusal_topic') IS NOT NULL"
        )
        return {str(r["t"]) for r in rows}

    def warning_counts(self) -> dict[str, int]:
        """How many pairs carry each warning check id."""
        rows = self.db.read('SELECT "check" AS c, COUNT(*) AS n FROM pair_warnings GROUP BY "check" ORDER BY n DESC')
        return {r["c"]: r["n"] for r in rows}

    def stale_count(self) -> int:
        """How many pairs are grounded on text that changed since they were made."""
        return int(self.db.read("SELECT COUNT(*) FROM pairs WHERE stale = 1")[0][0])

    # ------------------------------------------------------------------ user edits with undo

    def update(self, pair: Pair, *, action: str = "edit") -> Pair:
        """Save a user's edit of a pair (undoable); returns the saved pair. Raises NotFoundError."""
        if pair.id is None:
            raise NotFoundError("Cannot update a pair that was never saved: add it first.")
        before = self.get(pair.id)
        changes = self._record_batch(action, [(pair.id, before, pair)])
        after = changes[0].after
        assert after is not None
        return after

    def update_many(self, pairs: Sequence[Pair], *, action: str = "edit") -> int:
        """Save edits of several pairs as one undoable step; returns how many."""
        befores = {p.id: p for p in self.get_many([p.id for p in pairs if p.id is not None])}
        changes: list[tuple[int | None, Pair | None, Pair | None]] = [
            (p.id, befores[p.id], p) for p in pairs if p.id in befores
        ]
        return len(self._record_batch(action, changes))

    def set_status(self, ids: Sequence[int], status: PairStatus | str) -> int:
        """Accept, reject or reset pairs as one undoable step; returns how many changed."""
        status = PairStatus(status)
        changes: list[tuple[int | None, Pair | None, Pair | None]] = []
        for pair in self.get_many(list(ids)):
            if pair.status != status:
                changes.append((pair.id or 0, pair, pair.model_copy(update={"status": status})))
        return len(self._record_batch(f"status:{status}", changes))

    def delete(self, ids: Sequence[int], *, action: str = "delete") -> int:
        """Delete pairs as one undoable step; returns how many."""
        changes: list[tuple[int | None, Pair | None, Pair | None]] = [
            (p.id or 0, p, None) for p in self.get_many(list(ids))
        ]
        return len(self._record_batch(action, changes))

    def add_manual(self, pair: Pair) -> Pair:
        """Add a pair written by a person (undoable); returns it with its id."""
        changes = self._record_batch("add", [(None, None, pair)])
        after = changes[0].after
        assert after is not None
        return after

    def undo(self) -> tuple[str, list[int]] | None:
        """Revert the last user edit (even one made before a restart); returns (action, pair ids) or None."""
        return self._undo_redo(undo=True)

    def redo(self) -> tuple[str, list[int]] | None:
        """Re-apply the last undone edit; returns (action, pair ids) or None."""
        return self._undo_redo(undo=False)

    def history(self, pair_id: int) -> list[dict[str, Any]]:
        """Every saved revision of a pair, oldest first."""
        rows = self.db.read(
            "SELECT r.id, b.action, b.created_at, b.undone, r.before, r.after FROM pair_revisions r "
            "JOIN edit_batches b ON b.id = r.batch_id WHERE r.pair_id = ? ORDER BY r.id",
            (pair_id,),
        )
        return [dict(r) for r in rows]

    def _apply_snapshot(self, conn: sqlite3.Connection, pair_id: int, snapshot: str | None) -> None:
        if snapshot is None:
            conn.execute("DELETE FROM pairs WHERE id = ?", (pair_id,))
            return
        pair = Pair.model_validate_json(snapshot)
        row = pair_to_row(pair)
        row["updated_at"] = _now()
        exists = conn.execute("SELECT 1 FROM pairs WHERE id = ?", (pair_id,)).fetchone()
        if exists:
            sets = ",".join(f'"{k}" = :{k}' for k in row)
            conn.execute(f"UPDATE pairs SET {sets} WHERE id = :id", {**row, "id": pair_id})
        else:
            row["id"] = pair_id
            row["created_at"] = pair.created_at.isoformat()
            cols = ",".join(f'"{k}"' for k in row)
            marks = ",".join(f":{k}" for k in row)
            conn.execute(f"INSERT INTO pairs({cols}) VALUES ({marks})", row)
        _write_links(conn, pair.model_copy(update={"id": pair_id}))

    def _record_batch(
        self, action: str, changes: list[tuple[int | None, Pair | None, Pair | None]]
    ) -> list[PairChange]:
        """Apply user changes in one transaction with one undo batch; returns the changes."""
        if not changes:
            return []
        result: list[PairChange] = []
        with self.db.transaction() as conn:
            # A new edit forgets what was undone: the redo stack is cleared.
            conn.execute("DELETE FROM edit_batches WHERE undone = 1")
            batch_id = conn.execute(
                "INSERT INTO edit_batches(action, created_at) VALUES (?, ?)", (action, _now())
            ).lastrowid
            for maybe_id, before, after in changes:
                if maybe_id is None:
                    # A new pair: reserve its id (AUTOINCREMENT never reuses one, so undo is safe).
                    maybe_id = conn.execute(
                        "INSERT INTO pairs(messages, mode, kind, created_at, updated_at) VALUES ('[]','','',?,?)",
                        (_now(), _now()),
                    ).lastrowid
                pair_id = int(maybe_id or 0)
                if after is not None:
                    after = after.model_copy(
                        update={"id": pair_id, "revision": (before.revision + 1 if before else 0), "updated_at": utcnow()}
                    )
                before_json = before.model_dump_json() if before else None
                after_json = after.model_dump_json() if after else None
                conn.execute(
                    "INSERT INTO pair_revisions(batch_id, pair_id, before, after) VALUES (?,?,?,?)",
                    (batch_id, pair_id, before_json, after_json),
                )
                self._apply_snapshot(conn, pair_id, after_json)
                result.append(PairChange(pair_id, before, after))
            self.db.announce(result)
        return result

    def _undo_redo(self, undo: bool) -> tuple[str, list[int]] | None:
        flag, order = (0, "DESC") if undo else (1, "ASC")
        result: list[PairChange] = []
        with self.db.transaction() as conn:
            if undo:
                row = conn.execute("SELECT * FROM edit_batches WHERE undone = 0 ORDER BY id DESC LIMIT 1").fetchone()
            else:
                row = conn.execute("SELECT * FROM edit_batches WHERE undone = 1 ORDER BY id ASC LIMIT 1").fetchone()
            if row is None:
                return None
            revisions = conn.execute(
                f"SELECT * FROM pair_revisions WHERE batch_id = ? ORDER BY id {order}", (row["id"],)
            ).fetchall()
            for rev in revisions:
                target = rev["before"] if undo else rev["after"]
                other = rev["after"] if undo else rev["before"]
                self._apply_snapshot(conn, rev["pair_id"], target)
                result.append(
                    PairChange(
                        rev["pair_id"],
                        Pair.model_validate_json(other) if other else None,
                        Pair.model_validate_json(target) if target else None,
                    )
                )
            conn.execute("UPDATE edit_batches SET undone = ? WHERE id = ?", (1 - flag, row["id"]))
            self.db.announce(result)
        return row["action"], [c.pair_id for c in result]


__all__ = ["PAIR_COLUMNS", "PairFilter", "PairRepository", "filter_sql", "pair_from_row", "pair_to_row"]
