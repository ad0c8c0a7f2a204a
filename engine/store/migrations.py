"""Named schema migrations, applied in order, each in one transaction with its record.

As sqlite-utils' ``migrations.py``: a migration has a name, the names applied are kept in
the ``schema_migrations`` table, and opening a database applies the pending ones in the order
they are listed. ``PRAGMA user_version`` still counts them, so an older PairForge refuses a
file a newer one upgraded, and files from before migrations had names (numbered only by
``user_version``) are adopted: their first ``user_version`` migrations count as applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.errors import PairForgeError
from engine.store.database import Database

MIGRATIONS_TABLE = "schema_migrations"


@dataclass(frozen=True)
class Migration:
    """One schema change: a unique name and the SQL statements that make it."""

    name: str
    sql: str

    def statements(self) -> list[str]:
        """The migration's statements (none of ours has a ';' inside a literal)."""
        return [s.strip() for s in self.sql.split(";") if s.strip()]


@dataclass(frozen=True)
class AppliedMigration:
    """A migration recorded as applied, and when (ISO time)."""

    name: str
    applied_at: str


# Never edit or reorder a released entry: append.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "initial_schema",
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
    ),
    # The content a verdict judged, so status changes alone do not call for a new verdict.
    Migration(
        "verdict_content_hash",
        """
        ALTER TABLE verdicts ADD COLUMN content_hash TEXT;
        CREATE INDEX jobs_task_pair ON jobs(task, status, pair_id)
        """,
    ),
    # Which process runs a job, so a second process never re-queues a live one.
    Migration("job_owner", "ALTER TABLE jobs ADD COLUMN owner TEXT"),
    # A lease on every running job, renewed by the run that holds it (unix seconds); a job
    # whose lease ran out is queued again whatever pid it recorded, since pids are reused.
    Migration("job_lease", "ALTER TABLE jobs ADD COLUMN lease_expires_at REAL"),
    # The review sample and a reviewer's pass/fail per pair, kept across sessions. No foreign key
    # to pairs: a deleted pair's verdict still counts in the sample it was drawn in.
    Migration(
        "review_samples",
        """
        CREATE TABLE review_samples (
            id INTEGER PRIMARY KEY,
            drawn_at TEXT NOT NULL,
            size INTEGER NOT NULL,
            seed INTEGER,
            method TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE review_sample_pairs (
            sample_id INTEGER NOT NULL REFERENCES review_samples(id) ON DELETE CASCADE,
            pair_id INTEGER NOT NULL,
            position INTEGER NOT NULL,
            verdict TEXT,
            marked_at TEXT,
            PRIMARY KEY (sample_id, pair_id)
        )
        """,
    ),
    # Eval probes are kept with the project, so every eval run asks the same questions and
    # runs compare over time; each run's answers are kept per probe with what was measured.
    Migration(
        "eval_probes",
        """
        CREATE TABLE eval_probes (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            question TEXT NOT NULL,
            reference TEXT NOT NULL DEFAULT '',
            pair_id INTEGER,
            parent_id INTEGER REFERENCES eval_probes(id) ON DELETE CASCADE,
            chunk_ids TEXT NOT NULL DEFAULT '[]',
            topic TEXT NOT NULL DEFAULT '',
            meaning REAL,
            created_at TEXT NOT NULL,
            UNIQUE (kind, question)
        );
        CREATE INDEX eval_probes_parent ON eval_probes(parent_id);
        CREATE TABLE eval_answers (
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            probe_id INTEGER NOT NULL REFERENCES eval_probes(id) ON DELETE CASCADE,
            model TEXT NOT NULL,
            answer TEXT NOT NULL,
            flags TEXT NOT NULL DEFAULT '[]',
            failures TEXT NOT NULL DEFAULT '[]',
            declined INTEGER NOT NULL DEFAULT 0,
            clarified INTEGER NOT NULL DEFAULT 0,
            copied INTEGER NOT NULL DEFAULT 0,
            copy_share REAL NOT NULL DEFAULT 0,
            agreement REAL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (run_id, probe_id)
        )
        """,
    ),
    # Embeddings of instructions for the optional embedding pass of dedup, per model and
    # sha256 of the normalized instruction, so a second pass asks the server nothing it was asked.
    Migration(
        "embedding_cache",
        """
        CREATE TABLE embeddings (
            model TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            dims INTEGER NOT NULL,
            vector BLOB NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (model, content_hash)
        )
        """,
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


def applied_migrations(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> list[AppliedMigration]:
    """The migrations applied to ``db``, in the order they were applied.

    A file from before migrations had names has no record: its first ``user_version``
    entries of ``migrations`` count as applied (``applied_at`` empty). Read-only.
    """
    has_table = db.read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,))
    if has_table:
        rows = db.read(f"SELECT name, applied_at FROM {MIGRATIONS_TABLE} ORDER BY rowid")
        return [AppliedMigration(r["name"], r["applied_at"]) for r in rows]
    return [AppliedMigration(m.name, "") for m in migrations[: db.schema_version]]


