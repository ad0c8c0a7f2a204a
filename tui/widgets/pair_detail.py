"""The selected pair's instruction and response, read-only or edited in place."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Label, Static, TextArea

from engine.models import Pair
from tui.safe_text import plain


class PairDetail(VerticalScroll):
    """Instruction and response of one pair; ``start_editing`` swaps in text areas."""

    BINDINGS = [
        Binding("ctrl+s", "save_edit", "Save", id="edit_save", tooltip="Save the edited pair (undoable)."),
        Binding("escape", "cancel_edit", "Cancel", id="edit_cancel", tooltip="Leave editing without saving."),
    ]

    class EditSaved(Message):
        """The person finished editing: the new instruction and response."""

        def __init__(self, pair_id: int, instruction: str, response: str) -> None:
            super().__init__()
            self.pair_id = pair_id
            self.instruction = instruction
            self.response = response

    class EditCancelled(Message):
        """Editing ended without saving."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.pair_id: int | None = None
        self.editing = False

    def compose(self) -> ComposeResult:
        yield Label("Instruction", classes="detail-heading")
        yield Static(id="instruction", classes="detail-text")
        yield TextArea(id="instruction-editor", classes="editor", soft_wrap=True)
        yield Label("Response", classes="detail-heading")
        yield Static(id="response", classes="detail-text")
        yield TextArea(id="response-editor", classes="editor", soft_wrap=True)
        yield Static(id="meta", classes="detail-meta")

    def show_pair(self, pair: Pair | None) -> None:
        """Display ``pair`` (or an empty state); leaves edit mode."""
        self._set_editing(False)
        self.pair_id = pair.id if pair else None
        if pair is None:
            self.query_one("#instruction", Static).update(Text("No pair selected."))
            self.query_one("#response", Static).update("")
            self.query_one("#meta", Static).update("")
            return
        self.query_one("#instruction", Static).update(plain(pair.instruction))
        self.query_one("#response", Static).update(plain(pair.response))
        meta = Text(f"#{pair.id} {pair.status} · {pair.kind} · {pair.mode}")
        if pair.origin.model:
            meta.append(f" · {pair.origin.model}")
        for warning in pair.warnings:
            meta.append("\n! ", style="bold")
            meta.append(plain(f"{warning.check}: {warning.reason}"))
        self.query_one("#meta", Static).update(meta)
        self._instruction, self._response = pair.instruction, pair.response
        self.scroll_home(animate=False)

    def start_editing(self) -> None:
        """Swap the text for editors holding the pair's current instruction and response."""
        if self.pair_id is None:
            return
        self.query_one("#instruction-editor", TextArea).load_text(self._instruction)
        self.query_one("#response-editor", TextArea).load_text(self._response)
        self._set_editing(True)
        self.query_one("#response-editor", TextArea).focus()

    def _set_editing(self, editing: bool) -> None:
        self.editing = editing
        self.set_class(editing, "-editing")

    def action_save_edit(self) -> None:
        """Post the edited text for the screen to save through the store."""
        if not self.editing or self.pair_id is None:
            return
        instruction = self.query_one("#instruction-editor", TextArea).text
        response = self.query_one("#response-editor", TextArea).text
        self._set_editing(False)
        self.post_message(self.EditSaved(self.pair_id, instruction, response))

    def action_cancel_edit(self) -> None:
        """Leave edit mode, discarding the edit."""
        if self.editing:
            self._set_editing(False)
            self.post_message(self.EditCancelled())


__all__ = ["PairDetail"]
