"""Loaders turn one file into clean text plus what the chunker needs to know about it.

Each format has its own module; :func:`load_document` picks by format. Text formats are
streamed (a generator of cleaned pieces), so a huge file is never read whole.
"""

from __future__ import annotations

from pathlib import Path

from engine.ingest.loaders.base import LoadedDocument
from engine.ingest.loaders.html import load_html
from engine.ingest.loaders.pdf import load_pdf
from engine.ingest.loaders.text import load_text_file
from engine.ingest.reading import FileFacts


def load_document(path: Path, fmt: str, facts: FileFacts) -> LoadedDocument:
    """Load ``path`` as ``fmt`` (markdown, rst, text, code, html, pdf); raises IngestError."""
    if fmt == "html":
        return load_html(path, facts)
    if fmt == "pdf":
        return load_pdf(path)
    return load_text_file(path, fmt, facts)


__all__ = ["LoadedDocument", "load_document", "load_html", "load_pdf", "load_text_file"]
