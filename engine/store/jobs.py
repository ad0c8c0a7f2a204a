"""Runs and their jobs: the persistent queue the job runner (engine/jobs) claims from, with leases.

A claimed job is ``running`` under a lease its run renews; a job whose lease ran out, or whose
process is known to be gone, is queued again (a live pid alone keeps nothing: pids are reused).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from engine.models import Job, JobStatus, Pair, utcnow
from engine.processes import pid_alive
from engine.store.database import Database
from engine.store.log import LogRepository
from engine.store.pairs import PairRepository

# How long a claimed job stays its claimer's without renewal (see engine/jobs/runner.py).
JOB_LEASE_S = 60.0


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def job_from_row(r: sqlite3.Row) -> Job:
    """The Job a ``jobs`` row holds."""
    return Job(
        id=r["id"], run_id=r["run_id"], task=r["task"], kind=r["kind"], mode=r["mode"],
        chunk_ids=json.loads(r["chunk_ids"]), pair_id=r["pair_id"], params=json.loads(r["params"]),
        status=r["status"], attempts=r["attempts"], error=r["error"], host=r["host"],
        result_pair_ids=json.loads(r["result_pair_ids"]), created_at=_dt(r["created_at"]) or utcnow(),
        started_at=_dt(r["started_at"]), finished_at=_dt(r["finished_at"]),
    )


def process_owner() -> str:
    """This process, as recorded on the jobs it runs: host name and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_gone(owner: str | None) -> bool:
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


