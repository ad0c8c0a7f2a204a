"""The database core: one writer connection, pooled readers, nested transactions, listeners.

SQLite in WAL mode with foreign keys on. Writes go through :meth:`Database.transaction`:
the outermost call is ``BEGIN IMMEDIATE`` … ``COMMIT``; a nested call is a savepoint, so an
inner block that raises rolls back only its own writes (as sqlite-utils' ``Database.atomic``).
Changes announced inside a transaction reach the listeners once, after the outermost commit,
and not at all when their part is rolled back.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import PairForgeError, ProjectBusyError, ProjectReadOnlyError
from engine.store.changes import PairChange, PairListener

Params = Sequence[Any] | dict[str, Any]


def translate_sqlite_error(exc: sqlite3.Error, db_path: Path) -> PairForgeError:
    """The one sentence a person can act on for a SQLite failure on ``db_path``."""
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


def connect(db_path: Path) -> sqlite3.Connection:
    """A connection as every one of the store's is set up: autocommit, Row results, any thread, patient when busy."""
    conn = sqlite3.connect(db_path, timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


@dataclass(frozen=True)
class Written:
    """What one write statement did: the rows it returned (RETURNING) and how many rows it changed."""

    rows: list[Any]
    rowcount: int


class Database:
    """One SQLite file: the writer connection (``conn``), idle readers, transactions and listeners."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, read_only: bool = False) -> None:
        self.path = path
        self.conn = conn
        # A folder that cannot hold the WAL files still reads; writes then fail with one sentence.
        self.read_only = read_only
        self._lock = threading.RLock()
        # How many transaction blocks the thread holding ``_lock`` is inside (0: none).
        self._depth = 0
        self._tx_thread: int | None = None
        self._listeners: list[PairListener] = []
        # Changes announced inside the transaction, delivered once the outermost block commits.
        self._pending: list[PairChange] = []
        # Idle read-only connections. Reads outside a transaction take one, so a long read on a
        # worker thread never waits for, or makes wait, a read on another thread (WAL readers
        # run side by side); there are only ever as many as reads running at once.
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, path: Path) -> Database:
        """Open (or create) the database file at ``path`` in WAL mode; raises PairForgeError."""
        try:
            conn = connect(path)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, path) from exc
        return cls(path, conn, read_only=str(mode).lower() != "wal")

    def close(self) -> None:
        """Close the connections.

        Idle readers close now; one in use by another thread closes when that read ends
        (closing a connection under a running query would crash the process).
        """
        with self._lock, self._readers_lock:
            self._closed = True
            for reader in self._readers:
                reader.close()
            self._readers.clear()
            self.conn.close()

    @property
    def schema_version(self) -> int:
        """How many migrations the file has had (``PRAGMA user_version``)."""
        with self._lock:
            return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    # ------------------------------------------------------------------ transactions

    @property
    def in_transaction(self) -> bool:
        """Whether the calling thread is inside a transaction block."""
        return self._depth > 0 and self._tx_thread == threading.get_ident()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; yields the writer connection.

        The outermost block is ``BEGIN IMMEDIATE`` and commits when it ends; a nested block is a
        savepoint, released when it ends and rolled back alone when it raises. SQLite errors
        become PairForgeError. Other threads wait for the whole transaction.
        """
        with self._lock:
            if self._depth:
                with self._savepoint() as conn:
                    yield conn
                return
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise translate_sqlite_error(exc, self.path) from exc
            self._depth, self._tx_thread = 1, threading.get_ident()
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise translate_sqlite_error(exc, self.path) from exc
            except BaseException:
                self._rollback()
                raise
            finally:
                self._depth, self._tx_thread = 0, None
            committed, self._pending = self._pending, []
            # Still under the lock, so listeners hear of commits in the order they were made.
            self._emit(committed)

    @contextmanager
    def _savepoint(self) -> Iterator[sqlite3.Connection]:
        # Names by depth are unique among the savepoints open at once, which is all SQLite needs.
        name = f"pairforge_{self._depth}"
        announced = len(self._pending)
        try:
            self.conn.execute(f"SAVEPOINT {name}")
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, self.path) from exc
        self._depth += 1
        try:
            yield self.conn
        except BaseException as exc:
            # An error such as a full disk can end the whole transaction, savepoints included;
            # the outer block then rolls back everything.
            if self.conn.in_transaction:
                with suppress(sqlite3.Error):
                    self.conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    self.conn.execute(f"RELEASE SAVEPOINT {name}")
            del self._pending[announced:]
            if isinstance(exc, sqlite3.Error):
                raise translate_sqlite_error(exc, self.path) from exc
            raise
        else:
            try:
                self.conn.execute(f"RELEASE SAVEPOINT {name}")
            except sqlite3.Error as exc:
                raise translate_sqlite_error(exc, self.path) from exc
        finally:
            self._depth -= 1

    def write(self, sql: str, params: Params = ()) -> Written:
        """Run one write statement; returns how many rows it changed and the rows it returned.

        Inside a transaction it needs no savepoint: SQLite undoes a failed statement by itself
        and the transaction goes on (this runs per claimed job, where a savepoint would cost
        as much as the write). Outside one it is a transaction of its own. Raises PairForgeError.
        """
        if self.in_transaction:
            with self._lock:
                try:
                    cursor = self.conn.execute(sql, params)
                    return Written(cursor.fetchall(), cursor.rowcount)
                except sqlite3.Error as exc:
                    raise translate_sqlite_error(exc, self.path) from exc
        with self.transaction() as conn:
            cursor = conn.execute(sql, params)
            return Written(cursor.fetchall(), cursor.rowcount)

    def _rollback(self) -> None:
        # Nothing of a rolled-back transaction is announced.
        self._pending = []
        with suppress(sqlite3.Error):
            self.conn.execute("ROLLBACK")

    # ------------------------------------------------------------------ reads

    def read(self, sql: str, params: Params = (), *, plain: bool = False) -> list[Any]:
        """Every row of a query; ``plain`` gives tuples instead of Rows (cheaper for long id lists).

        Inside the calling thread's own transaction the writer reads (and sees its uncommitted
        writes); elsewhere an idle reader does. Raises PairForgeError.
        """
        if self.in_transaction:
            with self._lock:
                return self._fetch(self.conn, sql, params, plain)
        reader = self._take_reader()
        try:
            return self._fetch(reader, sql, params, plain)
        finally:
            self._give_back_reader(reader)

    def _fetch(self, conn: sqlite3.Connection, sql: str, params: Params, plain: bool) -> list[Any]:
        try:
            cursor = conn.cursor()
            if plain:
                cursor.row_factory = None
            return cursor.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, self.path) from exc

    def _take_reader(self) -> sqlite3.Connection:
        with self._readers_lock:
            if self._closed:
                raise PairForgeError(f"The project database at {self.path} is closed; reopen the project.")
            if self._readers:
                return self._readers.pop()
        try:
            reader = connect(self.path)
            reader.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise translate_sqlite_error(exc, self.path) from exc
        return reader

    def _give_back_reader(self, reader: sqlite3.Connection) -> None:
        with self._readers_lock:
            if self._closed:
                reader.close()
            else:
                self._readers.append(reader)

    # ------------------------------------------------------------------ listeners

    def subscribe(self, listener: PairListener) -> Callable[[], None]:
        """Call ``listener`` after every committed change; returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def announce(self, changes: Sequence[PairChange]) -> None:
        """Tell the listeners of ``changes``: now outside a transaction, else after the outermost commit."""
        if not changes:
            return
        if self.in_transaction:
            self._pending.extend(changes)
            return
        self._emit(changes)

    def _emit(self, changes: Sequence[PairChange]) -> None:
        if not changes:
            return
        for listener in list(self._listeners):
            listener(changes)


__all__ = ["Database", "Written", "connect", "translate_sqlite_error"]
