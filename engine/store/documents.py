"""Documents and their chunks; re-importing a document retires its old chunks and flags their pairs stale."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from engine.errors import NotFoundError
from engine.models import Chunk, Document, Pair, utcnow
from engine.store.database import Database
from engine.store.pairs import PairRepository

_DOC_SELECT = (
    "SELECT d.*, (SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id AND c.retired = 0) "
    "AS n_chunks FROM documents d"
)

# How many ids one IN (...) lists, well under SQLite's limit on bound parameters.
_ID_BATCH = 500


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def document_from_row(r: sqlite3.Row) -> Document:
    """The Document a ``documents`` row holds (``n_chunks`` when the query counted them)."""
    keys = r.keys()
    return Document(
        id=r["id"], path=r["path"], format=r["format"], sha256=r["sha256"], size=r["size"],
        title=r["title"], meta=json.loads(r["meta"]),
        created_at=_dt(r["created_at"]) or utcnow(), updated_at=_dt(r["updated_at"]) or utcnow(),
        n_chunks=r["n_chunks"] if "n_chunks" in keys else 0,
    )


def chunk_from_row(r: sqlite3.Row) -> Chunk:
    """The Chunk a ``chunks`` row holds."""
    return Chunk(
        id=r["id"], document_id=r["document_id"], ordinal=r["ordinal"], text=r["text"],
        start=r["start"], end=r["end"], heading_path=json.loads(r["heading_path"]),
        concepts=json.loads(r["concepts"]), retired=bool(r["retired"]),
    )


class DocumentRepository:
    """The ``documents`` and ``chunks`` tables."""

    def __init__(self, db: Database, pairs: PairRepository) -> None:
        self.db = db
        # Imported pairs are saved with their document, in its transaction.
        self._pairs = pairs

    def get(self, document_id: int) -> Document:
        """The document with this id; raises NotFoundError."""
        rows = self.db.read(f"{_DOC_SELECT} WHERE d.id = ?", (document_id,))
        if not rows:
            raise NotFoundError(f"No document with id {document_id}: list them with `pairforge docs`.")
        return document_from_row(rows[0])

    def find(self, path: str) -> Document | None:
        """The document imported from ``path`` (as stored), or None."""
        rows = self.db.read(f"{_DOC_SELECT} WHERE d.path = ?", (path,))
        return document_from_row(rows[0]) if rows else None

    def all(self) -> list[Document]:
        """Every document, in import order."""
        return [document_from_row(r) for r in self.db.read(f"{_DOC_SELECT} ORDER BY d.id")]

    def count_by_format(self) -> dict[str, int]:
        """How many documents of each format, most common first."""
        rows = self.db.read("SELECT format, COUNT(*) AS n FROM documents GROUP BY format ORDER BY n DESC")
        return {r["format"]: r["n"] for r in rows}

    def pair_counts(self) -> dict[int, int]:
        """How many pairs are grounded on (or imported from) each document."""
        rows = self.db.read(
            "SELECT document_id, COUNT(*) AS n FROM ("
            " SELECT DISTINCT ps.pair_id, c.document_id FROM pair_sources ps JOIN chunks c ON c.id = ps.chunk_id"
            " UNION SELECT id, document_id FROM pairs WHERE document_id IS NOT NULL"
            ") GROUP BY document_id"
        )
        return {r["document_id"]: r["n"] for r in rows}

    def save(self, document: Document, chunks: Iterable[Chunk], *, pairs: Iterable[Pair] = ()) -> tuple[Document, int]:
        """Insert a document with its chunks (and imported pairs) in one transaction.

        If a document with the same path exists, its chunks are retired and every pair
        grounded on them is flagged stale. Returns the saved document and the number of
        pairs flagged stale.
        """
        now = _now()
        stale = 0
        with self.db.transaction() as conn:
            existing = conn.execute("SELECT id FROM documents WHERE path = ?", (document.path,)).fetchone()
            if existing:
                doc_id = existing["id"]
                conn.execute(
                    "UPDATE documents SET format=?, sha256=?, size=?, title=?, meta=?, updated_at=? WHERE id=?",
                    (document.format, document.sha256, document.size, document.title,
                     json.dumps(document.meta), now, doc_id),
                )
                stale = conn.execute(
                    "UPDATE pairs SET stale = 1 WHERE stale = 0 AND (id IN (SELECT ps.pair_id FROM pair_sources ps "
                    "JOIN chunks c ON c.id = ps.chunk_id WHERE c.document_id = ? AND c.retired = 0) "
                    "OR (document_id = ? AND kind = 'imported'))",
                    (doc_id, doc_id),
                ).rowcount
                conn.execute("UPDATE chunks SET retired = 1 WHERE document_id = ? AND retired = 0", (doc_id,))
            else:
                doc_id = conn.execute(
                    "INSERT INTO documents(path, format, sha256, size, title, meta, created_at, updated_at) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    (document.path, document.format, document.sha256, document.size, document.title,
                     json.dumps(document.meta), now, now),
                ).lastrowid
            for chunk in chunks:
                conn.execute(
                    'INSERT INTO chunks(document_id, ordinal, text, start, "end", heading_path, concepts) '
                    "VALUES (?,?,?,?,?,?,?)",
                    (doc_id, chunk.ordinal, chunk.text, chunk.start, chunk.end,
                     json.dumps(chunk.heading_path), json.dumps(chunk.concepts)),
                )
            self._pairs.insert(conn, pairs, document_id=doc_id)
            saved = self.get(int(doc_id))
        return saved, stale

    def delete(self, document_id: int) -> None:
        """Remove a document and its chunks; pairs grounded on it are flagged stale."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE pairs SET stale = 1 WHERE id IN (SELECT ps.pair_id FROM pair_sources ps JOIN chunks c "
                "ON c.id = ps.chunk_id WHERE c.document_id = ?)",
                (document_id,),
            )
            conn.execute("UPDATE chunks SET retired = 1 WHERE document_id = ?", (document_id,))
            conn.execute("DELETE FROM documents WHERE id = ? AND NOT EXISTS (SELECT 1 FROM chunks c "
                         "JOIN pair_sources ps ON ps.chunk_id = c.id WHERE c.document_id = ?)",
                         (document_id, document_id))

    def chunks(self, document_id: int | None = None, *, include_retired: bool = False) -> list[Chunk]:
        """Chunks of one document (or all), in document order."""
        clauses, params = [], []
        if document_id is not None:
            clauses.append("document_id = ?")
            params.append(document_id)
        if not include_retired:
            clauses.append("retired = 0")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.db.read(f"SELECT * FROM chunks {where} ORDER BY document_id, ordinal", params)
        return [chunk_from_row(r) for r in rows]

    def chunk_count(self) -> int:
        """How many chunks are live (not retired by a re-import)."""
        return int(self.db.read("SELECT COUNT(*) FROM chunks WHERE retired = 0")[0][0])

    def get_chunks(self, ids: Sequence[int]) -> list[Chunk]:
        """The chunks with these ids, in the order given (missing ids are skipped)."""
        if not ids:
            return []
        found: dict[int, Chunk] = {}
        for start in range(0, len(ids), _ID_BATCH):
            part = list(ids[start : start + _ID_BATCH])
            marks = ",".join("?" * len(part))
            for r in self.db.read(f"SELECT * FROM chunks WHERE id IN ({marks})", part):
                found[r["id"]] = chunk_from_row(r)
        return [found[i] for i in ids if i in found]


__all__ = ["DocumentRepository", "chunk_from_row", "document_from_row"]
