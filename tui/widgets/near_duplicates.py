"""The selected pair's near duplicates with their similarity and the differing words marked."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.widgets import Static

from engine.text import strip_control


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


class NearDuplicateList(Static):
    """Near duplicates of one pair: id, score, field, and the other pair's text with differences marked."""

    def show_duplicates(self, items: list[tuple[Any, list[tuple[str, str]]]], *, changed_style: str) -> None:
        """``items``: (SimilarPair, diff ops against the selected pair) for each near duplicate."""
        if not items:
            self.update(Text("No near duplicates."))
            return
        text = Text()
        for similar, ops in items:
            text.append(f"#{similar.pair_id}  {similar.score:.0f}% similar ({similar.field})\n", style="bold")
            text.append(diff_text(ops, changed_style=changed_style))
            text.append("\n\n")
        self.update(text)

    def show_unavailable(self, reason: str) -> None:
        """Say why duplicates cannot be shown."""
        self.update(Text(reason))


__all__ = ["NearDuplicateList", "diff_text"]
