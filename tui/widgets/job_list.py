"""A virtual list of the project's jobs: renders only the visible rows, fetched on demand.

A plan for 20-50 documents queues about 5,000 jobs and a large one 20,000; reloading them
all on every progress update stalled the Generate screen (284 ms at 5k, 1.28 s at 20k).
The list keeps the jobs' ids and a small cache of light rows for what is on screen; a
progress update forgets and redraws only the rows of the jobs that changed.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from engine.store import Store
from tui.safe_text import one_line
from tui.widgets.pair_list import RowCache

# Rows fetched beyond the visible window so small scrolls need no query.
PREFETCH = 40
ROW_CACHE_SIZE = 1000
HEADER = f"{'job':>7} {'status':<9} {'kind':<13} {'mode':<10} {'host':<24} reason"


class JobList(ScrollView, can_focus=True, inherit_bindings=False):
    """Queued, running, done and failed jobs with their reason, oldest first."""

    BINDINGS = [
        Binding("up", "move(-1)", "Up", show=False, id="jobs_up"),
        Binding("down", "move(1)", "Down", show=False, id="jobs_down"),
        Binding("pageup", "page(-1)", "Page up", show=False, id="jobs_page_up"),
        Binding("pagedown", "page(1)", "Page down", show=False, id="jobs_page_down"),
        Binding("home", "edge(0)", "First job", show=False, id="jobs_first"),
        Binding("end", "edge(1)", "Last job", show=False, id="jobs_last"),
    ]
    COMPONENT_CLASSES = {"job-list--cursor", "job-list--header", "job-list--failed", "job-list--running"}

    #: The job under the cursor; its watcher keeps it in view and redraws the two lines it changes.
    cursor: reactive[int] = reactive(0, repaint=False, init=False)

    def __init__(self, store: Store | None = None, *, task: str | None = None, id: str | None = None) -> None:
        """A list of the jobs of ``task`` ("generate", "judge", ...), or of every task when None."""
        super().__init__(id=id)
        self.store = store
        self.job_task = task
        self.ids: list[int] = []
        self._rows = RowCache(ROW_CACHE_SIZE)

    # ------------------------------------------------------------------ data

    def refresh_from(self, store: Store) -> None:
        """Re-read the job ids (after a plan is saved or a run ends) and redraw.

        The view moves to the first job not yet finished, where a run is working.
        """
        self.store = store
        self.ids = store.job_ids(self.job_task)
        self._rows.clear()
        # One line of column titles, then one line per job.
        self.virtual_size = Size(0, len(self.ids) + 1)
        pending = (store.list_jobs(status="running", task=self.job_task, limit=1)
                   or store.list_jobs(status="queued", task=self.job_task, limit=1))
        target = self.ids.index(pending[0].id) if pending and pending[0].id in self.ids else len(self.ids) - 1
        self.move_to(max(target, 0))
        self.refresh()

    def jobs_changed(self, job_ids: Iterable[int]) -> None:
        """Forget the rows of changed jobs and redraw only the lines showing them."""
        top = int(self.scroll_offset.y)
        visible = set(self.ids[top : top + max(self.size.height - 1, 0)])
        for job_id in job_ids:
            self._rows.forget(job_id)
            if job_id in visible:
                self.refresh(Region(0, self.ids.index(job_id) + 1 - top, self.size.width, 1))

    def _row(self, index: int) -> dict[str, object] | None:
        job_id = self.ids[index]
        row = self._rows.get(job_id)
        if row is None and self.store is not None:
            top = int(self.scroll_offset.y)
            start = max(min(top, index) - PREFETCH, 0)
            stop = min(max(top + self.size.height, index + 1) + PREFETCH, len(self.ids))
            self._rows.put_many(self.store.job_rows(self.ids[start:stop]))
            row = self._rows.get(job_id)
        return row

    # ------------------------------------------------------------------ rendering

    def render_line(self, y: int) -> Strip:
        """One line: the column titles on top, then a job (Line API: only visible lines render)."""
        width = self.size.width
        base = self.rich_style
        if y == 0:
            header = base + self.get_component_rich_style("job-list--header", partial=True)
            return Strip([Segment(HEADER[:width].ljust(width), header)], width)
        index = int(self.scroll_offset.y) + y - 1
        if index >= len(self.ids):
            return Strip.blank(width, base)  # the counts line above says what to do next
        row = self._row(index)
        if row is None:
            return Strip.blank(width, base)
        status = str(row["status"])
        head = (
            f"{row['id']:>7} {status:<9} {str(row['kind'])[:13]:<13} {str(row['mode'])[:10]:<10} "
            f"{str(row['host'] or '')[:24]:<24} "
        )
        text = head + one_line(str(row["error"] or ""), max(width - len(head), 0))
        style: Style = base
        if status in ("failed", "running"):
            style += self.get_component_rich_style(f"job-list--{status}", partial=True)
        if index == self.cursor and self.has_focus:
            style += self.get_component_rich_style("job-list--cursor")
        return Strip([Segment(text.ljust(width), style)], width).crop(0, width)

    # ------------------------------------------------------------------ cursor

    def move_to(self, index: int) -> None:
        """Put the cursor on job ``index`` (clamped) and keep it in view."""
        if not self.ids:
            self.cursor = 0
            return
        self.cursor = max(0, min(index, len(self.ids) - 1))

    def watch_cursor(self, old: int, new: int) -> None:
        # The line above the job sits under the column titles, so it is kept in view too.
        self.scroll_to_region(Region(0, new, 1, 2), animate=False, immediate=True, force=True)
        for changed in (old, new):
            self.refresh(Region(0, changed + 1 - int(self.scroll_offset.y), self.size.width, 1))

    def action_move(self, delta: int) -> None:
        self.move_to(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self.move_to(self.cursor + direction * max(self.size.height - 2, 1))

    def action_edge(self, end: int) -> None:
        self.move_to(len(self.ids) - 1 if end else 0)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()


__all__ = ["JobList"]
