"""Review: a virtual list of pairs, the selected pair beside its sources and near duplicates."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Label

from engine.errors import PairForgeError
from engine.models import Job, Pair, PairStatus
from engine.store import PairFilter, Store
from tui.dialogs import BulkActionScreen
from tui.messages import EngineFailed, ReviewVerdictChanged, RunDeepChecks
from tui.quality_figures import DeepFigures
from tui.quality_model import QualityModel
from tui.sections import Section, SectionPane
from tui.widgets.filter_bar import NEAR_DUPLICATE_CHECK, FilterBar
from tui.widgets.near_duplicates import DuplicateItem, NearDuplicateList
from tui.widgets.pair_detail import PairDetail
from tui.widgets.pair_list import PairList
from tui.widgets.source_view import SourceView
from tui.worker_errors import ReportsWorkerFailures

if TYPE_CHECKING:
    from engine.generate.backends import ChatBackend
    from engine.quality import LiveReport
    from engine.quality.review import ReviewVerdict
    from engine.repair import RepairOutcome

# Near duplicates of the pair under the cursor are looked up once it has rested this long.
DUPLICATE_LOOKUP_DELAY_S = 0.12
EDITOR_MARKER_RESPONSE = "### response (everything below this line)"


def describe_filter(flt: PairFilter) -> str:
    """A short human description of a filter."""
    parts = [f"{name}={value}" for name, value in (
        ("status", flt.status), ("kind", flt.kind), ("mode", flt.mode), ("warning", flt.warning),
        ("doc", flt.document_id), ("search", flt.search),
    ) if value is not None]
    if flt.ids is not None:
        parts.append(f"{len(flt.ids)} chosen pairs")
    return ", ".join(parts) or "all pairs"


class ReviewPane(SectionPane, ReportsWorkerFailures, Vertical):
    """Keyboard review: every key saves at once through the store.

    The quality model comes down from the App (near duplicates, groups, the review sample);
    asking for the cross-pair checks goes up as a ``RunDeepChecks`` message.
    """

    SECTION = Section("review", "Review", "Review", "Review pairs from the keyboard.")
    KEY_PARTS = (PairDetail, FilterBar, BulkActionScreen)

    BINDINGS = [
        # Moving is bound here, not on the list, so the list, title and detail change in one
        # handler and one frame shows them all.
        Binding("j,down", "cursor(1)", "Down", id="list_down", tooltip="Move to the next pair.", show=False),
        Binding("k,up", "cursor(-1)", "Up", id="list_up", tooltip="Move to the previous pair.", show=False),
        Binding("pagedown", "page(1)", "Page down", id="list_page_down", tooltip="Move one screen down.", show=False),
        Binding("pageup", "page(-1)", "Page up", id="list_page_up", tooltip="Move one screen up.", show=False),
        Binding("home,g", "first", "First", id="list_first", tooltip="Go to the first pair.", show=False),
        Binding("end,G", "last", "Last", id="list_last", tooltip="Go to the last pair.", show=False),
        Binding("a", "accept", "Accept", id="accept", tooltip="Accept this pair and move to the next."),
        Binding("r", "reject", "Reject", id="reject", tooltip="Reject this pair and move to the next."),
        Binding("e", "edit", "Edit", id="edit", tooltip="Edit the instruction and response in place."),
        Binding("E", "edit_external", "$EDITOR", id="edit_external", tooltip="Edit this pair in $EDITOR."),
        Binding("d", "delete", "Delete", id="delete", tooltip="Delete this pair (undo brings it back)."),
        Binding("u", "undo", "Undo", id="undo", tooltip="Undo the last change, even one from an earlier session."),
        Binding("U", "redo", "Redo", id="redo", tooltip="Redo the last undone change."),
        Binding("space", "mark", "Mark", id="mark", tooltip="Mark or unmark this pair for a bulk action."),
        Binding("b", "bulk", "Bulk", id="bulk", tooltip="Accept, reject or delete the marked pairs (or the whole filter)."),
        Binding("n", "next_warning", "Next !", id="next_warning", tooltip="Go to the next pair with a warning."),
        Binding("N", "previous_warning", "Prev !", id="previous_warning", tooltip="Go to the previous pair with a warning."),
        Binding("slash", "search", "Search", id="search", tooltip="Search instructions and responses."),
        Binding("f", "filters", "Filter", id="filters", tooltip="Filter by status, kind, mode, warning, duplicates, document."),
        Binding("c", "clear_filter", "All", id="clear_filter", tooltip="Clear the filter and show every pair."),
        Binding("R", "regenerate", "Regenerate", id="regenerate", tooltip="Queue a job to regenerate this pair from its sources."),
        Binding("F", "repair", "Fix", id="repair", tooltip="Have the generation model fix this pair's warnings; a repair is kept only when it is better (u undoes it)."),
        Binding("s", "sample", "Sample", id="sample", tooltip="Show the 20-pair review sample (drawn once, kept across sessions)."),
        Binding("S", "new_sample", "New sample", id="new_sample", tooltip="Draw a new 20-pair review sample (logged); the last one stays in the history.", show=False),
        Binding("p", "review_verdict('pass')", "Pass", id="review_pass", tooltip="Mark this pair of the review sample as passing (again clears it).", show=False),
        Binding("x", "review_verdict('fail')", "Fail", id="review_fail", tooltip="Mark this pair of the review sample as failing (again clears it).", show=False),
        Binding("D", "index_duplicates", "Index dups", id="index_duplicates", tooltip="Build the near-duplicate index now (automatic on smaller projects).", show=False),
    ]

    class DuplicatesFound(Message):
        """Near duplicates of ``pair_id`` (or why they cannot be shown)."""

        def __init__(self, pair_id: int, items: list[DuplicateItem], reason: str = "") -> None:
            super().__init__()
            self.pair_id = pair_id
            self.items = items
            self.reason = reason

    class RepairDone(Message):
        """A repair run ended: what it did to each pair, and its one-line summary."""

        def __init__(self, ids: list[int], outcomes: list[RepairOutcome], summary: str) -> None:
            super().__init__()
            self.ids = ids
            self.outcomes = outcomes
            self.summary = summary

    def __init__(self, store: Store, quality: QualityModel, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.repairing = False
        self.store = store
        self.quality = quality
        # Near duplicates are looked up once the cursor rests (this timer), so holding j starts no work.
        self._lookup_timer: Timer | None = None
        # "Has near duplicates" asked for before the groups were known: applied once they are.
        self._pending_duplicate_filter: PairFilter | None = None
        # The review sample's verdict and each pair's mark, read from the store when they change,
        # so the title shows them without a query per key.
        self._review: ReviewVerdict | None = None
        self._marks: dict[int, str | None] = {}

    @classmethod
    def for_project(cls, store: Store, quality: QualityModel) -> ReviewPane:
        """The Review pane over ``store``, showing ``quality`` (near duplicates, groups, the sample)."""
        return cls(store, quality, id=cls.SECTION.name)

    def compose(self) -> ComposeResult:
        yield Label("", id="review-title")
        yield FilterBar(self.store, id="filter-bar")
        yield PairList(self.store, id="pair-list")
        with Horizontal(id="review-bottom"):
            yield PairDetail(id="pair-detail")
            with Vertical(id="review-side"):
                yield Label("Sources", classes="detail-heading")
                yield SourceView(id="source-view")
                yield Label("Near duplicates", classes="detail-heading")
                yield NearDuplicateList(id="near-duplicates")

    def on_mount(self) -> None:
        self.pair_list.load()
        self._update_title()

    @property
    def pair_list(self) -> PairList:
        return self.query_one(PairList)

    @property
    def detail(self) -> PairDetail:
        return self.query_one(PairDetail)

    def _update_title(self) -> None:
        lst = self.pair_list
        marks = f" · {len(lst.marked)} marked" if lst.marked else ""
        where = f"{lst.cursor + 1}/{len(lst.ids)}" if lst.ids else "0/0"
        what = describe_filter(lst.pair_filter)
        if self._showing_sample():
            assert self._review is not None
            mark = self._marks.get(lst.current_id or 0) or "not reviewed"
            what, where = "review sample", f"{where} {mark} · {self._review.message}"
        # The title's size is fixed in CSS, so no relayout of the screen on every key.
        self.query_one("#review-title", Label).update(Text(f"Review · {what} · {where}{marks}"), layout=False)

    def _showing_sample(self) -> bool:
        ids = self.pair_list.pair_filter.ids
        return self._review is not None and ids is not None and list(ids) == self._review.pair_ids

    def _review_changed(self, verdict: ReviewVerdict) -> None:
        """Keep the sample's verdict and marks for the title, and tell the App the panel's line is out of date."""
        self._review = verdict
        sample = self.store.review_samples.current()
        self._marks = dict(sample.pairs) if sample else {}
        self.post_message(ReviewVerdictChanged())

    def show_filter(self, flt: PairFilter, label: str | None = None) -> None:
        """List the pairs matching ``flt``."""
        if flt.warning == NEAR_DUPLICATE_CHECK:
            deep = self.quality.deep
            if deep.state == "done":
                self._load_duplicate_filter(flt, deep)
            else:
                self._pending_duplicate_filter = flt
                self.notify("Finding near-duplicate groups; the list follows when they are known.")
                self.post_message(RunDeepChecks())
            return
        self.pair_list.load(flt)
        self.query_one(FilterBar).set_filter(flt)
        self._update_title()

    def refresh_after_change(self, pair_ids: list[int]) -> None:
        """Pairs changed elsewhere (generation, undo): re-query the list and the detail."""
        lst = self.pair_list
        if pair_ids and lst.pair_filter == PairFilter() and self._update_in_place(sorted(set(pair_ids))):
            return
        lst.load(keep_pair=lst.current_id)
        self._update_title()

    def _update_in_place(self, pair_ids: list[int]) -> bool:
        """Under no filter, follow edits and appended pairs without re-querying every id; whether it could."""
        lst = self.pair_list
        listed = [i for i in pair_ids if lst.index_of(i) is not None]
        new = [i for i in pair_ids if lst.index_of(i) is None]
        if listed and len(self.store.pair_ids(PairFilter(ids=listed))) < len(listed):
            return False  # a listed pair was deleted
        if new and lst.ids and new[0] < lst.ids[-1]:
            return False  # a pair came back among the listed ones (an undone delete)
        # Edited rows are redrawn; pairs added after every listed one (generation) are appended.
        lst.append_ids(self.store.pair_ids(PairFilter(ids=new)) if new else [])
        lst.refresh_rows(listed)
        self._update_title()
        return True

    # ------------------------------------------------------------------ selection

    def on_pair_list_highlighted(self, event: PairList.Highlighted) -> None:
        event.stop()
        if event.pair_id != self.pair_list.current_id:
            return  # the cursor moved on meanwhile: only the pair it rests on is loaded
        self._cursor_moved()

    def _cursor_moved(self) -> None:
        self._update_title()
        self._show_pair(self.pair_list.current_id)

    def _go(self, index: int) -> None:
        if self.pair_list.move_to(index, announce=False):
            self._cursor_moved()

    def action_cursor(self, step: int) -> None:
        """Move the cursor ``step`` pairs down (up when negative)."""
        self._go(self.pair_list.cursor + step)

    def action_page(self, pages: int) -> None:
        """Move the cursor ``pages`` screens down (up when negative)."""
        self._go(self.pair_list.cursor + pages * self.pair_list.page_size)

    def action_first(self) -> None:
        """Go to the first pair."""
        self._go(0)

    def action_last(self) -> None:
        """Go to the last pair."""
        self._go(len(self.pair_list.ids) - 1)

    def go_to_pair(self, pair_id: int) -> None:
        """Put the cursor on ``pair_id`` if it is listed."""
        if self.pair_list.move_to_pair(pair_id, announce=False):
            self._cursor_moved()

    def action_index_duplicates(self) -> None:
        """Build the near-duplicate index (in the background) and show the current pair's duplicates."""
        self.query_one(NearDuplicateList).show_unavailable("Indexing pairs for near duplicates…")
        self.post_message(RunDeepChecks())

    def _show_pair(self, pair_id: int | None) -> None:
        pair: Pair | None = None
        if pair_id is not None:
            try:
                pair = self.store.get_pair(pair_id)
            except PairForgeError:
                pair = None
        self.detail.show_pair(pair)
        if pair is None:
            self.query_one(SourceView).show_chunks([], {})
            self.query_one(NearDuplicateList).show_duplicates([], changed_style="")
            return
        copied: dict[int, list[tuple[int, int]]] = {}
        for warning in pair.warnings:
            for span in warning.spans or ():
                if span.chunk_id is not None and span.source_start is not None and span.source_end is not None:
                    copied.setdefault(span.chunk_id, []).append((span.source_start, span.source_end))
        # An imported pair has no sources of its own: show the chunks it copies from, if any.
        shown = pair.sources or sorted(copied)
        chunks = self.store.get_chunks(shown) if shown else []
        titles: dict[int, str] = {}
        if chunks:
            titles = {
                d.id or 0: d.title or Path(d.path).name
                for d in (self.store.get_document(i) for i in {c.document_id or 0 for c in chunks})
            }
        self.query_one(SourceView).show_chunks(chunks, titles, copied)
        self._look_up_duplicates(pair)

    @property
    def looking_up_duplicates(self) -> bool:
        """Whether a near-duplicate lookup is waiting for the cursor to rest."""
        return self._lookup_timer is not None

    def _look_up_duplicates(self, pair: Pair) -> None:
        if self._lookup_timer is not None:
            self._lookup_timer.stop()
            self._lookup_timer = None
        near = self.query_one(NearDuplicateList)
        if self.quality.report is None:
            near.show_unavailable("Near duplicates appear once the quality report is built.")
        elif not self.quality.near_duplicates_available():
            near.show_unavailable("Press D to index this large project for near duplicates.")
        else:
            self._lookup_timer = self.set_timer(DUPLICATE_LOOKUP_DELAY_S, partial(self._start_lookup, pair))

    def _start_lookup(self, pair: Pair) -> None:
        self._lookup_timer = None
        if (report := self.quality.report) is not None:
            self._find_duplicates(pair, report)

    def duplicates_checked(self, deep: DeepFigures | None) -> None:
        """Lookups became possible (``None``) or the near-duplicate groups were found."""
        if deep is not None and deep.state == "done":
            self.pair_list.duplicate_ids = deep.duplicate_ids
            self.pair_list.refresh()
            if self._pending_duplicate_filter is not None:
                flt, self._pending_duplicate_filter = self._pending_duplicate_filter, None
                self._load_duplicate_filter(flt, deep)
        elif deep is not None and deep.state == "failed":
            self._pending_duplicate_filter = None
        if (pair_id := self.pair_list.current_id) is not None:
            with contextlib.suppress(PairForgeError):
                self._look_up_duplicates(self.store.get_pair(pair_id))

    def _load_duplicate_filter(self, flt: PairFilter, deep: DeepFigures) -> None:
        self.pair_list.load(replace(flt, warning=None, ids=sorted(deep.duplicate_ids)))
        self.query_one(FilterBar).set_filter(flt)
        self._update_title()

    @work(thread=True, exclusive=True, group="near-duplicates", exit_on_error=False)
    def _find_duplicates(self, pair: Pair, report: LiveReport) -> None:
        """Look up near duplicates off the UI thread (the report builds its index once, on first use)."""
        from engine.quality import diff_words

        try:
            found = report.similar_to(pair, 5)
            others = {p.id: p for p in self.store.get_pairs([s.pair_id for s in found])}
            items: list[DuplicateItem] = []
            for similar in found:
                other = others.get(similar.pair_id)
                if other is None:
                    continue
                mine = pair.response if similar.field == "response" else pair.instruction
                theirs = other.response if similar.field == "response" else other.instruction
                items.append((similar, diff_words(mine, theirs)))
        except PairForgeError as exc:
            self.post_message(EngineFailed(str(exc), where="near duplicates"))
            return
        self.post_message(self.DuplicatesFound(pair.id or 0, items))

    def on_review_pane_duplicates_found(self, event: DuplicatesFound) -> None:
        event.stop()
        if event.pair_id != self.pair_list.current_id:
            return  # the cursor moved on meanwhile
        widget = self.query_one(NearDuplicateList)
        if event.reason:
            widget.show_unavailable(event.reason)
        else:
            widget.show_duplicates(event.items, changed_style="bold reverse")

    # ------------------------------------------------------------------ actions

    def _act(self, change: str, ids: list[int], *, advance: bool = True) -> None:
        try:
            if change == "delete":
                count = self.store.delete_pairs(ids)
            else:
                count = self.store.set_status(ids, PairStatus(change))
        except PairForgeError as exc:
            self.post_message(EngineFailed(str(exc), where="review"))
            return
        lst = self.pair_list
        if change == "delete" or lst.pair_filter.status is not None:
            # The pair left the filter: re-query; the cursor lands on the next pair.
            lst.load(keep_pair=lst.current_id)
        else:
            lst.refresh_rows(ids)
            if advance and len(ids) == 1:
                if lst.cursor < len(lst.ids) - 1:
                    self.action_cursor(1)
                else:
                    self._show_pair(lst.current_id)
        self._update_title()
        if count and len(ids) > 1:
            self.notify(f"{count} pair(s): {change}. Press u to undo.")

    def action_accept(self) -> None:
        """Accept the pair under the cursor."""
        if (pair_id := self.pair_list.current_id) is not None:
            self._act("accepted", [pair_id])

    def action_reject(self) -> None:
        """Reject the pair under the cursor."""
        if (pair_id := self.pair_list.current_id) is not None:
            self._act("rejected", [pair_id])

    def action_delete(self) -> None:
        """Delete the pair under the cursor."""
        if (pair_id := self.pair_list.current_id) is not None:
            self._act("delete", [pair_id])

    def _undo_redo(self, undo: bool) -> None:
        try:
            result = self.store.undo() if undo else self.store.redo()
        except PairForgeError as exc:
            self.post_message(EngineFailed(str(exc), where="undo"))
            return
        if result is None:
            self.notify("Nothing to undo." if undo else "Nothing to redo.")
            return
        action, ids = result
        lst = self.pair_list
        lst.load(keep_pair=ids[0] if ids else lst.current_id)
        if ids:
            lst.move_to_pair(ids[0], announce=False)
        self._show_pair(lst.current_id)
        self._update_title()
        self.notify(f"{'Undid' if undo else 'Redid'} {action} of {len(ids)} pair(s).")

    def action_undo(self) -> None:
        """Undo the last change (persisted, so it works after a restart)."""
        self._undo_redo(True)

    def action_redo(self) -> None:
        """Redo the last undone change."""
        self._undo_redo(False)

    def action_mark(self) -> None:
        """Mark or unmark the pair under the cursor and move on."""
        self.pair_list.toggle_mark()
        self._update_title()
        self.action_cursor(1)

    def action_bulk(self) -> None:
        """Ask which bulk action to apply to the marks (or the whole filter), then apply it."""
        lst = self.pair_list
        ids = sorted(lst.marked) if lst.marked else list(lst.ids)
        if not ids:
            self.notify("No pairs to act on.")
            return
        scope = f"{len(ids)} marked pair(s)" if lst.marked else f"all {len(ids)} pair(s) in the filter ({describe_filter(lst.pair_filter)})"

        def apply(choice: str | None) -> None:
            if choice == "repair":
                lst.marked.clear()
                self._update_title()
                self._start_repair(ids)
            elif choice:
                lst.marked.clear()
                self._act(choice, ids, advance=False)

        self.app.push_screen(BulkActionScreen(scope), apply)

    def _jump_warning(self, step: int) -> None:
        lst = self.pair_list
        with_warning = self.store.pair_ids(PairFilter(**{**lst.pair_filter.__dict__, "warning": "any"}))
        if not with_warning:
            self.notify("No pair in this list has a warning.")
            return
        current = lst.current_id or 0
        candidates = [i for i in with_warning if (i > current if step > 0 else i < current)]
        if not candidates:
            self.notify("No more pairs with a warning in that direction.")
            return
        self.go_to_pair(candidates[0] if step > 0 else candidates[-1])

    def action_next_warning(self) -> None:
        """Go to the next pair with a warning."""
        self._jump_warning(1)

    def action_previous_warning(self) -> None:
        """Go to the previous pair with a warning."""
        self._jump_warning(-1)

    def action_filters(self) -> None:
        """Show the filter bar and focus it."""
        bar = self.query_one(FilterBar)
        bar.refresh_choices()
        bar.set_filter(self.pair_list.pair_filter)
        bar.add_class("-visible")
        bar.query_one("#f-status").focus()

    def action_search(self) -> None:
        """Focus the search box."""
        self.action_filters()
        self.query_one("#f-search").focus()

    def action_clear_filter(self) -> None:
        """Show every pair."""
        self.show_filter(PairFilter())

    def on_filter_bar_changed(self, event: FilterBar.Changed) -> None:
        event.stop()
        if event.pair_filter.warning == NEAR_DUPLICATE_CHECK:
            self.show_filter(event.pair_filter)
            return
        self.pair_list.load(event.pair_filter)
        self._update_title()

    def on_filter_bar_closed(self, event: FilterBar.Closed) -> None:
        event.stop()
        self.query_one(FilterBar).remove_class("-visible")
        self.pair_list.focus()

    def action_sample(self) -> None:
        """Show the review sample kept in the store (drawing the first one if there is none)."""
        # Imported on use: the quality package loads its detectors, which the first paint does not need.
        from engine.quality.review import current_or_new_sample

        try:
            verdict, drawn = current_or_new_sample(self.store)
        except PairForgeError as exc:
            self.post_message(EngineFailed(str(exc), where="review sample"))
            return
        self._show_sample(verdict, drawn)

    def action_new_sample(self) -> None:
        """Draw a new review sample (logged) and show it; the previous one stays in the store's history."""
        from engine.quality.review import draw_review_sample

        try:
            verdict = draw_review_sample(self.store)
        except PairForgeError as exc:
            self.post_message(EngineFailed(str(exc), where="review sample"))
            return
        self._show_sample(verdict, True)

    def _show_sample(self, verdict: ReviewVerdict, drawn: bool) -> None:
        self._review_changed(verdict)
        self.show_filter(PairFilter(ids=verdict.pair_ids), "review sample")
        if drawn:
            self.notify(f"Drew a new {verdict.size}-pair review sample (logged). Mark each pair p pass or x fail.")

    def action_review_verdict(self, verdict: str) -> None:
        """Mark the pair under the cursor pass or fail in the review sample (the same key again clears it), then move on."""
        from engine.quality.review import mark_review, review_verdict

        pair_id = self.pair_list.current_id
        if pair_id is None:
            return
        if self._review is None:
            self._review = review_verdict(self.store)
            sample = self.store.review_samples.current()
            self._marks = dict(sample.pairs) if sample else {}
        mark = None if self._marks.get(pair_id) == verdict else verdict
        try:
            result = mark_review(self.store, pair_id, mark)  # type: ignore[arg-type]
        except PairForgeError as exc:
            self.notify(str(exc), severity="warning", markup=False)
            return
        self._review_changed(result)
        lst = self.pair_list
        if mark is not None and lst.cursor < len(lst.ids) - 1:
            self.action_cursor(1)
        else:
            self._update_title()
        if result.status != "in progress":
            self.notify(f"Review sample: {result.message}.", severity="error" if result.status == "not ready" else "information")

    def action_regenerate(self) -> None:
        """Queue a generation job for this pair's chunks (run it from the Generate screen)."""
        pair_id = self.pair_list.current_id
        if pair_id is None:
            return
        try:
            pair = self.store.get_pair(pair_id)
            if not pair.sources and pair.kind.value != "refusal":
                self.notify("This pair has no source chunks to regenerate from.", severity="warning")
                return
            run_id, _ = self.store.create_run(
                "generate", {"regenerate": pair_id},
                [Job(kind=pair.kind, mode=pair.mode, chunk_ids=pair.sources, params={"replaces": pair_id})],
            )
        except PairForgeError as exc:
            self.post_message(EngineFailed(str(exc), where="regenerate"))
            return
        self.notify(f"Queued run {run_id} to regenerate pair #{pair_id}; start it on the Generate screen.")

    def action_repair(self) -> None:
        """Have the generation model fix the warnings of the pair under the cursor."""
        if (pair_id := self.pair_list.current_id) is not None:
            self._start_repair([pair_id])

    def _start_repair(self, ids: list[int]) -> None:
        """Queue a repair run for the flagged pairs among ``ids`` and run it in the background."""
        from engine.repair import plan_repair

        if self.repairing:
            self.notify("A repair is already running; its result follows.")
            return
        try:
            run_id = plan_repair(self.store, ids=ids, params={"apply": True, "from": "review"})
        except PairForgeError as exc:
            self.post_message(EngineFailed(str(exc), where="repair"))
            return
        if run_id is None:
            what = f"Pair #{ids[0]} carries" if len(ids) == 1 else "None of these pairs carries"
            self.notify(f"{what} no warning a repair can fix.")
            return
        self.repairing = True
        self.notify(f"Asking the model to fix {'pair #' + str(ids[0]) if len(ids) == 1 else f'{len(ids)} pairs'}…")
        self._run_repair(run_id, ids)

    @work(exclusive=True, group="repair", exit_on_error=False)
    async def _run_repair(self, run_id: int, ids: list[int]) -> None:
        """Run one repair run on the generation backends in the app's event loop; the result goes up as a message."""
        from engine.generate.hosts import backends_from_settings, close_backends
        from engine.repair import RepairHandler, repair_runner

        outcomes: list[RepairOutcome] = []
        summary = "The repair stopped with an error."
        backends: list[ChatBackend] = []
        try:
            backends = backends_from_settings(self.store.settings)
            runner = repair_runner(self.store, backends, apply=True, check_backends=True)
            result = await runner.run(run_id)
            assert isinstance(runner.handler, RepairHandler)
            outcomes = list(runner.handler.outcomes)
            summary = result.message
            result.raise_for_stop()
        except (PairForgeError, ValueError) as exc:
            self.post_message(EngineFailed(str(exc), where="repair"))
        finally:
            await close_backends(backends)
            self.post_message(self.RepairDone(ids, outcomes, summary))

    def on_review_pane_repair_done(self, event: RepairDone) -> None:
        event.stop()
        self.repairing = False
        lst = self.pair_list
        lst.load(keep_pair=lst.current_id)
        self._show_pair(lst.current_id)
        self._update_title()
        if len(event.outcomes) == 1:
            outcome = event.outcomes[0]
            tail = " Press u to undo." if outcome.applied else ""
            self.notify(
                f"Pair #{outcome.pair_id} {outcome.outcome}: {outcome.reason}{tail}",
                severity="information" if outcome.outcome == "repaired" else "warning",
            )
        elif event.outcomes:
            applied = sum(o.applied for o in event.outcomes)
            self.notify(f"{event.summary[:1].upper()}{event.summary[1:]}." + (
                f" Each of the {applied} repaired pair(s) is one undo step (u)." if applied else ""
            ))

    # ------------------------------------------------------------------ editing

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While a pair is edited in place, letters are text: no review key may act on them.
        return not (self.detail.editing and action in _REVIEW_ACTIONS)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # An edit in place keeps the keyboard until it is saved or cancelled.
        detail = self.detail
        if detail.editing and event.widget not in detail.query("TextArea"):
            detail.query_one("#response-editor").focus()

    def action_edit(self) -> None:
        """Edit the pair in place."""
        self.detail.start_editing()

    def on_pair_detail_edit_saved(self, event: PairDetail.EditSaved) -> None:
        event.stop()
        self._save_text(event.pair_id, event.instruction, event.response)
        self.pair_list.focus()

    def on_pair_detail_edit_cancelled(self, event: PairDetail.EditCancelled) -> None:
        event.stop()
        self.pair_list.focus()

    def _save_text(self, pair_id: int, instruction: str, response: str) -> None:
        try:
            pair = self.store.get_pair(pair_id)
            messages = []
            for message in pair.messages:
                if message.role.value == "user" and message.content == pair.instruction:
                    message = message.model_copy(update={"content": instruction})
                elif message.role.value == "assistant" and message.content == pair.response:
                    message = message.model_copy(update={"content": response})
                messages.append(message)
            saved = self.store.update_pair(pair.model_copy(update={"messages": messages}))
            self._recheck([pair_id])
        except PairForgeError as exc:
            self.post_message(EngineFailed(str(exc), where="edit"))
            return
        self.pair_list.refresh_rows([pair_id])
        self._show_pair(saved.id)
        self.notify(f"Saved pair #{pair_id}. Press u to undo.")

    def _recheck(self, ids: list[int]) -> None:
        from engine.quality import recheck

        recheck(self.store, ids)

    def action_edit_external(self) -> None:
        """Edit the pair in $EDITOR (the app is suspended meanwhile)."""
        pair_id = self.pair_list.current_id
        if pair_id is None:
            return
        pair = self.store.get_pair(pair_id)
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        with tempfile.NamedTemporaryFile("w+", suffix=".md", delete=False, encoding="utf-8") as handle:
            handle.write(f"{pair.instruction}\n{EDITOR_MARKER_RESPONSE}\n{pair.response}\n")
            path = Path(handle.name)
        command = [*shlex.split(editor), str(path)]
        try:
            if self.app.is_headless:
                # No terminal to hand over (tests, automation): run the editor as is.
                completed = subprocess.run(command, check=False)
            else:
                try:
                    with self.app.suspend():
                        completed = subprocess.run(command, check=False)
                except SuspendNotSupported:
                    self.notify("This terminal cannot hand over to $EDITOR; editing in place instead.", severity="warning")
                    self.action_edit()
                    return
            if completed.returncode != 0:
                self.notify(f"{editor} exited with status {completed.returncode}; the pair was not changed.", severity="warning")
                return
            text = path.read_text(encoding="utf-8")
        except (OSError, FileNotFoundError) as exc:
            self.post_message(EngineFailed(f"Cannot run the editor {editor!r} ({exc}); set $EDITOR to an installed editor.", where="edit"))
            return
        finally:
            path.unlink(missing_ok=True)
        if EDITOR_MARKER_RESPONSE not in text:
            self.notify("The response marker line was removed, so the edit was not saved.", severity="warning")
            return
        instruction, response = text.split(EDITOR_MARKER_RESPONSE, 1)
        self._save_text(pair_id, instruction.strip("\n"), response.strip("\n"))

    def show_message(self, text: str) -> None:
        """A one-line note under the title (used for empty states)."""
        self.query_one("#review-title", Label).update(Text(text))


# The review's own actions (without arguments): off while a pair is edited in place.
_REVIEW_ACTIONS = frozenset(b.action.split("(")[0] for b in ReviewPane.BINDINGS if isinstance(b, Binding))

__all__ = ["ReviewPane", "describe_filter"]
