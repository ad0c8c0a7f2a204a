"""The project store: migration, concurrency, undo across restarts, jobs, re-import."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.errors import PairForgeError, ProjectBusyError
from engine.models import Chunk, Document, Job, JobStatus, Pair, PairStatus
from engine.store import DB_FILE, SCHEMA_VERSION, Store


def _pair(n: int) -> Pair:
    return Pair.simple(f"Question number {n}?", f"Answer number {n} with enough words.")


def test_migration_from_an_empty_folder(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "fresh")
    try:
        assert store.schema_version == SCHEMA_VERSION
        assert store.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        tables = {r[0] for r in store.db.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"documents", "chunks", "pairs", "jobs", "pipeline_log", "pair_revisions"} <= tables
    finally:
        store.close()
    reopened = Store.open(tmp_path / "fresh")
    assert reopened.schema_version == SCHEMA_VERSION
    reopened.close()


def test_reader_works_while_a_writer_holds_a_transaction(project: Store) -> None:
    project.add_pairs([_pair(1)])
    writer = sqlite3.connect(project.db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE pairs SET mode = 'thinker'")
    try:
        reader = Store.open(project.root)
        assert reader.count_pairs() == 1
        assert reader.get_pair(reader.pair_ids()[0]).mode == "factual"  # sees the last commit
        reader.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_reads_on_other_threads_do_not_wait_for_this_stores_own_transaction(project: Store) -> None:
    """One Store, two threads: while one holds a write transaction, the other still reads (the last commit)."""
    project.add_pairs([_pair(1)])
    inside, release = threading.Event(), threading.Event()

    def write() -> None:
        with project.transaction() as conn:
            conn.execute("UPDATE pairs SET mode = 'thinker'")
            assert project.get_pair(project.pair_ids()[0]).mode == "thinker"  # its own write, inside
            inside.set()
            release.wait(10)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert inside.wait(10)
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.append(project.get_pair(project.pair_ids()[0]).mode))
        reader.start()
        reader.join(5)
        assert not reader.is_alive(), "a read waited for another thread's transaction"
        assert seen == ["factual"]
    finally:
        release.set()
        writer.join(10)
    assert project.get_pair(project.pair_ids()[0]).mode == "thinker"


def test_second_writer_gets_the_busy_sentence(project: Store) -> None:
    holder = sqlite3.connect(project.db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    project.db.conn.execute("PRAGMA busy_timeout = 50")
    try:
        with pytest.raises(ProjectBusyError) as caught:
            project.add_pairs([_pair(1)])
        assert "is busy" in str(caught.value) and "try again" in str(caught.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert len(project.add_pairs([_pair(2)])) == 1  # works once the lock is gone


def test_undo_and_redo_survive_a_restart(tmp_path: Path) -> None:
    store = Store.init(tmp_path / "p")
    pair = store.add_pairs([_pair(1)])[0]
    edited = pair.model_copy(update={"mode": "developer"})
    store.update_pair(edited)
    store.close()

    store = Store.open(tmp_path / "p")
    assert store.get_pair(pair.id or 0).mode == "developer"
    action, ids = store.undo() or ("", [])
    assert action == "edit" and ids == [pair.id]
    store.close()

    store = Store.open(tmp_path / "p")
    assert store.get_pair(pair.id or 0).mode == "factual"
    assert store.redo() is not None
    assert store.get_pair(pair.id or 0).mode == "developer"
    store.close()


def test_bulk_add_update_delete_status_undo(project: Store) -> None:
    added = [project.add_manual_pair(_pair(i)) for i in range(3)]
    ids = [p.id or 0 for p in added]
    assert project.set_status(ids, PairStatus.ACCEPTED) == 3
    assert project.pair_counts("status") == {"accepted": 3}
    project.update_pairs([p.model_copy(update={"mode": "thinker"}) for p in project.get_pairs(ids)])
    assert project.pair_counts("mode") == {"thinker": 3}
    assert project.delete_pairs(ids[:2]) == 2
    assert project.count_pairs() == 1
    project.undo()  # the delete
    assert project.count_pairs() == 3
    project.undo()  # the mode edit
    assert project.pair_counts("mode") == {"factual": 3}
    project.undo()  # the status change
    assert project.pair_counts("status") == {"pending": 3}
    project.undo()
    project.undo()
    project.undo()  # the three manual adds
    assert project.count_pairs() == 0
    assert project.undo() is None


def test_jobs_claim_complete_fail_requeue_cancel(project: Store) -> None:
    run_id, n = project.create_run("generate", {"target": 4}, [Job(chunk_ids=[1]) for _ in range(4)])
    assert n == 4
    first = project.claim_job("host-a", run_id=run_id)
    assert first is not None and first.status is JobStatus.RUNNING and first.attempts == 1
    saved = project.complete_job(first.id or 0, [_pair(1)])
    assert len(saved) == 1 and project.complete_job(first.id or 0, [_pair(2)]) == []  # no double save

    second = project.claim_job("host-a")
    assert second is not None
    project.fail_job(second.id or 0, "timeout", retry=True)
    assert project.job_counts()["queued"] == 3
    third = project.claim_job("host-b")
    assert third is not None
    project.fail_job(third.id or 0, "bad model", retry=False)
    assert project.job_counts()["failed"] == 1

    running = project.claim_job("host-a")
    assert running is not None
    assert project.requeue_interrupted() == 0  # this process is alive: its job is not taken from it
    with project.transaction() as conn:  # as after a crash: the owning process is gone
        conn.execute("UPDATE jobs SET owner = ? WHERE id = ?", (f"{socket.gethostname()}:{_dead_pid()}", running.id))
    assert project.requeue_interrupted() == 1
    assert project.cancel_jobs(run_id) == 2
    counts = project.job_counts(run_id)
    assert counts == {"queued": 0, "running": 0, "done": 1, "failed": 1, "cancelled": 2}


def test_save_document_reimport_marks_pairs_stale(project: Store) -> None:
    document = Document(path="docs/a.md", format="markdown", sha256="one", size=10)
    saved, stale = project.save_document(document, [Chunk(ordinal=0, text="old text", start=0, end=8)])
    assert stale == 0
    chunk = project.list_chunks(saved.id)[0]
    grounded = project.add_pairs([_pair(1).model_copy(update={"sources": [chunk.id]})])[0]
    again, stale = project.save_document(
        document.model_copy(update={"sha256": "two"}), [Chunk(ordinal=0, text="new text", start=0, end=8)]
    )
    assert again.id == saved.id and stale == 1
    assert project.get_pair(grounded.id or 0).stale
    assert [c.text for c in project.list_chunks(saved.id)] == ["new text"]
    assert len(project.list_chunks(saved.id, include_retired=True)) == 2


def test_wal_files_live_next_to_the_database(project: Store) -> None:
    project.add_pairs([_pair(1)])
    assert (project.root / DB_FILE).exists()
    assert (project.root / (DB_FILE + "-wal")).exists()


def test_listeners_hear_of_changes_only_after_commit(project: Store) -> None:
    heard: list[int] = []
    project.subscribe(lambda changes: heard.extend(c.pair_id for c in changes))
    with project.transaction():
        added = project.add_pairs([Pair.simple("What is a lease in Tidewater?", "A lease is a claim on a job.")])
        assert heard == []  # still inside the outer transaction
    assert heard == [added[0].id]

    heard.clear()
    with pytest.raises(RuntimeError), project.transaction():
        project.add_pairs([Pair.simple("What is a heartbeat here?", "A heartbeat renews the lease.")])
        raise RuntimeError("roll back")
    assert heard == []
    assert project.count_pairs() == 1


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_requeue_leaves_jobs_of_a_live_process_alone(project: Store) -> None:
    run_id, _ = project.create_run("generate", {}, [Job(kind="instruction", mode="factual")])
    job = project.claim_job("host-a", run_id=run_id)
    assert job is not None
    with project.transaction() as conn:  # claimed by another process that is still running
        conn.execute("UPDATE jobs SET owner = ? WHERE id = ?", (f"{socket.gethostname()}:{os.getppid()}", job.id))
    assert project.requeue_interrupted() == 0
    assert project.job_counts(run_id)["running"] == 1


def test_closing_while_another_thread_reads_lets_the_read_finish(project: Store) -> None:
    """Close may come from the interface while a worker is mid-query: the query ends normally, then its connection closes."""
    import time

    started = threading.Event()
    result: list[int] = []

    def long_read() -> None:
        started.set()
        rows = project.db.read(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) SELECT count(*) FROM c"
        )
        result.append(rows[0][0])

    reader = threading.Thread(target=long_read)
    reader.start()
    assert started.wait(5)
    time.sleep(0.05)  # the query is running now
    project.close()
    reader.join(30)
    assert result == [2000000]
    with pytest.raises(PairForgeError, match="closed"):
        project.count_pairs()


def test_a_job_whose_pid_was_reused_is_queued_again_once_its_lease_ran_out(
    project: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id, _ = project.create_run("generate", {}, [Job(kind="instruction", mode="factual")])
    job = project.claim_job("host-a", run_id=run_id, task="generate")
    assert job is not None
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        # The process that claimed the job crashed; its pid now belongs to an unrelated live process.
        with project.transaction() as conn:
            conn.execute("UPDATE jobs SET owner = ? WHERE id = ?", (f"{socket.gethostname()}:{unrelated.pid}", job.id))
        assert project.requeue_interrupted() == 0  # its lease still runs: the run may only be slow
        an_hour_later = time.time() + 3600
        monkeypatch.setattr(time, "time", lambda: an_hour_later)
        assert project.requeue_interrupted() == 1  # nobody renewed it: the live pid does not keep it
    finally:
        unrelated.kill()
        unrelated.wait()
    counts = project.job_counts(run_id)
    assert counts["running"] == 0 and counts["queued"] == 1
