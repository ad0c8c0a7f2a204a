"""The selected pair's instruction and response, read-only or edited in place."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Label, TextArea

from engine.models import Pair
from engine.text import strip_control
from tui.keys import KeyOwner, KeyScope
from tui.safe_text import plain, plain_marked
from tui.widgets.text_pane import TextPane


class PairDetail(KeyOwner, Vertical):
    """Instruction and response of one pair; ``start_editing`` swaps in text areas."""

    KEY_SCOPE = KeyScope("Review: editing", section="review")
    BINDINGS = [
        Binding("ctrl+s", "save_edit", "Save", id="edit_save", tooltip="Save the edited pair (undoable)."),
        Binding("escape", "cancel_edit", "Cancel", id="edit_cancel", tooltip="Leave editing without saving."),
        Binding("tab,shift+tab", "switch_editor", "Other field", id="edit_switch", show=False,
                tooltip="Move between the instruction and the response while editing."),
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
        # One pane for reading (cheap to redraw on every key), editors only while editing.
        yield TextPane(id="pair-text", classes="detail-text")
        yield Label("Instruction", classes="detail-heading editor")
        yield TextArea(id="instruction-editor", classes="editor", soft_wrap=True)
        yield Label("Response", classes="detail-heading editor")
        yield TextArea(id="response-editor", classes="editor", soft_wrap=True)

    @property
    def pane(self) -> TextPane:
        """The read-only view of the pair."""
        return self.query_one("#pair-text", TextPane)

    def show_pair(self, pair: Pair | None) -> None:
        """Display ``pair`` (or an empty state); leaves edit mode."""
        self._set_editing(False)
        self.pair_id = pair.id if pair else None
        pane = self.pane
        if pair is None:
            pane.show(Text("No pair selected."))
            return
        heading, muted = pane.heading_style, pane.muted_style
        text = Text()
        text.append("Instruction\n", style=heading)
        text.append(plain(pair.instruction))
        text.append("\n\nResponse\n", style=heading)
        copied = [(s.answer_start, s.answer_end) for w in pair.warnings for s in (w.spans or ())]
        text.append(plain_marked(pair.response, copied, pane.copied_style) if copied else plain(pair.response))
        meta = f"\n\n#{pair.id} {pair.status} · {pair.kind} · {pair.mode}"
        if pair.origin.model:
            meta += f" · {pair.origin.model}"
        text.append(strip_control(meta), style=muted)
        for warning in pair.warnings:
            text.append("\n! ", style="bold")
            text.append(plain(f"{warning.check}: {warning.reason}"))
        pane.show(text)
        self._instruction, self._response = pair.instruction, pair.response

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

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Tab moves between the two editors only while editing; otherwise it moves focus as usual.
        if action == "switch_editor":
            return self.editing
        return True

    def action_switch_editor(self) -> None:
        """Move between the instruction and the response editor."""
        instruction = self.query_one("#instruction-editor", TextArea)
        target = self.query_one("#response-editor", TextArea) if instruction.has_focus else instruction
        target.focus()

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
