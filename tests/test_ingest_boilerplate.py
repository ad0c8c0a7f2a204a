"""Boilerplate and markup stay out of chunks; every chunk keeps an exact span."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from engine.ingest import chunk_text, import_paths
from engine.ingest.loaders.html import html_to_text
from engine.models import Chunk
from engine.settings import ChunkingSettings
from engine.store import Store

SMALL = ChunkingSettings(size_chars=400, overlap_chars=60, min_chars=0)


def _assert_exact(text: str, chunks: Sequence[Chunk]) -> None:
    assert chunks
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text


RST = """\
Guide
=====

.. toctree::
   :maxdepth: 2
   :caption: Contents

   getting-started
   configuration

.. _install-label:

Installing the broker takes one command and a configuration file with the
listen address and the data directory.

.. note::
   :class: tip

   Workers hold no durable state, so any of them can be stopped at any time.

.. code-block:: rst

   .. toctree::
      example

Closing words about the broker.
"""


def test_rst_directive_lines_are_not_chunk_text() -> None:
    chunks = list(chunk_text(RST, style="rst", settings=SMALL))
    _assert_exact(RST, chunks)
    joined = "\n".join(c.text for c in chunks)
    for markup in (".. toctree::\n   :maxdepth", ":maxdepth:", ":caption:", "getting-started", ".. _install-label:", ".. note::", ":class:"):
        assert markup not in joined
    # Prose inside a directive, and a directive shown as a code example, are content.
    assert "Workers hold no durable state" in joined
    assert "Installing the broker" in joined
    assert ".. code-block:: rst\n\n   .. toctree::\n      example" in joined
    assert all(c.heading_path == ["Guide"] for c in chunks)


TOPICS = ["Overview", "Simple Example", "Options", "Error Codes", "Threads", "Index"]


def _texinfo_page(index: int, last: int = 5) -> str:
    """A page as texinfo writes it: a nav panel (a plain div) above and below the content.

    The first page's panel has no "Previous", the last page's no "Next", as in texinfo.
    """
    name = TOPICS[index]
    links = []
    if index < last:
        links.append(f'Next: <a href="n.html" accesskey="n">{TOPICS[index + 1]}</a>')
    if index > 0:
        links.append(f'Previous: <a href="p.html" accesskey="p">{TOPICS[index - 1]}</a>')
    links.append('Up: <a href="up.html" accesskey="u">Using the library</a>')
    panel = (
        f'<div class="nav-panel"><p>{", ".join(links)} &nbsp; '
        '[<a href="ix.html" title="Index" rel="index">Index</a>]</p></div>'
    )
    body = " ".join(f"The {name.lower()} section explains point {i} of the library in plain words." for i in range(12))
    return (
        f"<html><head><title>{name} (libfoo)</title></head><body>{panel}<hr>"
        f"<h2 class='section'>{index}.1 {name}</h2><p>{body}</p>"
        f"<ul><li><a href='a.html'>{name} details</a></li></ul>"
        f"<p>{body}</p><hr>{panel}"
        "<div class='footer'><p>Copyright 2024 The Foo Project.</p></div></body></html>"
    )


def _html_text(path: Path) -> str:
    return html_to_text(path.read_text(encoding="utf-8"))[0]


def test_navigation_shared_by_html_pages_stays_out_of_chunks(project: Store, tmp_path: Path) -> None:
    folder = tmp_path / "manual"
    folder.mkdir()
    for index in range(5):
        (folder / f"page{index}.html").write_text(_texinfo_page(index, last=4), encoding="utf-8")
    report = import_paths(project, [folder])
    assert len(report.imported) == 5
    by_path = {d.path: d for d in project.list_documents()}
    for index in range(5):
        document = by_path[f"manual/page{index}.html"]
        text = _html_text(folder / f"page{index}.html")
        chunks = project.list_chunks(document.id)
        _assert_exact(text, chunks)
        joined = "\n".join(c.text for c in chunks)
        assert "Next:" not in joined and "Previous:" not in joined and "Up:" not in joined
        assert "[Index]" not in joined and "Copyright" not in joined
        # The chunk after a left-out panel takes its heading path from the heading below it.
        assert chunks[0].heading_path == [f"{index}.1 {TOPICS[index]}"]
        # Content stays, the link list included, and headings still give paths.
        assert "explains point 11" in joined and f"{TOPICS[index]} details" in joined
        assert any(c.heading_path == [f"{index}.1 {TOPICS[index]}"] for c in chunks)
        assert document.meta["boilerplate_lines"] == 3
    dropped = {d.path: d for d in report.boilerplate}
    assert set(dropped) == set(by_path)
    assert any(t.startswith("Next: ") for t in dropped["manual/page0.html"].texts)
    logged = [e for e in project.log_tail(100, step="import") if e.action == "boilerplate"]
    assert len(logged) == 5 and all("boilerplate line(s) out of the chunks of manual/" in e.message for e in logged)

    # A page imported later is judged with the pages already in the project.
    later = tmp_path / "later.html"
    later.write_text(_texinfo_page(5, last=5), encoding="utf-8")
    import_paths(project, [later])
    joined = "\n".join(c.text for c in project.list_chunks(project.find_document("later.html").id))
    assert "Previous:" not in joined and "Copyright" not in joined and "explains point 3" in joined


def test_lines_on_few_html_pages_are_content(project: Store, tmp_path: Path) -> None:
    folder = tmp_path / "pair"
    folder.mkdir()
    for index in range(2):
        (folder / f"page{index}.html").write_text(_texinfo_page(index), encoding="utf-8")
    report = import_paths(project, [folder])
    assert not report.boilerplate
    assert all("Next:" in c.text for c in project.list_chunks() if c.ordinal == 0)


# (outline title or None, body lines) per page; chapter 3 fills one page, so only its page number gives its footer away.
PDF_PAGES: list[tuple[str, list[str]]] = [
    ("Chapter 1: Getting started", ["1 Getting started", "Libfoo reads files and writes reports.", "Each report can contain-", "ing several sections of findings.", "The reader keeps one buffer."]),
    ("Chapter 1: Getting started", ["1.1 Installing", "Run the installer and set the path.", "The installer needs no network.", "It writes one configuration file.", "Nothing else is changed."]),
    ("Chapter 2: Function reference", ["2 Function reference", "Every call returns a status code.", "Calls never block the caller.", "Buffers are owned by the library.", "Callers free only what they allocate."]),
    ("Chapter 2: Function reference", ["2.1 foo_open", "foo_open opens a file for reading.", "It takes a path and a mode flag.", "The mode flag selects the encoding.", "It fails on a missing path."]),
    ("Chapter 2: Function reference", ["foo_close releases the handle.", "Closing twice is harmless.", "A closed handle reads nothing.", "Handles are not shared across threads.", "Each thread opens its own."]),
    ("Chapter 3: Error codes", ["3 Error codes", "Code 2 means the path is missing.", "Code 5 means the mode is invalid.", "Code 9 means the buffer is full.", "Other codes are reserved."]),
]
PDF_OUTLINE = [("1 Getting started", 0, None), ("1.1 Installing", 1, 0), ("2 Function reference", 2, None), ("2.1 foo_open", 3, 2), ("3 Error codes", 5, None)]


def _write_manual_pdf(path: Path) -> None:
    """A six-page PDF with a running header, chapter footers carrying page numbers, and an outline."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
    }))
    for number, (footer, body) in enumerate(PDF_PAGES, start=1):
        page = writer.add_blank_page(612, 792)
        lines = ["Libfoo Reference Manual", *body, f"{footer} {number}"]
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 740 Td"]
        ops += [f"({line}) Tj T*" for line in lines]
        ops.append("ET")
        stream = DecodedStreamObject()
        stream.set_data("\n".join(ops).encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
    made: list[object] = []
    for title, page_index, parent in PDF_OUTLINE:
        made.append(writer.add_outline_item(title=title, page_number=page_index, parent=made[parent] if parent is not None else None))
    with path.open("wb") as handle:
        writer.write(handle)


def test_pdf_headers_and_page_numbers_out_and_outline_in(project: Store, tmp_path: Path) -> None:
    from engine.ingest import file_facts, load_document

    path = tmp_path / "manual.pdf"
    _write_manual_pdf(path)
    report = import_paths(project, [path])
    assert report.imported == ["manual.pdf"]
    text = "".join(load_document(path, "pdf", file_facts(path)).segments)
    chunks = project.list_chunks(project.find_document("manual.pdf").id)
    _assert_exact(text, chunks)
    joined = "\n".join(c.text for c in chunks)
    assert "Libfoo Reference Manual" not in joined and "Chapter " not in joined
    assert "Code 9 means the buffer is full." in joined and "2.1 foo_open" in joined
    # The hyphenated word is joined in the stored text, which the spans refer to.
    assert "can contain\ning" not in text and "Each report can containing\nseveral sections" in text
    paths = {tuple(c.heading_path) for c in chunks}
    assert ("2 Function reference", "2.1 foo_open") in paths and ("3 Error codes",) in paths
    open_chunk = next(c for c in chunks if "foo_open opens a file" in c.text)
    assert open_chunk.heading_path == ["2 Function reference", "2.1 foo_open"]
    assert all(c.heading_path for c in chunks)
    dropped = report.boilerplate[0]
    assert dropped.lines == 12 and "Libfoo Reference Manual" in dropped.texts
    assert "Chapter 3: Error codes 6" in dropped.texts


def test_hyphen_joins_only_lower_case_continuations() -> None:
    from engine.ingest.loaders.pdf import join_hyphenated

    assert join_hyphenated("can contain-\ning the rest\nnext") == "can containing\nthe rest\nnext"
    # A word that ends its line moves up whole, and no blank line (a paragraph break) appears.
    assert join_hyphenated("every contain-\ning.\nNext line") == "every containing.\nNext line"
    assert join_hyphenated("Jean-\nPaul wrote\nand pre-\n2020 code") == "Jean-\nPaul wrote\nand pre-\n2020 code"


def test_earlier_pages_are_rechunked_when_new_pages_make_a_line_shared(project: Store, tmp_path: Path) -> None:
    folder = tmp_path / "grow"
    folder.mkdir()
    for index in range(2):
        (folder / f"page{index}.html").write_text(_texinfo_page(index), encoding="utf-8")
    import_paths(project, [folder])
    assert all("Next:" in c.text for c in project.list_chunks() if c.ordinal == 0)
    later = tmp_path / "later"
    later.mkdir()
    for index in (2, 3):
        (later / f"page{index}.html").write_text(_texinfo_page(index), encoding="utf-8")
    report = import_paths(project, [later])
    assert report.imported == ["later/page2.html", "later/page3.html"]
    assert sorted(report.rechunked) == ["grow/page0.html", "grow/page1.html"]
    for document in project.list_documents():
        chunks = project.list_chunks(document.id)
        _assert_exact(_html_text(tmp_path / document.path), chunks)
        assert not any("Next:" in c.text or "Copyright" in c.text for c in chunks)
    assert any(e.action == "rechunked" for e in project.log_tail(50, step="import"))
    # Nothing new to learn: a second run leaves every page alone.
    again = import_paths(project, [later])
    assert not again.rechunked and sorted(again.unchanged) == ["later/page2.html", "later/page3.html"]
