"""The source chunks a pair was grounded on, with their heading paths."""

from __future__ import annotations

from rich.text import Text

from engine.models import Chunk
from engine.text import strip_control
from tui.safe_text import plain, plain_marked
from tui.widgets.text_pane import TextPane


class SourceView(TextPane):
    """Shows chunks as plain text, each under its document and heading path, copied text marked."""

    def show_chunks(
        self, chunks: list[Chunk], titles: dict[int, str], copied: dict[int, list[tuple[int, int]]] | None = None
    ) -> None:
        """Display ``chunks``; ``titles`` maps document ids to names, ``copied`` chunk ids to copied ranges of their text."""
        if not chunks:
            self.show(Text("No source chunk (refusal, imported or manual pair)."))
            return
        text = Text()
        for chunk in chunks:
            heading = " › ".join(chunk.heading_path) or "(no heading)"
            title = titles.get(chunk.document_id or 0, "?")
            text.append(strip_control(f"{title} › {heading}"), style=self.heading_style)
            text.append("\n")
            body = chunk.text.strip()
            lead = len(chunk.text) - len(chunk.text.lstrip())
            spans = [(start - lead, end - lead) for start, end in (copied or {}).get(chunk.id or 0, [])]
            text.append(plain_marked(body, spans, self.copied_style) if spans else plain(body))
            text.append("\n\n")
        self.show(text)


__all__ = ["SourceView"]
