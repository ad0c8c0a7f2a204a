"""Log: the pipeline's decisions and the errors the app met."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label

from engine.store import Store
from tui.sections import Section, SectionPane
from tui.widgets.log_view import LogView


class LogPane(SectionPane, Vertical):
    """The pipeline log, newest last, plus errors as they happen."""

    SECTION = Section("log", "Log", "Log", "The pipeline log and errors.")

    def __init__(self, store: Store, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store
        self._errors: list[tuple[str, Sequence[str]]] = []

    def compose(self) -> ComposeResult:
        yield Label("Log · pipeline decisions and errors")
        yield LogView(id="log-view")

    def reload(self) -> None:
        """Re-read the pipeline log and repeat this session's errors after it."""
        view = self.query_one(LogView)
        view.load_from(self.store)
        for text, details in self._errors:
            view.add_error(text, details)

    def add_error(self, text: str, details: Sequence[str] = ()) -> None:
        """Record an error for this session, with the lines explaining it (a traceback's tail)."""
        self._errors.append((text, details))
        self.query_one(LogView).add_error(text, details)


__all__ = ["LogPane"]
