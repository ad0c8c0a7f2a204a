"""Help: every key, where it applies and what it does (with remapped keys)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.keys import KeyEntry


class HelpScreen(ModalScreen[None]):
    """A scrollable table of every binding; any of escape, q or F1 closes it."""

    BINDINGS = [
        Binding("escape,q,f1", "dismiss", "Close", id="help_close", tooltip="Close the help."),
    ]

    def __init__(self, entries: Sequence[KeyEntry]) -> None:
        super().__init__()
        # Every binding with the keys the person's keymap gives it, passed down by the App.
        self.entries = entries

    def compose(self) -> ComposeResult:
        table = Table(expand=True, box=None, show_edge=False, pad_edge=False)
        table.add_column("where", no_wrap=True)
        table.add_column("keys", no_wrap=True, style="bold")
        table.add_column("does  (keymap id)", ratio=1)
        for entry in self.entries:
            does = Text(entry.tooltip or entry.description)
            does.append(f"  {entry.binding_id}", style="dim")
            table.add_row(entry.where, entry.shown, does)
        self.key_table = table
        with VerticalScroll(id="help-body"):
            yield Static(Text("Keys: remap any of them in pairforge.toml under [tui] keymap, by id (e.g. accept = \"a,y\"). ctrl+p finds any action by name."))
            yield Static(table, id="help-table")

    async def action_dismiss(self, result: None = None) -> None:
        """Close the help."""
        self.dismiss(result)


__all__ = ["HelpScreen"]