def pending_migrations(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> list[Migration]:
    """The migrations not yet applied to ``db``, in the order they will be applied. Read-only."""
    done = {m.name for m in applied_migrations(db, migrations)}
    return [m for m in migrations if m.name not in done]


def apply_migrations(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
    """Bring ``db`` up to date: apply each pending migration in order; returns the names applied.

    Each migration runs in one transaction with its record and the new ``user_version``: one
    that fails is rolled back and stays pending. Raises PairForgeError when the file was
    written by a newer PairForge (a migration this one does not know) or a migration fails.
    """
    _refuse_newer(db, migrations)
    recorded = _has_table(db)
    applied = applied_migrations(db, migrations)
    pending = pending_migrations(db, migrations)
    if not pending:
        if not recorded and applied and not db.read_only:
            # An upgraded file from before names: write down what it has. Nothing depends on it
            # yet (user_version says the same), so a file that cannot be written is left as it is.
            with suppress(PairForgeError):
                _record(db, applied)
        return []
    names: list[str] = []
    for migration in pending:
        try:
            with db.transaction() as conn:
                if not recorded:
                    _record(db, applied)
                    recorded = True
                for statement in migration.statements():
                    conn.execute(statement)
                conn.execute(
                    f"INSERT INTO {MIGRATIONS_TABLE}(name, applied_at) VALUES (?, ?)",
                    (migration.name, datetime.now(UTC).isoformat()),
                )
                conn.execute(f"PRAGMA user_version = {migrations.index(migration) + 1}")
        except PairForgeError as exc:
            raise PairForgeError(
                f"Upgrading {db.path} failed at migration {migration.name!r}: {exc} "
                "Nothing of that migration was kept; fix the cause and open the project again."
            ) from exc
        names.append(migration.name)
    return names


def _has_table(db: Database) -> bool:
    return bool(db.read("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (MIGRATIONS_TABLE,)))


def _record(db: Database, applied: Sequence[AppliedMigration]) -> None:
    """Create the record table and write ``applied`` into it (in one transaction, nested or not)."""
    with db.transaction() as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        now = datetime.now(UTC).isoformat()
        conn.executemany(
            f"INSERT OR IGNORE INTO {MIGRATIONS_TABLE}(name, applied_at) VALUES (?, ?)",
            [(m.name, m.applied_at or now) for m in applied],
        )


def _refuse_newer(db: Database, migrations: Sequence[Migration]) -> None:
    known = {m.name for m in migrations}
    unknown = [m.name for m in applied_migrations(db, migrations) if m.name not in known]
    version = db.schema_version
    if unknown or version > len(migrations):
        what = f"migration {unknown[0]!r}" if unknown else f"schema {version}"
        raise PairForgeError(
            f"{db.path} was written by a newer PairForge ({what}; this one knows {len(migrations)} "
            "migrations): upgrade pairforge to open it."
        )


__all__ = [
    "MIGRATIONS",
    "MIGRATIONS_TABLE",
    "SCHEMA_VERSION",
    "AppliedMigration",
    "Migration",
    "applied_migrations",
    "apply_migrations",
    "pending_migrations",
]
