"""A virtual list of pairs: renders only the visible rows, fetched from the store on demand.

It keeps the ids of the matching pairs (the cheap index ``store.pair_ids`` gives) and a
small cache of light rows for what is on screen; the store stays the only copy of a pair.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from engine.store import PairFilter, Store
from tui.safe_text import one_line

STATUS_MARK = {"pending": "·", "accepted": "✓", "rejected": "✗"}
KIND_SHORT = {
    "instruction": "instr", "multi_hop": "multi", "refusal": "refus", "thinking": "think",
    "clarification": "clar", "imported": "impor", "manual": "manua",
}
# Rows fetched beyond the visible window so small moves need no query.
PREFETCH = 40
# Light rows kept in memory: many screens' worth, a small fraction of a big project.
ROW_CACHE_SIZE = 2000


class RowCache:
    """Light pair rows by id, least recently used dropped first once ``capacity`` is reached."""

    def __init__(self, capacity: int = ROW_CACHE_SIZE) -> None:
        self.capacity = capacity
        self._rows: OrderedDict[int, dict[str, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, pair_id: object) -> bool:
        return pair_id in self._rows

    def get(self, pair_id: int) -> dict[str, Any] | None:
        """The cached row of ``pair_id`` (now the most recently used), or None."""
        row = self._rows.get(pair_id)
        if row is not None:
            self._rows.move_to_end(pair_id)
        return row

    def put_many(self, rows: Iterable[dict[str, Any]]) -> None:
        """Cache fetched rows (keyed by their ``id``), dropping the least recently used beyond capacity."""
        for row in rows:
            self._rows[row["id"]] = row
            self._rows.move_to_end(row["id"])
        while len(self._rows) > self.capacity:
            self._rows.popitem(last=False)

    def forget(self, pair_id: int) -> None:
        """Drop the row of ``pair_id`` (it changed in the store)."""
        self._rows.pop(pair_id, None)

    def clear(self) -> None:
        """Drop every row."""
        self._rows.clear()


class PairList(ScrollView, can_focus=True, inherit_bindings=False):
    """The pairs matching a filter, one line each: status, kind, mode, warnings, first line."""

    COMPONENT_CLASSES = {
        "pair-list--cursor", "pair-list--accepted", "pair-list--rejected",
        "pair-list--warning", "pair-list--marked",
    }

    #: The row under the cursor. Its watcher redraws only the line it left and the line it
    #: reached (cheap over slow SSH links), so nothing else repaints the list on a move.
    cursor: reactive[int] = reactive(0, repaint=False, init=False)

    class Highlighted(Message):
        """The cursor moved to another pair (None when the list is empty)."""

        def __init__(self, pair_id: int | None) -> None:
            super().__init__()
            self.pair_id = pair_id

    def __init__(self, store: Store, *, id: str | None = None, cache_size: int = ROW_CACHE_SIZE) -> None:
        super().__init__(id=id)
        self.store = store
        self.pair_filter = PairFilter()
        self.ids: list[int] = []
        self.marked: set[int] = set()
        # Ids with a near duplicate, filled in once the duplicate index is built.
        self.duplicate_ids: set[int] = set()
        self._rows = RowCache(cache_size)
        self._styles: dict[str, Style] = {}

    # ------------------------------------------------------------------ data

    def load(self, pair_filter: PairFilter | None = None, *, keep_pair: int | None = None) -> None:
        """Query the ids matching ``pair_filter`` (or the current filter) and redraw."""
        if pair_filter is not None:
            self.pair_filter = pair_filter
        self.ids = self.store.pair_ids(self.pair_filter)
        self._rows.clear()
        self.marked &= set(self.ids)
        self.virtual_size = Size(0, len(self.ids))
        index = 0
        if keep_pair is not None:
            index = self._index_near(keep_pair)
        self.move_to(index, force=True)
        self.refresh()

    def _index_near(self, pair_id: int) -> int:
        # Ids are sorted, so a deleted pair's neighbour is found by bisection.
        return min(bisect_left(self.ids, pair_id), max(len(self.ids) - 1, 0))

    def refresh_rows(self, pair_ids: Sequence[int]) -> None:
        """Forget cached rows of changed pairs and redraw the lines showing them."""
        for pair_id in pair_ids:
            self._rows.forget(pair_id)
        self.refresh()

    def append_ids(self, pair_ids: Sequence[int]) -> None:
        """Add pairs after the last listed one (their ids are larger than every listed id)."""
        if not pair_ids:
            return
        was_empty = not self.ids
        self.ids.extend(pair_ids)
        self.virtual_size = Size(0, len(self.ids))
        if was_empty:
            self.move_to(0, force=True)
        self.refresh()

    @property
    def current_id(self) -> int | None:
        """The id of the pair under the cursor."""
        if 0 <= self.cursor < len(self.ids):
            return self.ids[self.cursor]
        return None

    def _row(self, index: int) -> dict[str, Any] | None:
        pair_id = self.ids[index]
        row = self._rows.get(pair_id)
        if row is None:
            # One query fills the whole visible window plus a margin.
            start = max(int(self.scroll_offset.y) - PREFETCH, 0, min(index, len(self.ids)) - PREFETCH)
            stop = min(max(int(self.scroll_offset.y) + self.size.height, index + 1) + PREFETCH, len(self.ids))
            self._rows.put_many(self.store.pair_rows(self.ids[start:stop]))
            row = self._rows.get(pair_id)
        return row

    # ------------------------------------------------------------------ rendering

    def _lookup_styles(self) -> dict[str, Style]:
        return {"base": self.rich_style, **{
            name: self.get_component_rich_style(f"pair-list--{name}", partial=name == "warning")
            for name in ("accepted", "rejected", "marked", "cursor", "warning")
        }}

    def render_lines(self, crop: Region) -> list[Strip]:
        # Styles are looked up once per frame, not once per row.
        self._styles = self._lookup_styles()
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        """One row of the list (Line API: only visible rows are ever rendered)."""
        index = int(self.scroll_offset.y) + y
        width = self.size.width
        styles = self._styles or self._lookup_styles()
        base = styles["base"]
        if index >= len(self.ids):
            if not self.ids and y == 0:
                return Strip([Segment(" No pairs match. Press f to change the filter.".ljust(width), base)])
            return Strip.blank(width, base)
        row = self._row(index)
        if row is None:
            return Strip.blank(width, base)
        pair_id = row["id"]
        mark = "●" if pair_id in self.marked else " "
        warn = f"!{row['n_warnings']}" if row["n_warnings"] else "  "
        dup = "≈" if pair_id in self.duplicate_ids else " "
        head = f"{mark}{STATUS_MARK.get(row['status'], '?')} {pair_id:>6} {KIND_SHORT.get(row['kind'], row['kind'][:5]):<5} {row['mode'][:4]:<4} {warn:<3}{dup} "
        text = head + one_line(row["instruction"], max(width - len(head), 0))
        style = base
        if row["status"] in ("accepted", "rejected"):
            style += styles[row["status"]]
        if pair_id in self.marked:
            style += styles["marked"]
        if index == self.cursor:
            style += styles["cursor"]
        segments = [Segment(head, style)]
        body = text[len(head):]
        segments.append(Segment(body.ljust(max(width - len(head), 0)), style + Style(bold=False)))
        if row["n_warnings"]:
            warn_style = style + styles["warning"]
            start = head.index(warn)
            segments = [
                Segment(head[:start], style), Segment(warn, warn_style), Segment(head[start + len(warn):], style),
                segments[1],
            ]
        return Strip(segments, width).crop(0, width)

    # ------------------------------------------------------------------ cursor

    def move_to(self, index: int, *, force: bool = False, announce: bool = True) -> bool:
        """Put the cursor on row ``index`` (clamped); whether it moved.

        With ``announce`` a ``Highlighted`` message follows; a caller that updates its own view
        of the pair passes False and does so in the same handler, so one frame shows both.
        """
        if not self.ids:
            self.cursor = 0
            if announce:
                self.post_message(self.Highlighted(None))
            return force
        index = max(0, min(index, len(self.ids) - 1))
        old = self.cursor
        if index == old and not force:
            return False
        if index == old:
            self.watch_cursor(old, index)  # forced onto the same row: keep it in view and redraw it
        else:
            self.cursor = index
        if announce:
            self.post_message(self.Highlighted(self.ids[index]))
        return True

    def watch_cursor(self, old: int, new: int) -> None:
        self.scroll_to_region(Region(0, new, 1, 1), animate=False, immediate=True, force=True)
        self._refresh_index(old)
        self._refresh_index(new)

    def _refresh_index(self, index: int) -> None:
        # Only the two changed lines are redrawn: cheap over slow SSH links.
        y = index - int(self.scroll_offset.y)
        if 0 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def index_of(self, pair_id: int) -> int | None:
        """The row of ``pair_id``, or None if it is not listed (ids are sorted: a bisection)."""
        at = bisect_left(self.ids, pair_id)
        return at if at < len(self.ids) and self.ids[at] == pair_id else None

    def move_to_pair(self, pair_id: int, *, announce: bool = True) -> bool:
        """Put the cursor on ``pair_id`` if it is in the list; whether it moved."""
        index = self.index_of(pair_id)
        return index is not None and self.move_to(index, announce=announce)

    @property
    def page_size(self) -> int:
        """Rows one page-down moves."""
        return max(self.size.height - 1, 1)

    def toggle_mark(self) -> None:
        """Mark or unmark the pair under the cursor."""
        pair_id = self.current_id
        if pair_id is None:
            return
        self.marked ^= {pair_id}
        self._refresh_index(self.cursor)

    def on_resize(self) -> None:
        self.virtual_size = Size(0, len(self.ids))

    def on_click(self, event: events.Click) -> None:
        self.move_to(int(self.scroll_offset.y) + event.y)


__all__ = ["PairList", "RowCache"]
