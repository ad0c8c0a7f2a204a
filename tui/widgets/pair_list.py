"""A virtual list of pairs: renders only the visible rows, fetched from the store on demand.

It keeps the ids of the matching pairs (the cheap index ``store.pair_ids`` gives) and a
small cache of light rows for what is on screen; the store stays the only copy of a pair.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
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


class PairList(ScrollView, can_focus=True):
    """The pairs matching a filter, one line each: status, kind, mode, warnings, first line."""

    BINDINGS = [
        Binding("j,down", "cursor_down", "Down", id="list_down", tooltip="Move to the next pair.", show=False),
        Binding("k,up", "cursor_up", "Up", id="list_up", tooltip="Move to the previous pair.", show=False),
        Binding("pagedown", "page_down", "Page down", id="list_page_down", tooltip="Move one screen down.", show=False),
        Binding("pageup", "page_up", "Page up", id="list_page_up", tooltip="Move one screen up.", show=False),
        Binding("home,g", "first", "First", id="list_first", tooltip="Go to the first pair.", show=False),
        Binding("end,G", "last", "Last", id="list_last", tooltip="Go to the last pair.", show=False),
    ]

    COMPONENT_CLASSES = {
        "pair-list--cursor", "pair-list--accepted", "pair-list--rejected",
        "pair-list--warning", "pair-list--marked",
    }

    cursor: reactive[int] = reactive(0, always_update=True, init=False)

    class Highlighted(Message):
        """The cursor moved to another pair (None when the list is empty)."""

        def __init__(self, pair_id: int | None) -> None:
            super().__init__()
            self.pair_id = pair_id

    def __init__(self, store: Store, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store
        self.pair_filter = PairFilter()
        self.ids: list[int] = []
        self.marked: set[int] = set()
        # Ids with a near duplicate, filled in once the duplicate index is built.
        self.duplicate_ids: set[int] = set()
        self._rows: dict[int, dict[str, Any]] = {}

    # ------------------------------------------------------------------ data

    def load(self, pair_filter: PairFilter | None = None, *, keep_pair: int | None = None) -> None:
        """Query the ids matching ``pair_filter`` (or the current filter) and redraw."""
        if pair_filter is not None:
            self.pair_filter = pair_filter
        self.ids = self.store.pair_ids(self.pair_filter)
        self._rows.clear()
        self.marked &= set(self.ids)
        self.virtual_size = Size(self.size.width, len(self.ids))
        index = 0
        if keep_pair is not None:
            index = self._index_near(keep_pair)
        self._move_to(min(index, max(len(self.ids) - 1, 0)), force=True)
        self.refresh()

    def _index_near(self, pair_id: int) -> int:
        # Ids are sorted, so a deleted pair's neighbour is found by bisection.
        from bisect import bisect_left

        return min(bisect_left(self.ids, pair_id), max(len(self.ids) - 1, 0))

    def refresh_rows(self, pair_ids: Sequence[int]) -> None:
        """Forget cached rows of changed pairs and redraw the lines showing them."""
        for pair_id in pair_ids:
            self._rows.pop(pair_id, None)
        self.refresh()

    def lists_all(self, pair_ids: Sequence[int]) -> bool:
        """Whether every one of ``pair_ids`` is already in the list."""
        from bisect import bisect_left

        for pair_id in pair_ids:
            at = bisect_left(self.ids, pair_id)
            if at >= len(self.ids) or self.ids[at] != pair_id:
                return False
        return True

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
            if len(self._rows) > 2000:
                self._rows.clear()
            for fetched in self.store.pair_rows(self.ids[start:stop]):
                self._rows[fetched["id"]] = fetched
            row = self._rows.get(pair_id)
        return row

    # ------------------------------------------------------------------ rendering

    def render_line(self, y: int) -> Strip:
        """One row of the list (Line API: only visible rows are ever rendered)."""
        index = int(self.scroll_offset.y) + y
        width = self.size.width
        base = self.rich_style
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
        if row["status"] == "accepted":
            style += self.get_component_rich_style("pair-list--accepted")
        elif row["status"] == "rejected":
            style += self.get_component_rich_style("pair-list--rejected")
        if pair_id in self.marked:
            style += self.get_component_rich_style("pair-list--marked")
        if index == self.cursor:
            style += self.get_component_rich_style("pair-list--cursor")
        segments = [Segment(head, style)]
        body = text[len(head):]
        segments.append(Segment(body.ljust(max(width - len(head), 0)), style + Style(bold=False)))
        if row["n_warnings"]:
            warn_style = style + self.get_component_rich_style("pair-list--warning", partial=True)
            start = head.index(warn)
            segments = [
                Segment(head[:start], style), Segment(warn, warn_style), Segment(head[start + len(warn):], style),
                segments[1],
            ]
        return Strip(segments, width).crop(0, width)

    # ------------------------------------------------------------------ cursor

    def _move_to(self, index: int, *, force: bool = False) -> None:
        if not self.ids:
            self.cursor = 0
            self.post_message(self.Highlighted(None))
            return
        index = max(0, min(index, len(self.ids) - 1))
        old = self.cursor
        if index == old and not force:
            return
        self.cursor = index
        self.scroll_to_region(Region(0, index, 1, 1), animate=False, immediate=True, force=True)
        self._refresh_index(old)
        self._refresh_index(index)
        self.post_message(self.Highlighted(self.ids[index]))

    def _refresh_index(self, index: int) -> None:
        # Only the two changed lines are redrawn: cheap over slow SSH links.
        y = index - int(self.scroll_offset.y)
        if 0 <= y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    def move_to_pair(self, pair_id: int) -> None:
        """Put the cursor on ``pair_id`` if it is in the list."""
        if pair_id in self.ids:
            self._move_to(self.ids.index(pair_id))

    def action_cursor_down(self) -> None:
        """Move the cursor one pair down."""
        self._move_to(self.cursor + 1)

    def action_cursor_up(self) -> None:
        """Move the cursor one pair up."""
        self._move_to(self.cursor - 1)

    def action_page_down(self) -> None:
        """Move the cursor one screen down."""
        self._move_to(self.cursor + max(self.size.height - 1, 1))

    def action_page_up(self) -> None:
        """Move the cursor one screen up."""
        self._move_to(self.cursor - max(self.size.height - 1, 1))

    def action_first(self) -> None:
        """Go to the first pair."""
        self._move_to(0)

    def action_last(self) -> None:
        """Go to the last pair."""
        self._move_to(len(self.ids) - 1)

    def toggle_mark(self) -> None:
        """Mark or unmark the pair under the cursor and move on."""
        pair_id = self.current_id
        if pair_id is None:
            return
        self.marked ^= {pair_id}
        self._refresh_index(self.cursor)
        self.action_cursor_down()

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.ids))

    def on_click(self, event: Any) -> None:
        self._move_to(int(self.scroll_offset.y) + event.y)


__all__ = ["PairList"]
