"""HTML pages: visible text only (no scripts or styles), headings kept as Markdown markers.

The text is rebuilt as light Markdown (``#`` headings, fenced ``<pre>`` blocks, ``-``
list items, blank lines between blocks) so the Markdown chunker sees its structure.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

from engine.ingest.chunker import find_title
from engine.ingest.loaders.base import INVALID_UTF8_WARNING, LoadedDocument
from engine.ingest.reading import FileFacts, clean_text

_HIDDEN = frozenset({"script", "style", "noscript", "template", "head", "svg", "iframe", "object"})
_BLOCKS = frozenset({
    "p", "div", "section", "article", "header", "footer", "main", "aside", "nav", "ul", "ol",
    "table", "tr", "blockquote", "dl", "dt", "dd", "figure", "figcaption", "form", "hr", "br",
})
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_SPACES = re.compile(r"[ \t\f\v\r\n]+")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0
        self.pre = 0
        self.title_parts: list[str] = []
        self.in_title = False

    def _break(self, prefix: str = "") -> None:
        self.parts.append("\n\n" + prefix)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        if tag in _HIDDEN:
            self.hidden += 1
        elif self.hidden:
            return
        elif tag in _HEADINGS:
            self._break("#" * _HEADINGS[tag] + " ")
        elif tag == "pre":
            self.pre += 1
            self._break("```\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in ("td", "th"):
            self.parts.append(" | ")
        elif tag in _BLOCKS:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif self.hidden:
            return
        elif tag == "pre" and self.pre:
            self.pre -= 1
            self.parts.append("\n```\n\n")
        elif tag in _HEADINGS or tag in _BLOCKS:
            self._break()

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title_parts.append(data)
        if self.hidden:
            return
        self.parts.append(data if self.pre else _SPACES.sub(" ", data))

    def text(self) -> str:
        lines: list[str] = []
        in_code = False
        for line in "".join(self.parts).split("\n"):
            if line.strip() == "```":
                in_code = not in_code
                lines.append("```")
            else:
                # Indentation matters inside <pre>; elsewhere it is markup noise.
                lines.append(line.rstrip() if in_code else line.strip(" |").strip())
        text = "\n".join(lines)
        return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def html_to_text(markup: str) -> tuple[str, str | None]:
    """Visible text of an HTML page as light Markdown, and its <title> if any."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    title = _SPACES.sub(" ", html.unescape("".join(parser.title_parts))).strip() or None
    return clean_text(parser.text()), title


def load_html(path: Path, facts: FileFacts) -> LoadedDocument:
    """An HTML page's text with headings as ``#`` markers; the title is <title> or the first heading."""
    raw = path.read_bytes()
    text, page_title = html_to_text(raw.decode("utf-8-sig", errors="replace"))
    warnings = [] if facts.valid_utf8 else [f"{path.name} {INVALID_UTF8_WARNING}."]
    return LoadedDocument(
        format="html",
        style="markdown",
        segments=[text],
        title=find_title(text, "markdown") or page_title,
        meta={"page_title": page_title} if page_title else {},
        warnings=warnings,
    )
