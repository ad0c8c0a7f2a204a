"""Filters of the Review screen: status, kind, mode, warning, near duplicates, document, search."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Input, Select
from textual.widgets.select import InvalidSelectValueError

from engine.models import BUILTIN_MODES, PairKind, PairStatus
from engine.store import PairFilter, Store
from tui.keys import KeyOwner, KeyScope

NEAR_DUPLICATE_CHECK = "near_duplicate"


class FilterBar(KeyOwner, Horizontal):
    """A row of selects and a search box; posts ``Changed`` with the resulting filter."""

    KEY_SCOPE = KeyScope("Review: filters", section="review", in_palette=False)
    BINDINGS = [
        Binding("escape", "close", "Close filters", id="filters_close", tooltip="Hide the filter bar and return to the list."),
    ]

    class Changed(Message):
        """The filter changed."""

        def __init__(self, pair_filter: PairFilter) -> None:
            super().__init__()
            self.pair_filter = pair_filter

    class Closed(Message):
        """The person left the filter bar."""

    def __init__(self, store: Store, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store

    def compose(self) -> ComposeResult:
        yield Select([(s.value, s.value) for s in PairStatus], prompt="status", id="f-status")
        yield Select([(k.value, k.value) for k in PairKind], prompt="kind", id="f-kind")
        yield Select([(m, m) for m in BUILTIN_MODES], prompt="mode", id="f-mode")
        yield Select(self._warning_options(), prompt="warning", id="f-warning")
        yield Select(self._document_options(), prompt="document", id="f-document")
        yield Input(placeholder="search", id="f-search")

    def _warning_options(self) -> list[tuple[str, str]]:
        options = [("any warning", "any"), ("no warning", "none"), ("has near duplicates", NEAR_DUPLICATE_CHECK)]
        options += [(check, check) for check in self.store.warning_counts() if check != NEAR_DUPLICATE_CHECK]
        return options

    def _document_options(self) -> list[tuple[str, int]]:
        return [(doc.title or doc.path.rsplit("/", 1)[-1], doc.id or 0) for doc in self.store.list_documents()]

    def refresh_choices(self) -> None:
        """Reload warning and document choices (they change as the dataset does)."""
        self.query_one("#f-warning", Select).set_options(self._warning_options())
        self.query_one("#f-document", Select).set_options(self._document_options())

    def set_filter(self, flt: PairFilter) -> None:
        """Show ``flt`` in the controls without posting a change."""
        with self.prevent(Select.Changed, Input.Changed):
            for wid, value in (("#f-status", flt.status), ("#f-kind", flt.kind), ("#f-mode", flt.mode),
                               ("#f-warning", flt.warning), ("#f-document", flt.document_id)):
                select = self.query_one(wid, Select)
                try:
                    select.value = value if value is not None else Select.NULL
                except InvalidSelectValueError:  # a value not offered (e.g. a new warning): leave it blank
                    select.value = Select.NULL
            self.query_one("#f-search", Input).value = flt.search or ""

    def current(self) -> PairFilter:
        """The filter the controls describe."""

        def value(wid: str) -> object:
            v = self.query_one(wid, Select).value
            return None if v is Select.NULL else v

        document = value("#f-document")
        return PairFilter(
            status=value("#f-status"),  # type: ignore[arg-type]
            kind=value("#f-kind"),  # type: ignore[arg-type]
            mode=value("#f-mode"),  # type: ignore[arg-type]
            warning=value("#f-warning"),  # type: ignore[arg-type]
            document_id=int(document) if document is not None else None,  # type: ignore[call-overload]
            search=self.query_one("#f-search", Input).value.strip() or None,
        )

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.current()))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Changed(self.current()))
        self.post_message(self.Closed())

    def action_close(self) -> None:
        """Hide the bar."""
        self.post_message(self.Closed())


__all__ = ["NEAR_DUPLICATE_CHECK", "FilterBar"]
