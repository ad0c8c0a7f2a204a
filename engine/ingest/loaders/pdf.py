"""PDF files through pypdf: the text of every page, pages separated by a blank line.

Running headers, footers and page numbers are found across the pages and left out of
chunks; the outline (bookmarks) gives heading paths. Words hyphenated at a line end are
joined in the stored text itself: that text is what spans refer to, so spans stay exact.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from engine.errors import IngestError
from engine.ingest.boilerplate import PageLine, find_page_boilerplate, line_key
from engine.ingest.chunker import HeadingMark
from engine.ingest.loaders.base import LoadedDocument
from engine.ingest.reading import clean_text

# "contain-\ning the" -> "containing\nthe": the rest of the word moves up a line.
_HYPHEN_BREAK = re.compile(r"([^\W\d_])-\n([^\W\d_]\S*)([ \t]+|(?=\n)|$)")
# A line this much longer than an outline title is prose that opens with the title's words.
_TITLE_SLACK = 12


def join_hyphenated(text: str) -> str:
    """Join words split by a hyphen at a line end when the next line goes on in lower case.

    "Jean-\\nPaul" or "pre-\\n2020" keep their hyphen and break, since the case or the
    digit says the hyphen is part of the word.
    """

    def join(match: re.Match[str]) -> str:
        rest = match.group(2)
        if not rest[0].islower():
            return match.group(0)
        return match.group(1) + rest + ("\n" if match.group(3) else "")

    return _HYPHEN_BREAK.sub(join, text)


def _page_lines(pages: list[str]) -> tuple[str, list[list[PageLine]]]:
    """The document text (non-empty pages joined by a blank line) and each page's lines."""
    parts: list[str] = []
    lines: list[list[PageLine]] = []
    offset = 0
    for page in pages:
        page_lines: list[PageLine] = []
        if page:
            if parts:
                parts.append("\n\n")
                offset += 2
            parts.append(page)
            for line in page.split("\n"):
                page_lines.append(PageLine(offset, line))
                offset += len(line) + 1
            offset -= 1
        lines.append(page_lines)
    return "".join(parts), lines


def _outline_entries(reader: Any) -> list[tuple[int, tuple[str, ...]]]:
    """(page index, heading path) of every outline entry, in outline order."""
    entries: list[tuple[int, tuple[str, ...]]] = []

    def walk(items: list[Any], parents: tuple[str, ...]) -> None:
        last = parents
        for item in items:
            if isinstance(item, list):
                # pypdf lists an entry's children right after it.
                walk(item, last)
                continue
            title = " ".join(clean_text(str(getattr(item, "title", "") or "")).split())
            if not title:
                continue
            last = (*parents, title)
            try:
                page = reader.get_destination_page_number(item)
            except Exception:  # a broken bookmark costs its heading, not the import
                continue
            if isinstance(page, int) and page >= 0:
                entries.append((page, last))

    try:
        walk(list(reader.outline), ())
    except Exception:  # a damaged outline leaves the text without heading paths
        return []
    return entries


def _heading_marks(
    entries: list[tuple[int, tuple[str, ...]]], pages: list[list[PageLine]], skip: set[int]
) -> list[HeadingMark]:
    """Where each outline entry starts: its title's line on its page, else the page's first line."""
    marks: list[HeadingMark] = []
    searched_from: dict[int, int] = {}
    for page, path in entries:
        if page >= len(pages):
            continue
        content = [line for line in pages[page] if line.text.strip() and line.offset not in skip]
        if not content:
            continue
        title = line_key(path[-1])
        start = searched_from.get(page, 0)
        offset = content[0].offset
        for index in range(start, len(content)):
            key = line_key(content[index].text)
            if (key.startswith(title) or key.endswith(title)) and len(key) <= len(title) + _TITLE_SLACK:
                offset = content[index].offset
                searched_from[page] = index + 1
                break
        marks.append((offset, path))
    return sorted(marks, key=lambda mark: mark[0])


def load_pdf(path: Path) -> LoadedDocument:
    """The text of a PDF; raises IngestError for an encrypted, corrupt or text-less file."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    # pypdf logs recoverable damage at WARNING; the import reports problems itself.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise IngestError(
                f"{path.name} is an encrypted PDF: remove its password (e.g. `qpdf --decrypt`) and import it again."
            )
        raw_pages = [page.extract_text() or "" for page in reader.pages]
    except IngestError:
        raise
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IngestError(
            f"{path.name} is not a readable PDF ({type(exc).__name__}): re-export or repair it and import it again."
        ) from exc
    text, pages = _page_lines([join_hyphenated(clean_text(page).strip()).strip() for page in raw_pages])
    if not text:
        raise IngestError(
            f"{path.name} has no extractable text (scanned images?): run OCR on it first, then import it again."
        )
    found = find_page_boilerplate(pages)
    headings = _heading_marks(_outline_entries(reader), pages, found.offsets)
    meta: dict[str, Any] = {"pages": len(raw_pages)}
    if headings:
        meta["outline_entries"] = len(headings)
    title = None
    try:
        if reader.metadata and reader.metadata.title:
            title = clean_text(str(reader.metadata.title)).strip() or None
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError):
        title = None
    return LoadedDocument(
        format="pdf", style="text", segments=[text + "\n"], title=title, meta=meta,
        skip_lines=found.offsets, boilerplate=found.lines, headings=headings,
    )
