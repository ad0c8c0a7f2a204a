"""The project store: one folder holding ``pairforge.toml`` and ``pairforge.db``.

``Store`` is the database core (``store.db``) plus one repository per noun: ``documents``
(with chunks), ``pairs`` (with revisions), ``jobs`` (with runs), ``pipeline_log``,
``verdicts``, ``meta``, ``review_samples``, ``evals`` (eval probes and answers) and ``embeddings``
(the embedding cache of dedup). Its other methods are
the names callers used before the
repositories existed, each one line over a repository.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import PairForgeError, ProjectNotFoundError, ProjectReadOnlyError
from engine.models import Chunk, Document, Job, LogEntry, Pair, PairStatus, PairWarning, Verdict
from engine.settings import SETTINGS_FILE, ProjectSettings, SettingsLayers, create_settings_file
from engine.store.changes import PairChange, PairListener
from engine.store.database import Database
from engine.store.documents import DocumentRepository
from engine.store.embeddings import EmbeddingRepository
from engine.store.evals import EvalRepository
from engine.store.jobs import JOB_LEASE_S, JobRepository
from engine.store.log import LogRepository
from engine.store.meta import MetaRepository
from engine.store.migrations import apply_migrations
from engine.store.pairs import PairFilter, PairRepository
from engine.store.review import ReviewSampleRepository
from engine.store.verdicts import VerdictRepository

DB_FILE = "pairforge.db"


class Store:
    """A PairForge project: settings plus the SQLite database and its repositories."""

    def __init__(self, root: Path, db: Database, settings: SettingsLayers) -> None:
        self.root = root
        self.db_path = db.path
        self.db = db
        self._settings = settings
        self.pairs = PairRepository(db)
        self.documents = DocumentRepository(db, self.pairs)
        self.pipeline_log = LogRepository(db)
        self.jobs = JobRepository(db, self.pairs, self.pipeline_log)
        self.verdicts = VerdictRepository(db, self.pairs)
        self.meta = MetaRepository(db)
        self.review_samples = ReviewSampleRepository(db)
        self.evals = EvalRepository(db)
        self.embeddings = EmbeddingRepository(db)

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
        """Open the project in ``root``, applying pending migrations; raises ProjectNotFoundError unless ``create``."""
        root = Path(root).expanduser().resolve()
        if not (root / SETTINGS_FILE).exists() and not (root / DB_FILE).exists():
            if create:
                return cls.init(root)
            raise ProjectNotFoundError(
                f"No PairForge project in {root}: run `pairforge init {root}` or pass --project PATH."
            )
        settings = SettingsLayers.load(root)
        db = Database.open(root / DB_FILE)
        try:
            apply_migrations(db)
        except BaseException:
            db.close()
            raise
        return cls(root, db, settings)

    def close(self) -> None:
        """Close the database connections (a reader another thread is using closes when its read ends)."""
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """How many migrations the database has had."""
        return self.db.schema_version

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; a nested one is a savepoint (see Database.transaction)."""
        with self.db.transaction() as conn:
            yield conn

    def subscribe(self, listener: PairListener) -> Callable[[], None]:
        """Call ``listener`` after every committed pair change; returns an unsubscribe function."""
        return self.db.subscribe(listener)

    # ------------------------------------------------------------------ settings

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

    # ------------------------------------------------------------------ meta and log

    def get_meta(self, key: str, default: Any = None) -> Any:
        """A JSON value stored under ``key`` (MetaRepository.get)."""
        return self.meta.get(key, default)

    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key`` (MetaRepository.set)."""
        self.meta.set(key, value)

    def log(
        self, step: str, action: str, count: int = 0, message: str = "", detail: dict[str, Any] | None = None
    ) -> None:
        """Record one pipeline decision (LogRepository.add)."""
        self.pipeline_log.add(step, action, count, message, detail)

    def log_tail(self, limit: int = 20, step: str | None = None) -> list[LogEntry]:
        """The newest ``limit`` log entries, oldest first (LogRepository.tail)."""
        return self.pipeline_log.tail(limit, step)

    def log_summary(self) -> list[dict[str, Any]]:
        """Totals per (step, action) over the whole log (LogRepository.summary)."""
        return self.pipeline_log.summary()

    # ------------------------------------------------------------------ documents and chunks

    def get_document(self, document_id: int) -> Document:
        """The document with this id; raises NotFoundError (DocumentRepository.get)."""
        return self.documents.get(document_id)

    def find_document(self, path: str) -> Document | None:
        """The document imported from ``path``, or None (DocumentRepository.find)."""
        return self.documents.find(path)

    def list_documents(self) -> list[Document]:
        """Every document, in import order (DocumentRepository.all)."""
        return self.documents.all()

    def document_pair_counts(self) -> dict[int, int]:
        """How many pairs are grounded on (or imported from) each document (DocumentRepository.pair_counts)."""
        return self.documents.pair_counts()

    def save_document(
        self, document: Document, chunks: Iterable[Chunk], *, pairs: Iterable[Pair] = ()
    ) -> tuple[Document, int]:
        """Save a document with its chunks and imported pairs; returns it and the pairs flagged stale (DocumentRepository.save)."""
        return self.documents.save(document, chunks, pairs=pairs)

    def delete_document(self, document_id: int) -> None:
        """Remove a document and its chunks, flagging its pairs stale (DocumentRepository.delete)."""
        self.documents.delete(document_id)

    def list_chunks(self, document_id: int | None = None, *, include_retired: bool = False) -> list[Chunk]:
        """Chunks of one document (or all), in document order (DocumentRepository.chunks)."""
        return self.documents.chunks(document_id, include_retired=include_retired)

    def get_chunks(self, ids: Sequence[int]) -> list[Chunk]:
        """The chunks with these ids, in the order given (DocumentRepository.get_chunks)."""
        return self.documents.get_chunks(ids)

    # ------------------------------------------------------------------ pairs

    def add_pairs(self, pairs: Iterable[Pair], *, document_id: int | None = None) -> list[Pair]:
        """Insert new pairs in one transaction; returns them with their ids (PairRepository.add)."""
        return self.pairs.add(pairs, document_id=document_id)

    def get_pair(self, pair_id: int) -> Pair:
        """The pair with this id; raises NotFoundError (PairRepository.get)."""
        return self.pairs.get(pair_id)

    def get_pairs(self, ids: Sequence[int]) -> list[Pair]:
        """The pairs with these ids, in the order given (PairRepository.get_many)."""
        return self.pairs.get_many(ids)

    def pair_ids(self, flt: PairFilter | None = None) -> list[int]:
        """Ids of the matching pairs in id order (PairRepository.ids)."""
        return self.pairs.ids(flt)

    def count_pairs(self, flt: PairFilter | None = None) -> int:
        """How many pairs match (PairRepository.count)."""
        return self.pairs.count(flt)

    def iter_pairs(self, flt: PairFilter | None = None, *, batch: int = 2000) -> Iterator[Pair]:
        """Every matching pair, in id order, in batches (PairRepository.iter)."""
        return self.pairs.iter(flt, batch=batch)

    def iter_pair_rows(self, flt: PairFilter | None = None, *, batch: int = 5000) -> Iterator[dict[str, Any]]:
        """Every matching pair as a dict of its stored columns (PairRepository.iter_rows)."""
        return self.pairs.iter_rows(flt, batch=batch)

    def pair_rows(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """Light rows for list views (PairRepository.rows)."""
        return self.pairs.rows(ids)

    def pair_counts(self, by: str) -> dict[str, int]:
        """Pair counts grouped by ``status``, ``kind``, ``mode`` or ``split`` (PairRepository.counts)."""
        return self.pairs.counts(by)

    def warning_counts(self) -> dict[str, int]:
        """How many pairs carry each warning check id (PairRepository.warning_counts)."""
        return self.pairs.warning_counts()

    def set_warnings(
        self, updates: dict[int, list[PairWarning]], *, changes: Sequence[PairChange] | None = None
    ) -> None:
        """Replace the warnings of several pairs (PairRepository.set_warnings)."""
        self.pairs.set_warnings(updates, changes=changes)

    def set_splits(self, assignments: dict[int, str | None]) -> None:
        """Store each pair's split name (PairRepository.set_splits)."""
        self.pairs.set_splits(assignments)

    def set_scores(self, scores: dict[int, float | None]) -> None:
        """Store each pair's judge score (PairRepository.set_scores)."""
        self.pairs.set_scores(scores)

    def update_pair(self, pair: Pair, *, action: str = "edit") -> Pair:
        """Save a user's edit of a pair (undoable); returns the saved pair (PairRepository.update)."""
        return self.pairs.update(pair, action=action)

    def update_pairs(self, pairs: Sequence[Pair], *, action: str = "edit") -> int:
        """Save edits of several pairs as one undoable step; returns how many (PairRepository.update_many)."""
        return self.pairs.update_many(pairs, action=action)

    def set_status(self, ids: Sequence[int], status: PairStatus | str) -> int:
        """Accept, reject or reset pairs as one undoable step; returns how many changed (PairRepository.set_status)."""
        return self.pairs.set_status(ids, status)

    def delete_pairs(self, ids: Sequence[int], *, action: str = "delete") -> int:
        """Delete pairs as one undoable step; returns how many (PairRepository.delete)."""
        return self.pairs.delete(ids, action=action)

    def add_manual_pair(self, pair: Pair) -> Pair:
        """Add a pair written by a person (undoable); returns it with its id (PairRepository.add_manual)."""
        return self.pairs.add_manual(pair)

    def undo(self) -> tuple[str, list[int]] | None:
        """Revert the last user edit; returns (action, pair ids) or None (PairRepository.undo)."""
        return self.pairs.undo()

    def redo(self) -> tuple[str, list[int]] | None:
        """Re-apply the last undone edit; returns (action, pair ids) or None (PairRepository.redo)."""
        return self.pairs.redo()

    def pair_history(self, pair_id: int) -> list[dict[str, Any]]:
        """Every saved revision of a pair, oldest first (PairRepository.history)."""
        return self.pairs.history(pair_id)

    # ------------------------------------------------------------------ runs and jobs

    def create_run(self, task: str, params: dict[str, Any], jobs: Iterable[Job]) -> tuple[int, int]:
        """Persist a run and its queued jobs; returns (run id, job count) (JobRepository.create_run)."""
        return self.jobs.create_run(task, params, jobs)

    def list_runs(self) -> list[dict[str, Any]]:
        """Every run with its job counts per status (JobRepository.runs)."""
        return self.jobs.runs()

    def requeue_interrupted(self) -> int:
        """Queue again jobs a stopped run left running; returns how many (JobRepository.requeue_interrupted)."""
        return self.jobs.requeue_interrupted()

    def claim_job(
        self, host: str | None, *, run_id: int | None = None, task: str | None = None, lease_s: float = JOB_LEASE_S
    ) -> Job | None:
        """Take the next queued job under a lease; None when none is queued (JobRepository.claim)."""
        return self.jobs.claim(host, run_id=run_id, task=task, lease_s=lease_s)

    def renew_leases(self, job_ids: Sequence[int], lease_s: float = JOB_LEASE_S) -> int:
        """Extend the leases of this process's running jobs; returns how many (JobRepository.renew_leases)."""
        return self.jobs.renew_leases(job_ids, lease_s)

    def complete_job(self, job_id: int, pairs: Sequence[Pair], *, queued: bool = False) -> list[Pair]:
        """Store a job's pairs and mark it done in one transaction; returns the pairs stored (JobRepository.complete)."""
        return self.jobs.complete(job_id, pairs, queued=queued)

    def fail_job(self, job_id: int, error: str, *, retry: bool) -> None:
        """Record a job's failure, queued again with ``retry`` (JobRepository.fail)."""
        self.jobs.fail(job_id, error, retry=retry)

    def release_job(self, job_id: int) -> None:
        """Put a running job back in the queue without counting an attempt (JobRepository.release)."""
        self.jobs.release(job_id)

    def cancel_jobs(self, run_id: int | None = None) -> int:
        """Cancel queued jobs (of one run, or all); returns how many (JobRepository.cancel)."""
        return self.jobs.cancel(run_id)

    def retry_failed(self, run_id: int | None = None) -> int:
        """Queue failed jobs again; returns how many (JobRepository.retry_failed)."""
        return self.jobs.retry_failed(run_id)

    def list_jobs(
        self, *, status: str | None = None, run_id: int | None = None, task: str | None = None, limit: int | None = None
    ) -> list[Job]:
        """Jobs, oldest first, optionally by status, run and task (JobRepository.all)."""
        return self.jobs.all(status=status, run_id=run_id, task=task, limit=limit)

    def job_ids(self, task: str | None = None) -> list[int]:
        """Every job's id (of ``task``, when given), oldest first (JobRepository.ids)."""
        return self.jobs.ids(task)

    def job_rows(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        """Light rows of the jobs ``ids`` for list views (JobRepository.rows)."""
        return self.jobs.rows(ids)

    def job_counts(self, run_id: int | None = None, *, task: str | None = None) -> dict[str, int]:
        """Job counts by status (JobRepository.counts)."""
        return self.jobs.counts(run_id, task=task)

    # ------------------------------------------------------------------ verdicts

    def save_verdict(self, verdict: Verdict) -> None:
        """Store (or replace) a pair's judge verdict and its score (VerdictRepository.save)."""
        self.verdicts.save(verdict)

    def get_verdicts(self, ids: Sequence[int] | None = None) -> dict[int, Verdict]:
        """Stored verdicts by pair id (VerdictRepository.get)."""
        return self.verdicts.get(ids)

    # ------------------------------------------------------------------ summary

    def summary(self) -> dict[str, Any]:
        """Counts a person or a script wants at a glance."""
        by_format = self.documents.count_by_format()
        return {
            "project": str(self.root),
            "name": self.settings.name,
            "schema_version": self.schema_version,
            "documents": sum(by_format.values()),
            "documents_by_format": by_format,
            "chunks": self.documents.chunk_count(),
            "pairs": self.pairs.count(),
            "pairs_by_status": self.pairs.counts("status"),
            "pairs_by_kind": self.pairs.counts("kind"),
            "pairs_by_mode": self.pairs.counts("mode"),
            "stale_pairs": self.pairs.stale_count(),
            "warnings": self.pairs.warning_counts(),
            "jobs": self.jobs.counts(),
        }


__all__ = ["DB_FILE", "Store"]
