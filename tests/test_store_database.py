"""The store's database core: savepoint-nested transactions, listeners after the outermost commit, named migrations."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from engine.errors import PairForgeError
from engine.models import Pair
from engine.store import DB_FILE, MIGRATIONS, SCHEMA_VERSION, Database, Migration, PairChange, Store
from engine.store.migrations import (
    MIGRATIONS_TABLE,
    applied_migrations,
    apply_migrations,
    pending_migrations,
)


def _pair(n: int) -> Pair:
    return Pair.simple(f"Question number {n}?", f"Answer number {n} with enough words.")


def _questions(store: Store) -> list[str]:
    return [p.instruction for p in store.iter_pairs()]


def test_an_inner_block_that_raises_rolls_back_only_its_own_writes(project: Store) -> None:
    with project.transaction():
        project.add_pairs([_pair(1)])
        with pytest.raises(RuntimeError), project.transaction():
            project.add_pairs([_pair(2)])
            project.log("test", "inner", 1)
            raise RuntimeError("the inner part fails")
        assert _questions(project) == ["Question number 1?"]  # read inside: the inner part is gone already
        project.add_pairs([_pair(3)])
    assert _questions(project) == ["Question number 1?", "Question number 3?"]
    assert [e.action for e in project.log_tail(step="test")] == []


def test_a_failed_store_call_inside_a_transaction_leaves_the_outer_writes(project: Store) -> None:
    """A store call is a block of its own: when it fails half-way, the caller's transaction goes on without it."""
    first = project.add_pairs([_pair(1)])[0]
    with project.transaction():
        project.add_pairs([_pair(2)])
        # The second pair takes the first's id: the insert fails after the third pair was written.
        with pytest.raises(Exception, match="UNIQUE"):
            project.add_pairs([_pair(3), _pair(4).model_copy(update={"id": first.id})])
        project.add_pairs([_pair(5)])
    assert _questions(project) == ["Question number 1?", "Question number 2?", "Question number 5?"]


def test_a_failed_single_write_inside_a_transaction_leaves_the_outer_writes(project: Store) -> None:
    """One statement needs no savepoint: SQLite undoes it alone, and the caller's transaction goes on."""
    with project.transaction():
        first = project.add_pairs([_pair(1)])[0]
        with pytest.raises(PairForgeError, match="UNIQUE"):
            # Writes a row (id * 10) before it fails on the taken id.
            project.db.write(
                "INSERT INTO pairs(id, messages, mode, kind, created_at, updated_at) "
                "SELECT id * 10, '[]', '', '', '', '' FROM pairs UNION ALL SELECT ?, '[]', '', '', '', ''",
                (first.id,),
            )
        project.log("test", "after", 1)
    assert _questions(project) == ["Question number 1?"]
    assert [e.action for e in project.log_tail(step="test")] == ["after"]


def test_savepoints_nest_deeper_than_one_level(project: Store) -> None:
    with project.transaction():
        project.add_pairs([_pair(1)])
        with project.transaction():
            project.add_pairs([_pair(2)])
            with pytest.raises(RuntimeError), project.transaction():
                project.add_pairs([_pair(3)])
                raise RuntimeError
            project.add_pairs([_pair(4)])
        with pytest.raises(RuntimeError), project.transaction():
            project.add_pairs([_pair(5)])
            with project.transaction():
                project.add_pairs([_pair(6)])  # released into its parent, then rolled back with it
            raise RuntimeError
    assert _questions(project) == [f"Question number {n}?" for n in (1, 2, 4)]


def test_listeners_are_told_once_after_the_outermost_commit_and_never_on_rollback(project: Store) -> None:
    calls: list[list[str]] = []

    def listen(changes: Sequence[PairChange]) -> None:
        calls.append([c.after.instruction for c in changes if c.after is not None])

    project.subscribe(listen)
    with project.transaction():
        project.add_pairs([_pair(1)])
        with project.transaction():
            project.add_pairs([_pair(2)])
        with pytest.raises(RuntimeError), project.transaction():
            project.add_pairs([_pair(3)])
            raise RuntimeError("rolled back: never announced")
        project.add_pairs([_pair(4)])
        assert calls == []  # nothing before the outermost commit
    assert calls == [["Question number 1?", "Question number 2?", "Question number 4?"]]

    calls.clear()
    with pytest.raises(RuntimeError), project.transaction():
        project.add_pairs([_pair(5)])
        with project.transaction():
            project.add_pairs([_pair(6)])
        raise RuntimeError("the whole transaction rolls back")
    assert calls == []

    project.add_pairs([_pair(7)])  # on its own: one call after its own commit
    assert calls == [["Question number 7?"]]


# ---------------------------------------------------------------------- migrations


