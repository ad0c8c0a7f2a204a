"""The generation jobs of the project, newest last, refreshed from the store."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from engine.store import Store
from tui.safe_text import one_line

# Only the latest jobs are shown; the store keeps every one.
VISIBLE_JOBS = 200


class JobList(DataTable[str | Text]):
    """Queued, running, done and failed jobs with their reason."""

    def on_mount(self) -> None:
        self.cursor_type = "row"
        self.add_columns("job", "status", "kind", "mode", "host", "reason")

    def refresh_from(self, store: Store) -> None:
        """Reload the latest jobs."""
        jobs = store.list_jobs()[-VISIBLE_JOBS:]
        self.clear()
        for job in jobs:
            self.add_row(
                str(job.id), str(job.status), str(job.kind), job.mode, job.host or "",
                Text(one_line(job.error, 60)), key=str(job.id),
            )


__all__ = ["JobList"]