class JobRepository:
    """The ``runs`` and ``jobs`` tables."""

    def __init__(self, db: Database, pairs: PairRepository, log: LogRepository) -> None:
        self.db = db
        # A generation job's pairs are stored in the transaction that marks it done.
        self._pairs = pairs
        self._log = log

    def create_run(self, task: str, params: dict[str, Any], jobs: Iterable[Job]) -> tuple[int, int]:
        """Persist a run and its queued jobs in one transaction; returns (run id, job count)."""
        now = _now()
        with self.db.transaction() as conn:
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

    def runs(self) -> list[dict[str, Any]]:
        """Every run with its job counts per status."""
        rows = self.db.read(
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
        with self.db.transaction() as conn:
            rows = conn.execute("SELECT id, owner, lease_expires_at FROM jobs WHERE status = 'running'").fetchall()
            stale = [
                r["id"] for r in rows
                if r["lease_expires_at"] is None or r["lease_expires_at"] <= now or owner_gone(r["owner"])
            ]
            conn.executemany(
                "UPDATE jobs SET status = 'queued', host = NULL, owner = NULL, lease_expires_at = NULL "
                "WHERE id = ? AND status = 'running'",
                [(i,) for i in stale],
            )
            n = len(stale)
        if n:
            self._log.add("queue", "requeued", n, f"{n} job(s) interrupted by a stopped process were queued again")
        return n

    def claim(
        self, host: str | None, *, run_id: int | None = None, task: str | None = None, lease_s: float = JOB_LEASE_S
    ) -> Job | None:
        """Atomically take the next queued job and mark it running under a lease of ``lease_s``; None when none is queued."""
        clauses, params = _job_filter(status="queued", run_id=run_id, task=task)
        rows = self.db.write(
            "UPDATE jobs SET status = 'running', host = ?, owner = ?, lease_expires_at = ?, "
            "attempts = attempts + 1, started_at = ? "
            f"WHERE id = (SELECT id FROM jobs WHERE {' AND '.join(clauses)} ORDER BY id LIMIT 1) "
            "RETURNING *",
            [host, process_owner(), time.time() + lease_s, _now(), *params],
        ).rows
        return job_from_row(rows[0]) if rows else None

    def renew_leases(self, job_ids: Sequence[int], lease_s: float = JOB_LEASE_S) -> int:
        """Extend the lease of this process's running jobs among ``job_ids`` by ``lease_s``; returns how many."""
        if not job_ids:
            return 0
        return self.db.write(
            f"UPDATE jobs SET lease_expires_at = ? WHERE id IN ({','.join('?' * len(job_ids))}) "
            "AND status = 'running' AND owner = ?",
            [time.time() + lease_s, *job_ids, process_owner()],
        ).rowcount

    def status(self, job_id: int) -> str | None:
        """A job's status, or None when there is no such job."""
        rows = self.db.read("SELECT status FROM jobs WHERE id = ?", (job_id,))
        return str(rows[0]["status"]) if rows else None

    def mark_done(self, job_id: int, result_pair_ids: Sequence[int] = ()) -> None:
        """Mark a job done (clearing its error), with the ids of the pairs it made."""
        self.db.write(*self._mark_done_sql(job_id, result_pair_ids))

    def complete(self, job_id: int, pairs: Sequence[Pair], *, queued: bool = False) -> list[Pair]:
        """Store a job's pairs and mark it done in one transaction (so no pair is lost or doubled).

        Only a running job completes, or with ``queued`` one still waiting in the queue
        (the pre-flight probe answers jobs before the queue claims them). Returns the stored
        pairs (none when the job was cancelled or finished elsewhere meanwhile).
        """
        accepted = ("running", "queued") if queued else ("running",)
        # One block on the connection, not nested repository calls: this runs once per job,
        # and a savepoint per step would cost more than the writes themselves.
        with self.db.transaction() as conn:
            row = conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["status"] not in accepted:
                # Cancelled or finished elsewhere meanwhile: keep nothing twice.
                return []
            added = self._pairs.insert(conn, pairs)
            conn.execute(*self._mark_done_sql(job_id, [p.id or 0 for p in added]))
        return added

    @staticmethod
    def _mark_done_sql(job_id: int, result_pair_ids: Sequence[int]) -> tuple[str, tuple[Any, ...]]:
        return (
            "UPDATE jobs SET status = 'done', error = NULL, finished_at = ?, result_pair_ids = ? WHERE id = ?",
            (_now(), json.dumps(list(result_pair_ids)), job_id),
        )

    def fail(self, job_id: int, error: str, *, retry: bool) -> None:
        """Record a job's failure; ``retry`` puts it back in the queue, else it is failed for good."""
        self.db.write(
            "UPDATE jobs SET status = ?, error = ?, finished_at = ?, host = NULL WHERE id = ? AND status = 'running'",
            ("queued" if retry else "failed", error, None if retry else _now(), job_id),
        )

    def release(self, job_id: int) -> None:
        """Put a running job back in the queue untouched (pause), without counting an attempt."""
        self.db.write(
            "UPDATE jobs SET status = 'queued', host = NULL, attempts = MAX(attempts - 1, 0) "
            "WHERE id = ? AND status = 'running'",
            (job_id,),
        )

    def cancel(self, run_id: int | None = None) -> int:
        """Cancel queued jobs (of one run, or all); returns how many."""
        where, params = ("AND run_id = ?", [run_id]) if run_id is not None else ("", [])
        return self.db.write(
            f"UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE status = 'queued' {where}",
            [_now(), *params],
        ).rowcount

    def retry_failed(self, run_id: int | None = None) -> int:
        """Queue failed jobs again with a fresh attempt count; returns how many."""
        where, params = ("AND run_id = ?", [run_id]) if run_id is not None else ("", [])
        return self.db.write(
            f"UPDATE jobs SET status = 'queued', attempts = 0, error = NULL WHERE status = 'failed' {where}",
            params,
        ).rowcount

    def all(
        self, *, status: str | None = None, run_id: int | None = None, task: str | None = None, limit: int | None = None
    ) -> list[Job]:
        """Jobs, oldest first, optionally by status, run and task."""
        clauses, params = _job_filter(status=status, run_id=run_id, task=task)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        tail = f"LIMIT {int(limit)}" if limit else ""
        return [job_from_row(r) for r in self.db.read(f"SELECT * FROM jobs {where} ORDER BY id {tail}", params)]

    def ids(self, task: str | None = None) -> list[int]:
        """Every job's id (of ``task``, when given), oldest first: the cheap index a list view keeps."""
        clauses, params = _job_filter(task=task)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return [r["id"] for r in self.db.read(f"SELECT id FROM jobs {where} ORDER BY id", params)]

    def rows(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """Light rows (id, status, kind, mode, host, error) of the jobs ``ids``, in that order."""
        if not ids:
            return []
        marks = ",".join(str(int(i)) for i in ids)
        rows = self.db.read(
            "SELECT id, status, kind, mode, host, substr(error, 1, 200) AS error FROM jobs "
            f"WHERE id IN ({marks})"
        )
        by_id = {r["id"]: dict(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def counts(self, run_id: int | None = None, *, task: str | None = None) -> dict[str, int]:
        """Job counts by status (of one run and of one task, when given)."""
        clauses, params = _job_filter(run_id=run_id, task=task)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self.db.read(f"SELECT status, COUNT(*) AS n FROM jobs {where} GROUP BY status", params)
        counts = {s.value: 0 for s in JobStatus}
        counts.update({r["status"]: r["n"] for r in rows})
        return counts


def _job_filter(
    *, status: str | None = None, run_id: int | None = None, task: str | None = None
) -> tuple[list[str], list[Any]]:
    """SQL conditions and their parameters for jobs of a status, run and task (each optional)."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("status", status), ("run_id", run_id), ("task", task)):
        if value is not None and value != "":
            clauses.append(f"{column} = ?")
            params.append(value)
    return clauses, params


__all__ = ["JOB_LEASE_S", "JobRepository", "job_from_row", "owner_gone", "process_owner"]
