"""The selected pair's near duplicates with their similarity and the differing words marked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.text import Text

from engine.text import strip_control
from tui.widgets.text_pane import TextPane

if TYPE_CHECKING:
    from engine.quality import SimilarPair

# A near duplicate, and the diff ops of its text against the selected pair's.
DuplicateItem = tuple["SimilarPair", list[tuple[str, str]]]


def diff_text(ops: Sequence[tuple[str, str]], *, changed_style: str) -> Text:
    """Render ``diff_words`` output: text the two sides share plain, differing words styled."""
    text = Text()
    for op, chunk in ops:
        clean = strip_control(chunk)
        if op in {"equal", "="}:
            text.append(clean)
        elif op in {"delete", "-"}:
            text.append(clean, style=changed_style + " strike")
        else:
            text.append(clean, style=changed_style)
    return text


class NearDuplicateList(TextPane):
    """Near duplicates of one pair: id, score, field, and the other pair's text with differences marked."""

    def show_duplicates(self, items: list[DuplicateItem], *, changed_style: str) -> None:
        """``items``: (SimilarPair, diff ops against the selected pair) for each near duplicate."""
        if not items:
            self.show(Text("No near duplicates."))
            return
        text = Text()
        for similar, ops in items:
            text.append(f"#{similar.pair_id}  {similar.score:.0f}% similar ({similar.field})\n", style=self.heading_style)
            text.append(diff_text(ops, changed_style=changed_style))
            text.append("\n\n")
        self.show(text)

    def show_unavailable(self, reason: str) -> None:
        """Say why duplicates cannot be shown."""
        self.show(Text(reason))


__all__ = ["DuplicateItem", "NearDuplicateList", "diff_text"]