def _old_project(root: Path, version: int) -> Path:
    """A project folder whose database has the schema of ``version`` numbered migrations and no record of names.

    As PairForge wrote it before migrations had names: only ``PRAGMA user_version`` counts them.
    """
    Store.init(root).close()
    (root / DB_FILE).unlink()
    conn = sqlite3.connect(root / DB_FILE, isolation_level=None)
    for migration in MIGRATIONS[:version]:
        conn.executescript(migration.sql)
    conn.execute(f"PRAGMA user_version = {version}")
    now = "2025-01-01T00:00:00+00:00"
    conn.execute(
        "INSERT INTO documents(path, format, sha256, size, created_at, updated_at) VALUES ('a.md', 'markdown', 'x', 1, ?, ?)",
        (now, now),
    )
    messages = json.dumps([{"role": "user", "content": "What is a lease?"},
                           {"role": "assistant", "content": "A lease is a claim on a job that expires."}])
    conn.execute(
        "INSERT INTO pairs(messages, mode, kind, instruction, response, created_at, updated_at) "
        "VALUES (?, 'factual', 'instruction', 'What is a lease?', 'A lease is a claim on a job that expires.', ?, ?)",
        (messages, now, now),
    )
    conn.execute("INSERT INTO runs(task, created_at) VALUES ('generate', ?)", (now,))
    conn.execute("INSERT INTO jobs(run_id, kind, mode, status, created_at) VALUES (1, 'instruction', 'factual', 'running', ?)", (now,))
    conn.execute(
        "INSERT INTO verdicts(pair_id, pair_revision, model, rubric_version, scores, total, reason, created_at) "
        "VALUES (1, 0, 'm', '1.0', '{}', 7.0, 'fine', ?)",
        (now,),
    )
    conn.close()
    return root


def _columns(store: Store, table: str) -> set[str]:
    return {r["name"] for r in store.db.read(f"PRAGMA table_info({table})")}


def test_migrations_apply_in_order_to_an_old_database_file(tmp_path: Path) -> None:
    root = _old_project(tmp_path / "old", version=1)
    with Store.open(root) as store:
        assert store.schema_version == SCHEMA_VERSION
        applied = applied_migrations(store.db)
        assert [m.name for m in applied] == [m.name for m in MIGRATIONS]
        assert {"owner", "lease_expires_at"} <= _columns(store, "jobs")
        assert "content_hash" in _columns(store, "verdicts")
        assert pending_migrations(store.db) == []
        # What the old file held is all there, and works with the new columns.
        assert store.get_pair(1).instruction == "What is a lease?"
        assert store.get_verdicts()[1].total == 7.0
        assert [d.path for d in store.list_documents()] == ["a.md"]
        assert store.requeue_interrupted() == 1  # a running job with no lease: its run is gone
    with Store.open(root) as again:  # nothing left to apply
        assert [m.applied_at for m in applied_migrations(again.db)] == [m.applied_at for m in applied]


def test_a_database_from_before_named_migrations_gets_its_names_recorded(tmp_path: Path) -> None:
    root = _old_project(tmp_path / "current", version=SCHEMA_VERSION)
    with Store.open(root) as store:
        recorded = store.db.read(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY rowid")
        assert [r["name"] for r in recorded] == [m.name for m in MIGRATIONS]
        assert store.count_pairs() == 1


def test_named_migrations_apply_in_the_order_listed_and_a_failing_one_stays_pending(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "t.db")
    try:
        steps = [
            Migration("create_notes", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"),
            Migration("notes_tag", "ALTER TABLE notes ADD COLUMN tag TEXT"),  # needs the table above
            Migration("first_note", "INSERT INTO notes(body, tag) VALUES ('hello', 'greeting')"),  # needs the column
        ]
        assert apply_migrations(db, steps) == ["create_notes", "notes_tag", "first_note"]
        assert db.schema_version == 3

        broken = [*steps, Migration("second_note", "INSERT INTO notes(body) VALUES ('two')"),
                  Migration("bad", "INSERT INTO notes(body) VALUES ('three'); INSERT INTO missing VALUES (1)"),
                  Migration("after_bad", "INSERT INTO notes(body) VALUES ('four')")]
        with pytest.raises(PairForgeError, match="migration 'bad'"):
            apply_migrations(db, broken)
        assert [r["body"] for r in db.read("SELECT body FROM notes ORDER BY id")] == ["hello", "two"]
        assert [m.name for m in pending_migrations(db, broken)] == ["bad", "after_bad"]
        assert db.schema_version == 4
    finally:
        db.close()


def test_a_database_written_by_a_newer_version_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "newer"
    Store.init(root).close()
    conn = sqlite3.connect(root / DB_FILE, isolation_level=None)
    conn.execute(f"INSERT INTO {MIGRATIONS_TABLE}(name, applied_at) VALUES ('from_the_future', 'later')")
    conn.close()
    with pytest.raises(PairForgeError, match=r"newer PairForge.*from_the_future.*upgrade pairforge"):
        Store.open(root)
