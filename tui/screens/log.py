"""Log: the pipeline's decisions and the errors the app met."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label

from engine.store import Store
from tui.widgets.log_view import LogView


class LogPane(Vertical):
    """The pipeline log, newest last, plus errors as they happen."""

    def __init__(self, store: Store, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store
        self._errors: list[str] = []

    def compose(self) -> ComposeResult:
        yield Label("Log · pipeline decisions and errors")
        yield LogView(id="log-view")

    def reload(self) -> None:
        """Re-read the pipeline log and repeat this session's errors after it."""
        view = self.query_one(LogView)
        view.load_from(self.store)
        for error in self._errors:
            view.add_error(error)

    def add_error(self, text: str) -> None:
        """Record an error for this session."""
        self._errors.append(text)
        self.query_one(LogView).add_error(text)


__all__ = ["LogPane"]
