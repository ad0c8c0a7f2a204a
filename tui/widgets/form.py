"""Labelled form fields, and a compact density for short terminals.

A field keeps its label beside the control, so a filled-in value still says what it is.
Below ``COMPACT_BELOW_ROWS`` rows the controls drop their borders and take one line each.
"""

from __future__ import annotations

from textual.containers import Horizontal
from textual.dom import DOMNode
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Select, TextArea

COMPACT_BELOW_ROWS = 32


def field(label: str, control: Widget, *, classes: str = "") -> Horizontal:
    """``label`` beside ``control``, as one form field."""
    return Horizontal(Label(label, classes="field-label"), control, classes=f"field {classes}".strip())


def give_keys_back(target: Widget) -> None:
    """Move focus from a text box to ``target`` once the box's action ran, so section keys (1-6) work at once."""
    if isinstance(target.app.focused, Input | TextArea):
        target.focus()


def set_compact(root: DOMNode, compact: bool) -> None:
    """Give every input, select, button and checkbox under ``root`` the compact (borderless) style, or take it away."""
    for control in root.query("Input, Select, Button, Checkbox"):
        if isinstance(control, Input | Select | Button | Checkbox) and control.compact != compact:
            control.compact = compact
    root.set_class(compact, "-compact")


__all__ = ["COMPACT_BELOW_ROWS", "field", "give_keys_back", "set_compact"]
