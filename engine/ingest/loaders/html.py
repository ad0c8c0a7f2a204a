"""HTML pages: visible text only (no scripts or styles), headings kept as Markdown markers.

The text is rebuilt as light Markdown (``#`` headings, fenced ``<pre>`` blocks, ``-``
list items, blank lines between blocks) so the Markdown chunker sees its structure.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

from engine.ingest.boilerplate import LINK_MARK, line_key, shape_key
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
        # The same text with each link's words replaced by one mark: a line's shape.
        self.shape_parts: list[str] = []
        self.anchor = 0
        self.anchor_marked = False
        self.hidden = 0
        self.pre = 0
        self.title_parts: list[str] = []
        self.in_title = False

    def _emit(self, text: str) -> None:
        self.parts.append(text)
        self.shape_parts.append(text)

    def _break(self, prefix: str = "") -> None:
        self._emit("\n\n" + prefix)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        if tag in _HIDDEN:
            self.hidden += 1
        elif self.hidden:
            return
        elif tag == "a":
            self.anchor += 1
            self.anchor_marked = False
        elif tag in _HEADINGS:
            self._break("#" * _HEADINGS[tag] + " ")
        elif tag == "pre":
            self.pre += 1
            self._break("```\n")
        elif tag == "li":
            self._emit("\n- ")
        elif tag in ("td", "th"):
            self._emit(" | ")
        elif tag in _BLOCKS:
            self._break()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif self.hidden:
            return
        elif tag == "a":
            self.anchor = max(0, self.anchor - 1)
        elif tag == "pre" and self.pre:
            self.pre -= 1
            self._emit("\n```\n\n")
        elif tag in _HEADINGS or tag in _BLOCKS:
            self._break()

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title_parts.append(data)
        if self.hidden:
            return
        text = data if self.pre else _SPACES.sub(" ", data)
        self.parts.append(text)
        if self.anchor and not self.pre:
            if not self.anchor_marked and text.strip():
                self.shape_parts.append(LINK_MARK)
                self.anchor_marked = True
        else:
            self.shape_parts.append(text)

    def lines(self) -> list[tuple[str, str, bool]]:
        """(line, shape, in code) for every line, blank runs collapsed, blank ends dropped."""
        out: list[tuple[str, str, bool]] = []
        in_code = False
        # Link text never holds a newline outside <pre>, so text and shape split alike.
        for raw, raw_shape in zip("".join(self.parts).split("\n"), "".join(self.shape_parts).split("\n"), strict=True):
            if raw.strip() == "```":
                in_code = not in_code
                line, shape, code = "```", "```", True
            else:
                # Indentation matters inside <pre>; elsewhere it is markup noise.
                line = raw.rstrip() if in_code else raw.strip(" |").strip()
                shape = raw_shape.strip(" |").strip()
                code = in_code
            # Cleaning a single line may only remove characters: no line is added or lost.
            line = clean_text(line).replace("\n", " ")
            if not line.strip() and (not out or not out[-1][0].strip()):
                continue
            out.append((line, shape, code))
        while out and not out[-1][0].strip():
            out.pop()
        return out


def _extract(markup: str) -> tuple[list[tuple[str, str, bool]], str | None]:
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    title = _SPACES.sub(" ", html.unescape("".join(parser.title_parts))).strip() or None
    return parser.lines(), title


def html_to_text(markup: str) -> tuple[str, str | None]:
    """Visible text of an HTML page as light Markdown, and its <title> if any."""
    lines, title = _extract(markup)
    return "\n".join(line for line, _, _ in lines) + "\n", title


def html_line_keys(markup: str) -> tuple[str, list[tuple[int, str, tuple[str, ...]]]]:
    """The page's text and, for each line outside code, (offset, line, keys to compare across pages).

    See :func:`_keyed_lines` for the keys.
    """
    lines, _ = _extract(markup)
    return _keyed_lines(lines)


def _keyed_lines(lines: list[tuple[str, str, bool]]) -> tuple[str, list[tuple[int, str, tuple[str, ...]]]]:
    """The text of ``lines`` and the (offset, line, keys) of each line outside code.

    A line's keys are its own text (numbers blanked) and, when it holds links and a
    word of its own, its shape with the link text blanked, so texinfo's "Next: X, Up: Y"
    panels match from page to page although X and Y change.
    """
    keyed: list[tuple[int, str, tuple[str, ...]]] = []
    offset = 0
    for line, shape, code in lines:
        if line.strip() and not code:
            keys = [line_key(line)]
            if (key := shape_key(shape)) is not None:
                keys.append(key)
            keyed.append((offset, line, tuple(keys)))
        offset += len(line) + 1
    return "\n".join(line for line, _, _ in lines) + "\n", keyed


def load_html(path: Path, facts: FileFacts) -> LoadedDocument:
    """An HTML page's text with headings as ``#`` markers; the title is <title> or the first heading."""
    markup = path.read_bytes().decode("utf-8-sig", errors="replace")
    lines, page_title = _extract(markup)
    text, keyed = _keyed_lines(lines)
    warnings = [] if facts.valid_utf8 else [f"{path.name} {INVALID_UTF8_WARNING}."]
    return LoadedDocument(
        format="html",
        style="markdown",
        segments=[text],
        title=find_title(text, "markdown") or page_title,
        meta={"page_title": page_title} if page_title else {},
        warnings=warnings,
        line_keys=keyed,
    )
