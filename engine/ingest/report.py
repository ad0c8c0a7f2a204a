"""What an import did: the report returned to callers and the progress sent while it runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ImportProgress:
    """Where a running import is: files and bytes done out of the total, and the current file."""

    done_files: int
    total_files: int
    done_bytes: int
    total_bytes: int
    current: str


@dataclass(frozen=True)
class FileProblem:
    """A file that was skipped or failed, and the one-sentence reason."""

    path: str
    reason: str


@dataclass(frozen=True)
class BoilerplateDropped:
    """Boilerplate left out of one document's chunks: how many lines, and the distinct texts."""

    path: str
    lines: int
    texts: list[str]


@dataclass
class ImportReport:
    """Everything one import decided; ``imported``/``unchanged``/``replaced``/``rechunked`` hold document paths.

    ``rechunked`` are unchanged earlier pages chunked again because what the project's
    pages share (their boilerplate) changed with this import.
    """

    imported: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    rechunked: list[str] = field(default_factory=list)
    skipped: list[FileProblem] = field(default_factory=list)
    failed: list[FileProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    boilerplate: list[BoilerplateDropped] = field(default_factory=list)
    chunks: int = 0
    pairs_imported: int = 0
    stale_pairs: int = 0
    new_pair_ids: list[int] = field(default_factory=list)
    bytes_read: int = 0

    @property
    def nothing_imported(self) -> bool:
        """True when no file was imported, replaced or found unchanged."""
        return not (self.imported or self.replaced or self.unchanged)

    @property
    def should_fail(self) -> bool:
        """True when nothing could be imported and something failed: the CLI exits non-zero."""
        return self.nothing_imported and bool(self.failed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view of the report."""
        data = asdict(self)
        data["ok"] = not self.should_fail
        return data
