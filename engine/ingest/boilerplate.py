"""Finding boilerplate: lines repeated across the pages of a PDF or the HTML pages of a project.

Navigation panels, running headers and footers, page numbers and copyright lines are
not content. They are found from the data: a line counts as boilerplate when it (or its
shape, with link text and numbers blanked) recurs on a large share of the pages. The
chunker leaves such lines out and cuts chunks around them, so every chunk's span stays
exact.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# A line seen on at least this share of pages (PDF) or HTML pages (project) is boilerplate.
PAGE_SHARE = 0.3
MIN_PDF_PAGES = 4
MIN_HTML_DOCUMENTS = 3
# Running headers and footers sit at the edges of a page; content in the middle is kept.
PDF_EDGE_LINES = 3
# A page number sits on the very first or last line; deeper in, a number is more likely content.
PAGE_NUMBER_EDGE_LINES = 1
# Fewer pages than this sharing a line can be chance (two sections on facing pages).
MIN_SHARED_PAGES = 3
# Stands for the text of a link in an HTML line's shape.
LINK_MARK = "\x00"

_DIGITS = re.compile(r"\d+")
_WORD = re.compile(r"[^\W\d_]{2,}")
_LEADING_NUMBER = re.compile(r"^\W*(\d{1,5})\b")
_TRAILING_NUMBER = re.compile(r"\b(\d{1,5})\W*$")


# Headings of a document's apparatus, not of its content: navigation, indexes, credits, legal text.
NAVIGATION_HEADINGS = frozenset({
    "index", "general index", "concept index", "function index", "contents", "table of contents", "toc",
    "credits", "acknowledgements", "acknowledgments", "authors", "next", "previous", "prev", "up", "top",
    "home", "back", "back to top", "navigation", "menu", "search", "search results", "site map", "sitemap",
    "copyright", "license", "licence", "copying", "gnu free documentation license",
    "gnu general public license", "about this document", "footnotes", "see also", "references",
    "bibliography", "next steps", "what's next", "faq", "faqs", "frequently asked questions", "questions and answers", "q&a",
})
_NAV_PANEL = re.compile(r"^(?:next|previous|prev|up)\s*:|\[index\]|\[contents\]", re.I)
_SECTION_NUMBER = re.compile(r"^\s*(?:\d+(?:\.\d+)*\.?|[A-Z](?:\.\d+)+\.?|[A-Z]\.|[IVXLC]+\.)\s+")


def heading_text(heading: str) -> str:
    """A heading without its section number ("2.3.1 Primitive Types" -> "Primitive Types")."""
    return _SECTION_NUMBER.sub("", " ".join(heading.split())).strip()


def is_navigation_heading(heading: str) -> bool:
    """True for a heading of navigation or apparatus (Index, Contents, Credits, FAQ, "Next: ..." panels)."""
    text = heading_text(heading)
    return text.casefold().strip(" .:") in NAVIGATION_HEADINGS or bool(_NAV_PANEL.search(text))


def line_key(line: str) -> str:
    """A line as compared across pages: spaces collapsed, numbers blanked, case folded."""
    return _DIGITS.sub("#", " ".join(line.split())).casefold()


def shape_key(shape: str) -> str | None:
    """The key of a line's shape (link text blanked), or None when the shape says nothing.

    A shape made only of links ("- [link]") would match every list of links, so a shape
    must keep a word of its own besides the links (texinfo's "Next: [link], Up: [link]").
    """
    if LINK_MARK not in shape or not _WORD.search(shape.replace(LINK_MARK, " ")):
        return None
    return "shape:" + line_key(shape)


def _threshold(pages: int, minimum: int) -> int:
    return max(minimum, math.ceil(PAGE_SHARE * pages))


@dataclass(frozen=True)
class PageLine:
    """One line of a page: where it starts in the document text, and its text."""

    offset: int
    text: str


@dataclass
class BoilerplateFound:
    """Lines to leave out of chunks: their start offsets, and the distinct texts for the report."""

    offsets: set[int] = field(default_factory=set)
    lines: list[str] = field(default_factory=list)
    _keys: set[str] = field(default_factory=set)

    def add(self, line: PageLine) -> None:
        """Mark one line as boilerplate; the report keeps one example per key (numbers blanked)."""
        self.offsets.add(line.offset)
        key = line_key(line.text)
        if key not in self._keys:
            self._keys.add(key)
            self.lines.append(" ".join(line.text.split()))


def _edges(lines: Sequence[PageLine], depth: int) -> list[PageLine]:
    content = [line for line in lines if line.text.strip()]
    if len(content) <= 2 * depth:
        return content
    return content[:depth] + content[-depth:]


def _page_number_at(text: str, index: int) -> list[tuple[str, int]]:
    """(position, number minus page index) for a leading or trailing number of a line."""
    found: list[tuple[str, int]] = []
    if match := _LEADING_NUMBER.match(text):
        found.append(("lead", int(match.group(1)) - index))
    if match := _TRAILING_NUMBER.search(text):
        found.append(("trail", int(match.group(1)) - index))
    return found


def find_page_boilerplate(pages: Sequence[Sequence[PageLine]]) -> BoilerplateFound:
    """Running headers, footers and page numbers of a paged document (a PDF).

    Two signals, read only at the edges of each page: a line among the first and last
    few (numbers blanked) that recurs on many pages, and a first or last line carrying
    a number that grows with the page index ("Chapter 4: Function reference 9" on page
    9), whatever its words. Returns nothing for documents under ``MIN_PDF_PAGES`` pages.
    """
    found = BoilerplateFound()
    if len(pages) < MIN_PDF_PAGES:
        return found
    needed = _threshold(len(pages), MIN_SHARED_PAGES)
    edges = [_edges(lines, PDF_EDGE_LINES) for lines in pages]
    outer = [_edges(lines, PAGE_NUMBER_EDGE_LINES) for lines in pages]
    key_pages: Counter[str] = Counter()
    number_pages: Counter[tuple[str, int]] = Counter()
    for index, lines in enumerate(edges):
        key_pages.update({line_key(line.text) for line in lines})
        number_pages.update({hit for line in outer[index] for hit in _page_number_at(line.text, index)})
    repeated = {key for key, count in key_pages.items() if count >= needed}
    numbered = {hit for hit, count in number_pages.items() if count >= needed}
    for index, lines in enumerate(edges):
        for line in lines:
            if line_key(line.text) in repeated:
                found.add(line)
        for line in outer[index]:
            if numbered.intersection(_page_number_at(line.text, index)):
                found.add(line)
    return found


def _shape_words(key: str) -> frozenset[str]:
    return frozenset(_WORD.findall(key.removeprefix("shape:").replace(LINK_MARK, " ")))


@dataclass(frozen=True)
class SharedLines:
    """What the project's HTML pages share: line keys, and the words of shared link panels.

    A panel's variants ("Next: X, Up: Y" on a first page, "Next: X, Previous: W, Up: Y"
    elsewhere) are each rarer than the panel; a linked line whose own words all belong
    to shared panels ("next", "previous", "up", "index") is taken as one of them.
    """

    keys: frozenset[str] = frozenset()
    panel_words: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.keys)

    def matches(self, keys: Iterable[str]) -> bool:
        """True when a line with these keys is shared boilerplate."""
        for key in keys:
            if key in self.keys:
                return True
            # Two links at least, as in a panel; one link among panel words ("All [link]") is prose.
            if key.startswith("shape:") and key.count(LINK_MARK) >= 2 and self.panel_words:
                words = _shape_words(key)
                if words and words <= self.panel_words:
                    return True
        return False


def find_shared_keys(documents: Iterable[set[str]], total: int) -> SharedLines:
    """Lines present in at least ``MIN_HTML_DOCUMENTS`` and ``PAGE_SHARE`` of ``total`` documents."""
    counts: Counter[str] = Counter()
    for keys in documents:
        counts.update(keys)
    needed = _threshold(total, MIN_HTML_DOCUMENTS)
    shared = frozenset(key for key, count in counts.items() if count >= needed)
    words = frozenset().union(*(_shape_words(key) for key in shared if key.startswith("shape:")))
    return SharedLines(shared, words)


__all__ = [
    "LINK_MARK",
    "NAVIGATION_HEADINGS",
    "BoilerplateFound",
    "PageLine",
    "SharedLines",
    "find_page_boilerplate",
    "find_shared_keys",
    "heading_text",
    "is_navigation_heading",
    "line_key",
    "shape_key",
]
