"""Small modal questions: yes/no, and which bulk action to apply."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from tui.keys import KeyOwner, KeyScope


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question; dismisses with True or False."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm_yes", tooltip="Answer yes."),
        Binding("n,escape", "answer(False)", "No", id="confirm_no", tooltip="Answer no."),
    ]

    def __init__(self, question: str, *, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.question), classes="dialog-question")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="primary")
                yield Button(f"{self.no} (n)", id="no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        """Dismiss with ``answer``."""
        self.dismiss(answer)


class BulkActionScreen(KeyOwner, ModalScreen[str | None]):
    """Choose accept, reject, delete or fix (repair by the model) for many pairs; dismisses with the choice or None."""

    KEY_SCOPE = KeyScope("Review: bulk", in_palette=False)
    BINDINGS = [
        Binding("a", "choose('accepted')", "Accept all", id="bulk_accept", tooltip="Accept every pair in scope."),
        Binding("r", "choose('rejected')", "Reject all", id="bulk_reject", tooltip="Reject every pair in scope."),
        Binding("d", "choose('delete')", "Delete all", id="bulk_delete", tooltip="Delete every pair in scope."),
        Binding("f", "choose('repair')", "Fix all", id="bulk_repair",
                tooltip="Have the generation model fix every flagged pair in scope; a repair is kept only when it is better."),
        Binding("escape", "choose('')", "Cancel", id="bulk_cancel", tooltip="Do nothing."),
    ]

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(f"Apply to {self.scope}? Every change can be undone with u."), classes="dialog-question")
            # Five choices do not fit one row of an 80-column terminal: a grid of three columns.
            with Horizontal(classes="dialog-buttons", id="bulk-buttons"):
                yield Button("Accept (a)", id="accepted", variant="success")
                yield Button("Reject (r)", id="rejected", variant="warning")
                yield Button("Delete (d)", id="delete", variant="error")
                yield Button("Fix (f)", id="repair", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "cancel" else event.button.id)

    def action_choose(self, choice: str) -> None:
        """Dismiss with ``choice`` (empty means cancel)."""
        self.dismiss(choice or None)


__all__ = ["BulkActionScreen", "ConfirmScreen"]
