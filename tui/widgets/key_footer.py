"""The footer, showing only the bindings that fit whole: a key is never cut mid-word."""

from __future__ import annotations

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.widgets import Footer

# The Footer's own key widget: Textual does not export it.
from textual.widgets._footer import FooterKey

# Actions kept in the footer at any width: help lists every binding the footer has no room for.
ALWAYS_SHOWN = ("help",)


def footer_key_width(key: FooterKey) -> int:
    """The cells ``key`` takes in a footer that is not compact.

    Mirrors FooterKey's default styles: the key padded by one cell each side, the description
    followed by one.
    """
    width = cell_len(key.key_display) + 2
    if key.description:
        width += cell_len(key.description) + 1
    return width


class KeyFooter(Footer):
    """A footer that leaves out the bindings that do not fit, instead of cutting the last one off.

    Bindings keep their order; the help key stays whatever the width.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._composed_width = 0

    def compose(self) -> ComposeResult:
        children = list(super().compose())
        self._composed_width = self.size.width
        keys = [c for c in children if isinstance(c, FooterKey)]
        room = self.size.width - sum(footer_key_width(k) for k in keys if k.has_class("-command-palette")
                                     or k.action in ALWAYS_SHOWN)
        dropped: set[int] = set()
        for key in keys:
            if key.has_class("-command-palette") or key.action in ALWAYS_SHOWN:
                continue
            needed = footer_key_width(key)
            if dropped or needed > room:
                # The focused widget's bindings come first: what comes after a misfit matters less.
                dropped.add(id(key))
                continue
            room -= needed
        yield from (c for c in children if id(c) not in dropped)

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width != self._composed_width:
            self.refresh(recompose=True)


__all__ = ["KeyFooter", "footer_key_width"]
