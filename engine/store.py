"""The project store: one folder holding ``pairforge.toml`` and ``pairforge.db``.

SQLite in WAL mode with foreign keys on and a versioned schema. Every write is a
transaction, so anything shown as saved survives ``kill -9``; readers in other
processes keep working while one process writes. User edits to pairs are kept as
revisions grouped in batches, which gives undo and redo across restarts.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import (
    NotFoundError,
    PairForgeError,
    ProjectBusyError,
    ProjectNotFoundError,
    ProjectReadOnlyError,
)
from engine.models import (
    Chunk,
    Document,
    Job,
    JobStatus,
    LogEntry,
    Pair,
    PairKind,
    PairStatus,
    PairWarning,
    Verdict,
    utcnow,
)
from engine.processes import pid_alive
from engine.settings import SETTINGS_FILE, ProjectSettings, SettingsLayers, create_settings_file

DB_FILE = "pairforge.db"

# How long a claimed job stays its claimer's without renewal (see engine/jobs/runner.py).
JOB_LEASE_S = 60.0

# Each entry upgrades the schema by one version; never edit a released entry, append.
MIGRATIONS: list[str] = [
    # 1: the initial schema
    """
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        format TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        meta TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        ordinal INTEGER NOT NULL,
        text TEXT NOT NULL,
        start INTEGER NOT NULL,
        "end" INTEGER NOT NULL,
        heading_path TEXT NOT NULL DEFAULT '[]',
        concepts TEXT NOT NULL DEFAULT '[]',
        retired INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX chunks_document ON chunks(document_id, retired, ordinal);
    CREATE TABLE pairs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        messages TEXT NOT NULL,
        context TEXT,
        mode TEXT NOT NULL,
        kind TEXT NOT NULL,
        sources TEXT NOT NULL DEFAULT '[]',
        status TEXT NOT NULL DEFAULT 'pending',
        origin TEXT NOT NULL DEFAULT '{}',
        warnings TEXT NOT NULL DEFAULT '[]',
        stale INTEGER NOT NULL DEFAULT 0,
        score REAL,
        split TEXT,
        revision INTEGER NOT NULL DEFAULT 0,
        instruction TEXT NOT NULL DEFAULT '',
        response TEXT NOT NULL DEFAULT '',
        content_hash TEXT NOT NULL DEFAULT '',
        document_id INTEGER REFERENCES documents(id) ON DELETE SET NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX pairs_status ON pairs(status);
    CREATE INDEX pairs_kind ON pairs(kind);
    CREATE INDEX pairs_mode ON pairs(mode);
    CREATE INDEX pairs_hash ON pairs(content_hash);
    CREATE INDEX pairs_document ON pairs(document_id);
    CREATE TABLE pair_sources (
        pair_id INTEGER NOT NULL REFERENCES pairs(id) ON DELETE CASCADE,
        chunk_id INTEGER NOT NULL REFERENCES chunks(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        PRIMARY KEY (pair_id, chunk_id)
    );
    CREATE INDEX pair_sources_chunk ON pair_sources(chunk_id);
    CREATE TABLE pair_warnings (
        pair_id INTEGER NOT NULL REFERENCES pairs(id) ON DELETE CASCADE,
        "check" TEXT NOT NULL,
        severity TEXT NOT NULL,
        PRIMARY KEY (pair_id, "check")
    );
    CREATE INDEX pair_warnings_check ON pair_warnings("check");
    CREATE TABLE edit_batches (
        id INTEGER PRIMARY KEY,
        action TEXT NOT NULL,
        created_at TEXT NOT NULL,
        undone INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE pair_revisions (
        id INTEGER PRIMARY KEY,
        batch_id INTEGER NOT NULL REFERENCES edit_batches(id) ON DELETE CASCADE,
        pair_id INTEGER NOT NULL,
        before TEXT,
        after TEXT
    );
    CREATE INDEX pair_revisions_pair ON pair_revisions(pair_id);
    CREATE INDEX pair_revisions_batch ON pair_revisions(batch_id);
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        task TEXT NOT NULL,
        params TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'active',
        created_at TEXT NOT NULL
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        run_id INTEGER REFERENCES runs(id) ON DELETE CASCADE,
        task TEXT NOT NULL DEFAULT 'generate',
        kind TEXT NOT NULL,
        mode TEXT NOT NULL,
        chunk_ids TEXT NOT NULL DEFAULT '[]',
        pair_id INTEGER,
        params TEXT NOT NULL DEFAULT '{}',
        status TEXT NOT NULL DEFAULT 'queued',
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        host TEXT,
        result_pair_ids TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT
    );
    CREATE INDEX jobs_status ON jobs(status, id);
    CREATE INDEX jobs_run ON jobs(run_id, status);
    CREATE TABLE pipeline_log (
        id INTEGER PRIMARY KEY,
        ts TEXT NOT NULL,
        step TEXT NOT NULL,
        action TEXT NOT NULL,
        count INTEGER NOT NULL DEFAULT 0,
        message TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE verdicts (
        pair_id INTEGER PRIMARY KEY REFERENCES pairs(id) ON DELETE CASCADE,
        pair_revision INTEGER NOT NULL,
        model TEXT NOT NULL,
        rubric_version TEXT NOT NULL,
        scores TEXT NOT NULL,
        total REAL NOT NULL,
        reason TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: the content a verdict judged, so status changes alone do not call for a new verdict
    """
    ALTER TABLE verdicts ADD COLUMN content_hash TEXT;
    CREATE INDEX jobs_task_pair ON jobs(task, status, pair_id)
    """,
    # 3: which process runs a job, so a second process never re-queues a live one
    """
    ALTER TABLE jobs ADD COLUMN owner TEXT;
    """,
    # 4: a lease on every running job, renewed by the run that holds it (unix seconds); a job
    # whose lease ran out is queued again whatever pid it recorded, since pids are reused
    """
    ALTER TABLE jobs ADD COLUMN lease_expires_at REAL;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class PairChange:
    """What happened to one pair; ``before``/``after`` are None for an insert/delete."""

    pair_id: int
    before: Pair | None
    after: Pair | None


PairListener = Callable[[Sequence[PairChange]], None]


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


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _translate_sqlite_error(exc: sqlite3.Error, db_path: Path) -> PairForgeError:
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return ProjectBusyError(
            f"The project at {db_path.parent} is busy: another pairforge process is writing to it; "
            "wait for it to finish or stop it, then try again."
        )
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return ProjectReadOnlyError(
            f"The project at {db_path.parent} cannot be written: check the folder's permissions "
            "or open a copy of the project somewhere writable."
        )
    if "disk is full" in text or "disk i/o" in text:
        return PairForgeError(
            f"The disk holding {db_path.parent} is full or failing: free some space and try again; "
            "everything saved before this point is intact."
        )
    if "malformed" in text or "not a database" in text:
        return PairForgeError(
            f"{db_path} is damaged or not a PairForge database: restore it from a backup or "
            "start a new project with `pairforge init`."
        )
    return PairForgeError(f"The project database at {db_path} failed: {exc}.")


def _connect(db_path: Path) -> sqlite3.Connection:
    """A connection as every one of the store's is set up: autocommit, Row results, any thread, patient when busy."""
    conn = sqlite3.connect(db_path, timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


class Store:
    """A PairForge project: settings plus the SQLite database."""

    def __init__(self, root: Path, conn: sqlite3.Connection, settings: SettingsLayers) -> None:
        self.root = root
        self.db_path = root / DB_FILE
        self._settings = settings
        self._conn = conn
        self._lock = threading.RLock()
        self._listeners: list[PairListener] = []
        self._in_tx = False
        # Changes made inside a transaction are announced only once it commits.
        self._pending_changes: list[PairChange] = []
        self._tx_thread: int | None = None
        # Idle read-only connections. Reads outside a transaction take one, so a long read on a
        # worker thread never waits for, or makes wait, a read on another thread (WAL readers
        # run side by side); there are only ever as many as reads running at once.
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def init(cls, root: str | Path, name: str | None = None) -> Store:
        """Create a project in ``root`` (made if missing) or open the one there; returns it."""
        root = Path(root).expanduser().resolve()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ProjectReadOnlyError(
                f"Cannot create the project folder {root}: {exc.strerror}; choose a writable location."
            ) from exc
        if not (root / SETTINGS_FILE).exists():
            try:
                create_settings_file(root, name or root.name or "pairforge-project")
            except PairForgeError as exc:
                raise ProjectReadOnlyError(
                    f"Cannot write {root / SETTINGS_FILE}: the folder is not writable; "
                    "check its permissions or choose another location."
                ) from exc
        return cls.open(root)

    @classmethod
    def open(cls, root: str | Path, *, create: bool = False) -> Store:
        """Open the project in ``root``; raises ProjectNotFoundError unless ``create``."""
        root = Path(root).expanduser().resolve()
        if not (root / SETTINGS_FILE).exists() and not (root / DB_FILE).exists():
            if create:
                return cls.init(root)
            raise ProjectNotFoundError(
                f"No PairForge project in {root}: run `pairforge init {root}` or pass --project PATH."
            )
        settings = SettingsLayers.load(root)
        db_path = root / DB_FILE
        try:
            conn = _connect(db_path)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise _translate_sqlite_error(exc, db_path) from exc
        store = cls(root, conn, settings)
        if str(mode).lower() != "wal":
            # A read-only folder cannot hold the WAL files; reads still work.
            store._read_only = True
        store._migrate()
        return store

    _read_only = False

    def close(self) -> None:
        """Close the database connections.

        Idle readers close now; one in use by another thread closes when that read ends
        (closing a connection under a running query would crash the process).
        """
        with self._lock, self._readers_lock:
            self._closed = True
            for reader in self._readers:
                reader.close()
            self._readers.clear()
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def settings(self) -> ProjectSettings:
        """The effective settings (read-only): ``pairforge.toml`` with the environment and this run's flags on top."""
        return self._settings.effective

    @property
    def file_settings(self) -> ProjectSettings:
        """The file layer: ``pairforge.toml`` alone, as the person wrote and changed it."""
        return self._settings.file

    @property
    def settings_layers(self) -> SettingsLayers:
        """Both layers, and where each overridden value comes from."""
        return self._settings

    def change_settings(self, changes: Mapping[str, Any]) -> ProjectSettings:
        """Save a change the person made on purpose to ``pairforge.toml``; returns the new effective settings.

        ``changes`` is ``{section: {field: value}}`` (None empties a value). Only those values are
        written; the environment and flags stay out of the file. Raises ConfigError on a bad value.
        """
        self._settings = self._settings.changed(changes)
        return self._settings.effective

    def override_settings(self, flags: Mapping[str, Any]) -> ProjectSettings:
        """Put one-off values (command-line flags) on top for this run only; returns the new effective settings."""
        self._settings = self._settings.with_flags(flags)
        return self._settings.effective

    def reload_settings(self) -> ProjectSettings:
        """Re-read ``pairforge.toml`` (keeping this run's environment and flags); returns the new effective settings."""
        self._settings = SettingsLayers.load(self.root, flags=self._settings.flags)
        return self._settings.effective

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.schema_version
        if current > SCHEMA_VERSION:
            raise PairForgeError(
                f"{self.db_path} was written by a newer PairForge (schema {current}, this one "
                f"knows {SCHEMA_VERSION}): upgrade pairforge to open it."
            )
        for version in range(current, SCHEMA_VERSION):
            with self.transaction() as conn:
                for statement in _split_sql(MIGRATIONS[version]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE); nested calls join the outer one."""
        with self._lock:
            if self._in_tx:
                yield self._conn
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _translate_sqlite_error(exc, self.db_path) from exc
            self._in_tx = True
            self._tx_thread = threading.get_ident()
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise _translate_sqlite_error(exc, self.db_path) from exc
            except BaseException:
                self._rollback()
                raise
            finally:
                self._in_tx = False
            committed, self._pending_changes = self._pending_changes, []
            self._notify(committed)

    def _rollback(self) -> None:
        # Nothing of a rolled-back transaction is announced.
        self._pending_changes = []
        with suppress(sqlite3.Error):
            self._conn.execute("ROLLBACK")

    def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = (), *, plain: bool = False) -> list[Any]:
        """Every row of a query; ``plain`` gives tuples instead of Rows (cheaper for long id lists)."""
        if self._in_tx and self._tx_thread == threading.get_ident():
            # Inside this thread's own transaction: read its uncommitted writes.
            with self._lock:
                return self._fetch(self._conn, sql, params, plain)
        reader = self._take_reader()
        try:
            return self._fetch(reader, sql, params, plain)
        finally:
            self._give_back_reader(reader)

    def _fetch(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any] | dict[str, Any], plain: bool) -> list[Any]:
        try:
            cursor = conn.cursor()
            if plain:
                cursor.row_factory = None
            return cursor.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _translate_sqlite_error(exc, self.db_path) from exc

    def _take_reader(self) -> sqlite3.Connection:
        with self._readers_lock:
            if self._closed:
                raise PairForgeError(f"The project database at {self.db_path} is closed; reopen the project.")
            if self._readers:
                return self._readers.pop()
        try:
            reader = _connect(self.db_path)
            reader.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise _translate_sqlite_error(exc, self.db_path) from exc
        return reader

    def _give_back_reader(self, reader: sqlite3.Connection) -> None:
        with self._readers_lock:
            if self._closed:
                reader.close()
            else:
                self._readers.append(reader)

    # ------------------------------------------------------------------ listeners

    def subscribe(self, listener: PairListener) -> Callable[[], None]:
        """Call ``listener`` after every committed pair change; returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _notify(self, changes: Sequence[PairChange]) -> None:
        if not changes:
            return
        if self._in_tx and self._tx_thread == threading.get_ident():
            self._pending_changes.extend(changes)
            return
        for listener in list(self._listeners):
            listener(changes)

    # ------------------------------------------------------------------ meta and log

    def get_meta(self, key: str, default: Any = None) -> Any:
        """A JSON value stored under ``key``."""
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key``."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    def log(
        self,
        step: str,
        action: str,
        count: int = 0,
        message: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Record one pipeline decision (imported N, skipped M because ...)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO pipeline_log(ts, step, action, count, message, detail) VALUES (?,?,?,?,?,?)",
                (_now(), step, action, count, message, json.dumps(detail or {})),
            )

    def log_tail(self, limit: int = 20, step: str | None = None) -> list[LogEntry]:
        """The newest ``limit`` log entries, oldest first."""
        where, params = ("WHERE step = ?", [step]) if step else ("", [])
        rows = self._read(
            f"SELECT * FROM pipeline_log {where} ORDER BY id DESC LIMIT ?", [*params, limit]
        )
        return [
            LogEntry(
                id=r["id"], ts=_dt(r["ts"]) or utcnow(), step=r["step"], action=r["action"],
                count=r["count"], message=r["message"], detail=json.loads(r["detail"]),
            )
            for r in reversed(rows)
        ]

    def log_summary(self) -> list[dict[str, Any]]:
        """Totals per (step, action) over the whole log, for reports and the dataset card."""
        rows = self._read(
            "SELECT step, action, SUM(count) AS total, COUNT(*) AS entries FROM pipeline_log "
            "GROUP BY step, action ORDER BY MIN(id)"
        )
        return [dict(r) for r in rows]

    # ------------------------------------------------------------------ documents and chunks

    def _doc_from_row(self, r: sqlite3.Row) -> Document:
        keys = r.keys()
        return Document(
            id=r["id"], path=r["path"], format=r["format"], sha256=r["sha256"], size=r["size"],
            title=r["title"], meta=json.loads(r["meta"]),
            created_at=_dt(r["created_at"]) or utcnow(), updated_at=_dt(r["updated_at"]) or utcnow(),
            n_chunks=r["n_chunks"] if "n_chunks" in keys else 0,
        )

    @staticmethod
    def _chunk_from_row(r: sqlite3.Row) -> Chunk:
        return Chunk(
            id=r["id"], document_id=r["document_id"], ordinal=r["ordinal"], text=r["text"],
            start=r["start"], end=r["end"], heading_path=json.loads(r["heading_path"]),
            concepts=json.loads(r["concepts"]), retired=bool(r["retired"]),
        )

    _DOC_SELECT = (
        "SELECT d.*, (SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id AND c.retired = 0) "
        "AS n_chunks FROM documents d"
    )

    def get_document(self, document_id: int) -> Document:
        """The document with this id; raises NotFoundError."""
        rows = self._read(f"{self._DOC_SELECT} WHERE d.id = ?", (document_id,))
        if not rows:
            raise NotFoundError(f"No document with id {document_id}: list them with `pairforge docs`.")
        return self._doc_from_row(rows[0])

    def find_document(self, path: str) -> Document | None:
        """The document imported from ``path`` (as stored), or None."""
        rows = self._read(f"{self._DOC_SELECT} WHERE d.path = ?", (path,))
        return self._doc_from_row(rows[0]) if rows else None

    def list_documents(self) -> list[Document]:
        """Every document, in import order."""
        return [self._doc_from_row(r) for r in self._read(f"{self._DOC_SELECT} ORDER BY d.id")]

    def document_pair_counts(self) -> dict[int, int]:
        """How many pairs are grounded on (or imported from) each document."""
        rows = self._read(
            "SELECT document_id, COUNT(*) AS n FROM ("
            " SELECT DISTINCT ps.pair_id, c.document_id FROM pair_sources ps JOIN chunks c ON c.id = ps.chunk_id"
            " UNION SELECT id, document_id FROM pairs WHERE document_id IS NOT NULL"
            ") GROUP BY document_id"
        )
        return {r["document_id"]: r["n"] for r in rows}

    def save_document(
        self,
        document: Document,
        chunks: Iterable[Chunk],
        *,
        pairs: Iterable[Pair] = (),
    ) -> tuple[Document, int]:
        """Insert a document with its chunks (and imported pairs) in one transaction.

        If a document with the same path exists, its chunks are retired and every pair
        grounded on them is flagged stale. Returns the saved document and the number of
        pairs flagged stale.
        """
        now = _now()
        stale = 0
        with self.transaction() as conn:
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
            added = self._insert_pairs(conn, pairs, document_id=doc_id)
        saved = self.get_document(int(doc_id))
        if added:
            self._notify([PairChange(p.id or 0, None, p) for p in added])
        return saved, stale

    def delete_document(self, document_id: int) -> None:
        """Remove a document and its chunks; pairs grounded on it are flagged stale."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE pairs SET stale = 1 WHERE id IN (SELECT ps.pair_id FROM pair_sources ps JOIN chunks c "
                "ON c.id = ps.chunk_id WHERE c.document_id = ?)",
                (document_id,),
            )
            conn.execute("UPDATE chunks SET retired = 1 WHERE document_id = ?", (document_id,))
            conn.execute("DELETE FROM documents WHERE id = ? AND NOT EXISTS (SELECT 1 FROM chunks c "
                         "JOIN pair_sources ps ON ps.chunk_id = c.id WHERE c.document_id = ?)",
                         (document_id, document_id))

    def list_chunks(self, document_id: int | None = None, *, include_retired: bool = False) -> list[Chunk]:
        """Chunks of one document (or all), in document order."""
        clauses, params = [], []
        if document_id is not None:
            clauses.append("document_id = ?")
            params.append(document_id)
        if not include_retired:
            clauses.append("retired = 0")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(f"SELECT * FROM chunks {where} ORDER BY document_id, ordinal", params)
        return [self._chunk_from_row(r) for r in rows]

    def get_chunks(self, ids: Sequence[int]) -> list[Chunk]:
        """The chunks with these ids, in the order given (missing ids are skipped)."""
        if not ids:
            return []
        found: dict[int, Chunk] = {}
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            marks = ",".join("?" * len(part))
            for r in self._read(f"SELECT * FROM chunks WHERE id IN ({marks})", part):
                found[r["id"]] = self._chunk_from_row(r)
        return [found[i] for i in ids if i in found]

    # ------------------------------------------------------------------ pairs

    @staticmethod
    def _pair_row(pair: Pair) -> dict[str, Any]:
        return {
            "messages": json.dumps([m.model_dump(mode="json") for m in pair.messages], ensure_ascii=False),
            "context": pair.context,
            "mode": pair.mode,
            "kind": str(pair.kind),
            "sources": json.dumps(pair.sources),
            "status": str(pair.status),
            "origin": pair.origin.model_dump_json(exclude_none=True),
            "warnings": json.dumps([w.model_dump(mode="json") for w in pair.warnings], ensure_ascii=False),
            "stale": int(pair.stale),
            "score": pair.score,
            "split": pair.split,
            "revision": pair.revision,
            "instruction": pair.instruction,
            "response": pair.response,
            "content_hash": pair.content_hash(),
        }

    @staticmethod
    def _pair_from_row(r: sqlite3.Row) -> Pair:
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

    def _write_pair_links(self, conn: sqlite3.Connection, pair: Pair) -> None:
        assert pair.id is not None
        conn.execute("DELETE FROM pair_sources WHERE pair_id = ?", (pair.id,))
        conn.executemany(
            "INSERT OR IGNORE INTO pair_sources(pair_id, chunk_id, position) "
            "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM chunks WHERE id = ?)",
            [(pair.id, chunk_id, pos, chunk_id) for pos, chunk_id in enumerate(pair.sources)],
        )
        conn.execute("DELETE FROM pair_warnings WHERE pair_id = ?", (pair.id,))
        conn.executemany(
            'INSERT OR REPLACE INTO pair_warnings(pair_id, "check", severity) VALUES (?,?,?)',
            [(pair.id, w.check, str(w.severity)) for w in pair.warnings],
        )

    def _insert_pairs(
        self, conn: sqlite3.Connection, pairs: Iterable[Pair], *, document_id: int | None = None
    ) -> list[Pair]:
        added: list[Pair] = []
        now = _now()
        for pair in pairs:
            row = self._pair_row(pair)
            row["created_at"] = row["updated_at"] = now
            row["document_id"] = document_id
            if pair.id is not None:
                row["id"] = pair.id
            cols = ",".join(f'"{k}"' for k in row)
            marks = ",".join(f":{k}" for k in row)
            pair_id = conn.execute(f"INSERT INTO pairs({cols}) VALUES ({marks})", row).lastrowid
            saved = pair.model_copy(update={"id": pair_id})
            self._write_pair_links(conn, saved)
            added.append(saved)
        return added

    def add_pairs(self, pairs: Iterable[Pair], *, document_id: int | None = None) -> list[Pair]:
        """Insert new pairs in one transaction; returns them with their ids."""
        with self.transaction() as conn:
            added = self._insert_pairs(conn, pairs, document_id=document_id)
        self._notify([PairChange(p.id or 0, None, p) for p in added])
        return added

    _PAIR_COLUMNS = (
        "id, messages, context, mode, kind, sources, status, origin, warnings, stale, score, split, "
        "revision, created_at, updated_at"
    )

    def get_pair(self, pair_id: int) -> Pair:
        """The pair with this id; raises NotFoundError."""
        rows = self._read(f"SELECT {self._PAIR_COLUMNS} FROM pairs WHERE id = ?", (pair_id,))
        if not rows:
            raise NotFoundError(f"No pair with id {pair_id}: it may have been deleted.")
        return self._pair_from_row(rows[0])

    def get_pairs(self, ids: Sequence[int]) -> list[Pair]:
        """The pairs with these ids, in the order given (missing ids are skipped)."""
        found: dict[int, Pair] = {}
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            marks = ",".join("?" * len(part))
            for r in self._read(f"SELECT {self._PAIR_COLUMNS} FROM pairs WHERE id IN ({marks})", part):
                found[r["id"]] = self._pair_from_row(r)
        return [found[i] for i in ids if i in found]

    @staticmethod
    def _filter_sql(flt: PairFilter | None) -> tuple[str, list[Any]]:
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

    def pair_ids(self, flt: PairFilter | None = None) -> list[int]:
        """Ids of the matching pairs in id order: the cheap index a virtual list pages over."""
        where, params = self._filter_sql(flt)
        # No ORDER BY: SQLite then reads a narrow covering index instead of every pair's row,
        # and sorting ids that arrive nearly in order costs next to nothing.
        ids = [r[0] for r in self._read(f"SELECT id FROM pairs {where}", params, plain=True)]
        ids.sort()
        return ids

    def count_pairs(self, flt: PairFilter | None = None) -> int:
        """How many pairs match."""
        where, params = self._filter_sql(flt)
        return int(self._read(f"SELECT COUNT(*) FROM pairs {where}", params)[0][0])

    def iter_pairs(self, flt: PairFilter | None = None, *, batch: int = 2000) -> Iterator[Pair]:
        """Every matching pair, in id order, fetched in batches so memory stays bounded."""
        where, params = self._filter_sql(flt)
        last = 0
        joiner = "AND" if where else "WHERE"
        while True:
            rows = self._read(
                f"SELECT {self._PAIR_COLUMNS} FROM pairs {where} {joiner} id > ? ORDER BY id LIMIT ?",
                [*params, last, batch],
            )
            if not rows:
                return
            for r in rows:
                yield self._pair_from_row(r)
            last = rows[-1]["id"]

    def iter_pair_rows(self, flt: PairFilter | None = None, *, batch: int = 5000) -> Iterator[dict[str, Any]]:
        """Every matching pair as a plain dict of its stored columns, in id order, fetched in batches.

        The bulk read for exports: no model validation, and the JSON columns (messages, sources,
        origin, warnings) stay as their stored text for the caller to decode as it needs.
        """
        where, params = self._filter_sql(flt)
        last = 0
        joiner = "AND" if where else "WHERE"
        while True:
            rows = self._read(
                "SELECT id, messages, context, mode, kind, sources, status, origin, warnings, score, split "
                f"FROM pairs {where} {joiner} id > ? ORDER BY id LIMIT ?",
                [*params, last, batch],
            )
            if not rows:
                return
            for r in rows:
                yield dict(r)
            last = rows[-1]["id"]

    def pair_rows(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """Light rows (id, status, kind, mode, instruction, warning count, stale, score) for list views."""
        if not ids:
            return []
        marks = ",".join(str(int(i)) for i in ids)
        rows = self._read(
            "SELECT id, status, kind, mode, substr(instruction, 1, 300) AS instruction, "
            "json_array_length(warnings) AS n_warnings, stale, score, split FROM pairs "
            f"WHERE id IN ({marks})"
        )
        by_id = {r["id"]: dict(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def pair_counts(self, by: str) -> dict[str, int]:
        """Pair counts grouped by ``status``, ``kind``, ``mode`` or ``split``."""
        if by not in {"status", "kind", "mode", "split"}:
            raise ValueError(f"cannot group pairs by {by!r}")
        rows = self._read(f"SELECT {by} AS k, COUNT(*) AS n FROM pairs GROUP BY {by} ORDER BY n DESC")
        return {str(r["k"]): r["n"] for r in rows}

    def warning_counts(self) -> dict[str, int]:
        """How many pairs carry each warning check id."""
        rows = self._read('SELECT "check" AS c, COUNT(*) AS n FROM pair_warnings GROUP BY "check" ORDER BY n DESC')
        return {r["c"]: r["n"] for r in rows}

    # Derived fields (warnings, score, split) are not user edits: no revision, no undo.

    def set_warnings(
        self, updates: dict[int, list[PairWarning]], *, changes: Sequence[PairChange] | None = None
    ) -> None:
        """Replace the warnings of several pairs (results of quality checks) and notify listeners.

        ``changes`` may carry the before/after pairs the caller already has, to save a re-read.
        """
        if not updates:
            return
        if changes is None:
            befores = self.get_pairs(list(updates))
            changes = [
                PairChange(p.id or 0, p, p.model_copy(update={"warnings": updates[p.id or 0]})) for p in befores
            ]
        with self.transaction() as conn:
            for pair_id, warnings in updates.items():
                conn.execute(
                    "UPDATE pairs SET warnings = ? WHERE id = ?",
                    (json.dumps([w.model_dump(mode="json") for w in warnings], ensure_ascii=False), pair_id),
                )
                conn.execute("DELETE FROM pair_warnings WHERE pair_id = ?", (pair_id,))
                conn.executemany(
                    'INSERT OR REPLACE INTO pair_warnings(pair_id, "check", severity) VALUES (?,?,?)',
                    [(pair_id, w.check, str(w.severity)) for w in warnings],
                )
        self._notify(changes)

    def set_splits(self, assignments: dict[int, str | None]) -> None:
        """Store each pair's split name (train / validation)."""
        with self.transaction() as conn:
            conn.executemany("UPDATE pairs SET split = ? WHERE id = ?", [(s, i) for i, s in assignments.items()])

    def set_scores(self, scores: dict[int, float | None]) -> None:
        """Store each pair's judge score."""
        with self.transaction() as conn:
            conn.executemany("UPDATE pairs SET score = ? WHERE id = ?", [(s, i) for i, s in scores.items()])

    # ------------------------------------------------------------------ user edits with undo

    def _apply_snapshot(self, conn: sqlite3.Connection, pair_id: int, snapshot: str | None) -> None:
        if snapshot is None:
            conn.execute("DELETE FROM pairs WHERE id = ?", (pair_id,))
            return
        pair = Pair.model_validate_json(snapshot)
        row = self._pair_row(pair)
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
        self._write_pair_links(conn, pair.model_copy(update={"id": pair_id}))

    def _record_batch(
        self, action: str, changes: list[tuple[int | None, Pair | None, Pair | None]]
    ) -> list[PairChange]:
        """Apply user changes in one transaction with one undo batch; returns the changes."""
        if not changes:
            return []
        result: list[PairChange] = []
        with self.transaction() as conn:
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
        self._notify(result)
        return result

    def update_pair(self, pair: Pair, *, action: str = "edit") -> Pair:
        """Save a user's edit of a pair (undoable); returns the saved pair."""
        if pair.id is None:
            raise NotFoundError("Cannot update a pair that was never saved: add it first.")
        before = self.get_pair(pair.id)
        changes = self._record_batch(action, [(pair.id, before, pair)])
        after = changes[0].after
        assert after is not None
        return after

    def update_pairs(self, pairs: Sequence[Pair], *, action: str = "edit") -> int:
        """Save edits of several pairs as one undoable step; returns how many."""
        befores = {p.id: p for p in self.get_pairs([p.id for p in pairs if p.id is not None])}
        changes: list[tuple[int | None, Pair | None, Pair | None]] = [
            (p.id, befores[p.id], p) for p in pairs if p.id in befores
        ]
        return len(self._record_batch(action, changes))

    def set_status(self, ids: Sequence[int], status: PairStatus | str) -> int:
        """Accept, reject or reset pairs as one undoable step; returns how many changed."""
        status = PairStatus(status)
        changes: list[tuple[int | None, Pair | None, Pair | None]] = []
        for pair in self.get_pairs(list(ids)):
            if pair.status != status:
                changes.append((pair.id or 0, pair, pair.model_copy(update={"status": status})))
        return len(self._record_batch(f"status:{status}", changes))

    def delete_pairs(self, ids: Sequence[int], *, action: str = "delete") -> int:
        """Delete pairs as one undoable step; returns how many."""
        changes: list[tuple[int | None, Pair | None, Pair | None]] = [
            (p.id or 0, p, None) for p in self.get_pairs(list(ids))
        ]
        return len(self._record_batch(action, changes))

    def add_manual_pair(self, pair: Pair) -> Pair:
        """Add a pair written by a person (undoable); returns it with its id."""
        changes = self._record_batch("add", [(None, None, pair)])
        after = changes[0].after
        assert after is not None
        return after

    def _undo_redo(self, undo: bool) -> tuple[str, list[int]] | None:
        flag, order = (0, "DESC") if undo else (1, "ASC")
        result: list[PairChange] = []
        with self.transaction() as conn:
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
        self._notify(result)
        return row["action"], [c.pair_id for c in result]

    def undo(self) -> tuple[str, list[int]] | None:
        """Revert the last user edit (even one made before a restart); returns (action, pair ids) or None."""
        return self._undo_redo(undo=True)

    def redo(self) -> tuple[str, list[int]] | None:
        """Re-apply the last undone edit; returns (action, pair ids) or None."""
        return self._undo_redo(undo=False)

    def pair_history(self, pair_id: int) -> list[dict[str, Any]]:
        """Every saved revision of a pair, oldest first."""
        rows = self._read(
            "SELECT r.id, b.action, b.created_at, b.undone, r.before, r.after FROM pair_revisions r "
            "JOIN edit_batches b ON b.id = r.batch_id WHERE r.pair_id = ? ORDER BY r.id",
            (pair_id,),
        )
        return [dict(r) for r in rows]

    # ------------------------------------------------------------------ runs and jobs

    @staticmethod
    def _job_from_row(r: sqlite3.Row) -> Job:
        return Job(
            id=r["id"], run_id=r["run_id"], task=r["task"], kind=r["kind"], mode=r["mode"],
            chunk_ids=json.loads(r["chunk_ids"]), pair_id=r["pair_id"], params=json.loads(r["params"]),
            status=r["status"], attempts=r["attempts"], error=r["error"], host=r["host"],
            result_pair_ids=json.loads(r["result_pair_ids"]), created_at=_dt(r["created_at"]) or utcnow(),
            started_at=_dt(r["started_at"]), finished_at=_dt(r["finished_at"]),
        )

    def create_run(self, task: str, params: dict[str, Any], jobs: Iterable[Job]) -> tuple[int, int]:
        """Persist a run and its queued jobs in one transaction; returns (run id, job count)."""
        now = _now()
        with self.transaction() as conn:
            run_id = conn.execute(
                "INSERT INTO runs(task, params, created_at) VALUES (?,?,?)", (task, json.dumps(params), now)
            ).lastrowid
            n = 0
            for job in jobs:
                conn.execute(
                    "INSERT INTO jobs(run_id, task, kind, mode, chunk_ids, pair_id, params, created_at) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    (run_id, job.task, str(job.kind), job.mode, json.dumps(job.chunk_ids), job.pair_id,
                     json.dumps(job.params), now),
                )
                n += 1
        return int(run_id or 0), n

    def list_runs(self) -> list[dict[str, Any]]:
        """Every run with its job counts per status."""
        rows = self._read(
            "SELECT r.id, r.task, r.params, r.status, r.created_at, "
            "SUM(j.status='queued') AS queued, SUM(j.status='running') AS running, "
            "SUM(j.status='done') AS done, SUM(j.status='failed') AS failed, "
            "SUM(j.status='cancelled') AS cancelled, COUNT(j.id) AS total "
            "FROM runs r LEFT JOIN jobs j ON j.run_id = r.id GROUP BY r.id ORDER BY r.id"
        )
        return [{**dict(r), "params": json.loads(r["params"])} for r in rows]

    def requeue_interrupted(self) -> int:
        """Put jobs left 'running' by a run that stopped back in the queue; returns how many.

        A running job is queued again when its lease ran out (the run holding it stopped
        renewing it), or at once when the process that claimed it is known to be gone (its
        pid on this machine no longer exists). A live pid alone never keeps a job: after a
        crash the pid may belong to an unrelated process. Jobs of a run that still renews
        its leases (another process, or another run in this one) are left alone.
        """
        now = time.time()
        with self.transaction() as conn:
            rows = conn.execute("SELECT id, owner, lease_expires_at FROM jobs WHERE status = 'running'").fetchall()
            stale = [
                r["id"] for r in rows
                if r["lease_expires_at"] is None or r["lease_expires_at"] <= now or _owner_gone(r["owner"])
            ]
            conn.executemany(
                "UPDATE jobs SET status = 'queued', host = NULL, owner = NULL, lease_expires_at = NULL "
                "WHERE id = ? AND status = 'running'",
                [(i,) for i in stale],
            )
            n = len(stale)
        if n:
            self.log("queue", "requeued", n, f"{n} job(s) interrupted by a stopped process were queued again")
        return n

    def claim_job(
        self, host: str | None, *, run_id: int | None = None, task: str | None = None, lease_s: float = JOB_LEASE_S
    ) -> Job | None:
        """Atomically take the next queued job and mark it running under a lease of ``lease_s``; None when none is queued."""
        clauses = ["status = 'queued'"]
        params: list[Any] = []
        if run_id is not None:
            clauses.append("run_id = ?")
            params.append(run_id)
        if task is not None:
            clauses.append("task = ?")
            params.append(task)
        with self.transaction() as conn:
            row = conn.execute(
                "UPDATE jobs SET status = 'running', host = ?, owner = ?, lease_expires_at = ?, "
                "attempts = attempts + 1, started_at = ? "
                f"WHERE id = (SELECT id FROM jobs WHERE {' AND '.join(clauses)} ORDER BY id LIMIT 1) "
                "RETURNING *",
                [host, _owner(), time.time() + lease_s, _now(), *params],
            ).fetchone()
        return self._job_from_row(row) if row else None

    def renew_leases(self, job_ids: Sequence[int], lease_s: float = JOB_LEASE_S) -> int:
        """Extend the lease of this process's running jobs among ``job_ids`` by ``lease_s``; returns how many."""
        if not job_ids:
            return 0
        with self.transaction() as conn:
            return conn.execute(
                f"UPDATE jobs SET lease_expires_at = ? WHERE id IN ({','.join('?' * len(job_ids))}) "
                "AND status = 'running' AND owner = ?",
                [time.time() + lease_s, *job_ids, _owner()],
            ).rowcount

    def complete_job(self, job_id: int, pairs: Sequence[Pair], *, queued: bool = False) -> list[Pair]:
        """Store a job's pairs and mark it done in one transaction (so no pair is lost or doubled).

        Only a running job completes, or with ``queued`` one still waiting in the queue
        (the pre-flight probe answers jobs before the queue claims them).
        """
        accepted = ("running", "queued") if queued else ("running",)
        with self.transaction() as conn:
            status = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if status is None or status["status"] not in accepted:
                # Cancelled or finished elsewhere meanwhile: keep nothing twice.
                return []
            added = self._insert_pairs(conn, pairs)
            conn.execute(
                "UPDATE jobs SET status = 'done', error = NULL, finished_at = ?, result_pair_ids = ? WHERE id = ?",
                (_now(), json.dumps([p.id for p in added]), job_id),
            )
        self._notify([PairChange(p.id or 0, None, p) for p in added])
        return added

    def fail_job(self, job_id: int, error: str, *, retry: bool) -> None:
        """Record a job's failure; ``retry`` puts it back in the queue, else it is failed for good."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = ?, error = ?, finished_at = ?, host = NULL WHERE id = ? AND status = 'running'",
                ("queued" if retry else "failed", error, None if retry else _now(), job_id),
            )

    def release_job(self, job_id: int) -> None:
        """Put a running job back in the queue untouched (pause), without counting an attempt."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'queued', host = NULL, attempts = MAX(attempts - 1, 0) "
                "WHERE id = ? AND status = 'running'",
                (job_id,),
            )

    def cancel_jobs(self, run_id: int | None = None) -> int:
        """Cancel queued jobs (of one run, or all); returns how many."""
        where, params = ("AND run_id = ?", [run_id]) if run_id is not None else ("", [])
        with self.transaction() as conn:
            return conn.execute(
                f"UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE status = 'queued' {where}",
                [_now(), *params],
            ).rowcount

    def retry_failed(self, run_id: int | None = None) -> int:
        """Queue failed jobs again with a fresh attempt count; returns how many."""
        where, params = ("AND run_id = ?", [run_id]) if run_id is not None else ("", [])
        with self.transaction() as conn:
            return conn.execute(
                f"UPDATE jobs SET status = 'queued', attempts = 0, error = NULL WHERE status = 'failed' {where}",
                params,
            ).rowcount

    def list_jobs(self, *, status: str | None = None, run_id: int | None = None, limit: int | None = None) -> list[Job]:
        """Jobs, oldest first, optionally by status and run."""
        clauses: list[str] = []
        params: list[str | int] = []
        if status:
            clauses.append("status = ?")
            params.append(status)
        if run_id is not None:
            clauses.append("run_id = ?")
            params.append(run_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        tail = f"LIMIT {int(limit)}" if limit else ""
        return [self._job_from_row(r) for r in self._read(f"SELECT * FROM jobs {where} ORDER BY id {tail}", params)]

    def job_ids(self) -> list[int]:
        """Every job's id, oldest first: the cheap index a list view keeps."""
        return [r["id"] for r in self._read("SELECT id FROM jobs ORDER BY id")]

    def job_rows(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """Light rows (id, status, kind, mode, host, error) of the jobs ``ids``, in that order."""
        if not ids:
            return []
        marks = ",".join(str(int(i)) for i in ids)
        rows = self._read(
            "SELECT id, status, kind, mode, host, substr(error, 1, 200) AS error FROM jobs "
            f"WHERE id IN ({marks})"
        )
        by_id = {r["id"]: dict(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def job_counts(self, run_id: int | None = None, *, task: str | None = None) -> dict[str, int]:
        """Job counts by status (of one run and of one task, when given)."""
        clauses: list[str] = []
        params: list[Any] = []
        if run_id is not None:
            clauses.append("run_id = ?")
            params.append(run_id)
        if task is not None:
            clauses.append("task = ?")
            params.append(task)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(f"SELECT status, COUNT(*) AS n FROM jobs {where} GROUP BY status", params)
        counts = {s.value: 0 for s in JobStatus}
        counts.update({r["status"]: r["n"] for r in rows})
        return counts

    # ------------------------------------------------------------------ verdicts

    def save_verdict(self, verdict: Verdict) -> None:
        """Store (or replace) a pair's judge verdict and its score."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO verdicts(pair_id, pair_revision, model, rubric_version, scores, total, reason, created_at) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (verdict.pair_id, verdict.pair_revision, verdict.model, verdict.rubric_version,
                 json.dumps(verdict.scores), verdict.total, verdict.reason, verdict.created_at.isoformat()),
            )
            conn.execute("UPDATE pairs SET score = ? WHERE id = ?", (verdict.total, verdict.pair_id))

    def get_verdicts(self, ids: Sequence[int] | None = None) -> dict[int, Verdict]:
        """Stored verdicts by pair id."""
        sql = "SELECT * FROM verdicts"
        if ids is not None:
            sql += f" WHERE pair_id IN ({','.join(str(int(i)) for i in ids) or '-1'})"
        return {
            r["pair_id"]: Verdict(
                pair_id=r["pair_id"], pair_revision=r["pair_revision"], model=r["model"],
                rubric_version=r["rubric_version"], scores=json.loads(r["scores"]), total=r["total"],
                reason=r["reason"], created_at=_dt(r["created_at"]) or utcnow(),
            )
            for r in self._read(sql)
        }

    def judge_candidates(self, *, rubric_version: str, only_changed: bool = True) -> list[tuple[int, str, str]]:
        """Pairs a judge run should score, as (id, kind, mode), skipping those already queued for judging.

        With ``only_changed`` a pair is picked when it has no verdict, its content changed since
        the verdict (status changes do not count), or the verdict used another rubric version.
        """
        changed = (
            "AND (v.pair_id IS NULL OR v.rubric_version != :rubric OR "
            "(v.content_hash IS NULL AND v.pair_revision != p.revision) OR "
            "(v.content_hash IS NOT NULL AND v.content_hash != p.content_hash))"
            if only_changed
            else ""
        )
        rows = self._read(
            "SELECT p.id, p.kind, p.mode FROM pairs p LEFT JOIN verdicts v ON v.pair_id = p.id "
            "WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.task = 'judge' AND j.pair_id = p.id "
            f"AND j.status IN ('queued', 'running')) {changed} ORDER BY p.id",
            {"rubric": rubric_version},
        )
        return [(r["id"], r["kind"], r["mode"]) for r in rows]

    def complete_judge_job(
        self,
        job_id: int,
        verdict: Verdict,
        *,
        content_hash: str,
        warning_check: str,
        warning: PairWarning | None,
    ) -> bool:
        """Store a verdict, the pair's score and its ``warning_check`` warning, and mark the job done.

        One transaction, so a verdict is never stored for a job still shown as running. The
        pair's other warnings are kept. If the pair's content changed while it was judged, the
        verdict is kept for the judged content but the score and warning are left alone (the
        next judge run scores the new content). Returns False when the job was no longer
        running (cancelled meanwhile) and nothing was stored.
        """
        change: PairChange | None = None
        with self.transaction() as conn:
            status = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if status is None or status["status"] != "running":
                return False
            row = conn.execute(
                f"SELECT {self._PAIR_COLUMNS}, content_hash FROM pairs WHERE id = ?", (verdict.pair_id,)
            ).fetchone()
            if row is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO verdicts(pair_id, pair_revision, model, rubric_version, scores, "
                    "total, reason, created_at, content_hash) VALUES (?,?,?,?,?,?,?,?,?)",
                    (verdict.pair_id, verdict.pair_revision, verdict.model, verdict.rubric_version,
                     json.dumps(verdict.scores), verdict.total, verdict.reason,
                     verdict.created_at.isoformat(), content_hash),
                )
                if row["content_hash"] == content_hash:
                    kept = [w for w in json.loads(row["warnings"]) if w.get("check") != warning_check]
                    if warning is not None:
                        kept.append(warning.model_dump(mode="json"))
                    conn.execute(
                        "UPDATE pairs SET score = ?, warnings = ? WHERE id = ?",
                        (verdict.total, json.dumps(kept, ensure_ascii=False), verdict.pair_id),
                    )
                    conn.execute(
                        'DELETE FROM pair_warnings WHERE pair_id = ? AND "check" = ?', (verdict.pair_id, warning_check)
                    )
                    if warning is not None:
                        conn.execute(
                            'INSERT OR REPLACE INTO pair_warnings(pair_id, "check", severity) VALUES (?,?,?)',
                            (verdict.pair_id, warning.check, str(warning.severity)),
                        )
                    found = conn.execute(
                        f"SELECT {self._PAIR_COLUMNS} FROM pairs WHERE id = ?", (verdict.pair_id,)
                    ).fetchone()
                    change = PairChange(verdict.pair_id, self._pair_from_row(row), self._pair_from_row(found))
            conn.execute(
                "UPDATE jobs SET status = 'done', error = NULL, finished_at = ? WHERE id = ?", (_now(), job_id)
            )
        if change is not None:
            self._notify([change])
        return True

    # ------------------------------------------------------------------ summary

    def summary(self) -> dict[str, Any]:
        """Counts a person or a script wants at a glance."""
        docs = self._read("SELECT format, COUNT(*) AS n FROM documents GROUP BY format ORDER BY n DESC")
        n_chunks = self._read("SELECT COUNT(*) FROM chunks WHERE retired = 0")[0][0]
        stale = self._read("SELECT COUNT(*) FROM pairs WHERE stale = 1")[0][0]
        return {
            "project": str(self.root),
            "name": self.settings.name,
            "schema_version": self.schema_version,
            "documents": sum(r["n"] for r in docs),
            "documents_by_format": {r["format"]: r["n"] for r in docs},
            "chunks": n_chunks,
            "pairs": self.count_pairs(),
            "pairs_by_status": self.pair_counts("status"),
            "pairs_by_kind": self.pair_counts("kind"),
            "pairs_by_mode": self.pair_counts("mode"),
            "stale_pairs": stale,
            "warnings": self.warning_counts(),
            "jobs": self.job_counts(),
        }


def _owner() -> str:
    """This process, as recorded on the jobs it runs: host name and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_gone(owner: str | None) -> bool:
    """Whether the process that claimed a job is known to have exited (its pid on this machine is free).

    Only a negative answer is sure: a pid that exists may have been reused by another process.
    """
    if not owner or ":" not in owner:
        return False
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    return pid != os.getpid() and not pid_alive(pid)


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (none of ours has a ';' inside a literal)."""
    return [s.strip() for s in script.split(";") if s.strip()]


__all__ = [
    "DB_FILE",
    "SCHEMA_VERSION",
    "PairChange",
    "PairFilter",
    "PairKind",
    "Store",
]
