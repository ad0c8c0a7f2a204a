"""The project store: a database core and one repository per noun, behind the ``Store`` facade.

- ``database``: connections, pooled readers, savepoint-nested transactions, listeners told
  after the outermost commit.
- ``migrations``: named schema migrations applied in order.
- ``documents`` (and chunks), ``pairs`` (and revisions), ``jobs`` (and runs), ``log``,
  ``verdicts``, ``meta``, ``review_samples``, ``embeddings``: one repository each.
- ``project``: ``Store``, a project folder's settings plus all of the above.

SQLite in WAL mode. Every write is a transaction, so anything shown as saved survives
``kill -9``; readers in other processes keep working while one process writes.
"""

from __future__ import annotations

from engine.models import PairKind
from engine.store.changes import PairChange, PairListener
from engine.store.database import Database
from engine.store.jobs import JOB_LEASE_S
from engine.store.migrations import MIGRATIONS, SCHEMA_VERSION, Migration
from engine.store.pairs import PairFilter
from engine.store.project import DB_FILE, Store

__all__ = [
    "DB_FILE",
    "JOB_LEASE_S",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Database",
    "Migration",
    "PairChange",
    "PairFilter",
    "PairKind",
    "PairListener",
    "Store",
]
