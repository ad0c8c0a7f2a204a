"""The source chunks a pair was grounded on, with their heading paths."""

from __future__ import annotations

from rich.text import Text

from engine.models import Chunk
from engine.text import strip_control
from tui.safe_text import plain
from tui.widgets.text_pane import TextPane


class SourceView(TextPane):
    """Shows chunks as plain text, each under its document and heading path."""

    def show_chunks(self, chunks: list[Chunk], titles: dict[int, str]) -> None:
        """Display ``chunks``; ``titles`` maps document ids to names."""
        if not chunks:
            self.show(Text("No source chunk (refusal, imported or manual pair)."))
            return
        text = Text()
        for chunk in chunks:
            heading = " › ".join(chunk.heading_path) or "(no heading)"
            title = titles.get(chunk.document_id or 0, "?")
            text.append(strip_control(f"{title} › {heading}"), style=self.heading_style)
            text.append("\n")
            text.append(plain(chunk.text.strip()))
            text.append("\n\n")
        self.show(text)


__all__ = ["SourceView"]
