"""Markdown, reStructuredText, plain text and source code: streamed from disk."""

from __future__ import annotations

from pathlib import Path

from engine.ingest.chunker import find_title
from engine.ingest.formats import code_language
from engine.ingest.loaders.base import INVALID_UTF8_WARNING, LoadedDocument
from engine.ingest.reading import FileFacts, iter_clean_text, read_head

_STYLE_BY_FORMAT = {"markdown": "markdown", "rst": "rst", "text": "text", "code": "code"}


def load_text_file(path: Path, fmt: str, facts: FileFacts) -> LoadedDocument:
    """A text-like file as a lazy stream of cleaned pieces, with its title and language."""
    style = _STYLE_BY_FORMAT.get(fmt, "text")
    meta: dict[str, object] = {"encoding": "utf-8"}
    warnings: list[str] = []
    if fmt == "code":
        meta["language"] = code_language(path)
    if not facts.valid_utf8:
        meta["encoding"] = "utf-8 (invalid bytes replaced)"
        warnings.append(f"{path.name} {INVALID_UTF8_WARNING}.")
    return LoadedDocument(
        format=fmt,
        style=style,
        segments=iter_clean_text(path),
        title=find_title(read_head(path), style),
        meta=meta,
        warnings=warnings,
    )
