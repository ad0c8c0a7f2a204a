"""The pipeline log and the errors the app met, as plain text."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import Log

from engine.store import Store
from engine.text import strip_control


class LogView(Log):
    """Plain lines (never markup): the store's pipeline log, then errors as they happen."""

    def load_from(self, store: Store) -> None:
        """Show the latest pipeline log entries."""
        self.clear()
        entries = store.log_tail(200)
        if not entries:
            self.write_line("Nothing logged yet: imports, generation, checks and exports write what they decide here.")
        for entry in entries:
            self.write_line(strip_control(f"{entry.ts:%H:%M:%S} {entry.step} {entry.action} {entry.count}: {entry.message}"))

    def add_error(self, text: str, details: Sequence[str] = ()) -> None:
        """Append an error line, then its ``details`` indented."""
        self.write_line(strip_control(f"error: {text}"))
        for line in details:
            self.write_line(strip_control(f"    {line}"))


__all__ = ["LogView"]
