"""What every loader returns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.ingest.boilerplate import SharedLines

INVALID_UTF8_WARNING = "is not valid UTF-8: undecodable bytes were replaced with U+FFFD"


@dataclass
class LoadedDocument:
    """A file's cleaned text (as ordered pieces), its chunking style, title and loader details."""

    format: str
    style: str
    segments: Iterable[str]
    title: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    skip_lines: set[int] = field(default_factory=set)
    """Start offsets of boilerplate lines the chunker leaves out."""
    boilerplate: list[str] = field(default_factory=list)
    """The distinct boilerplate lines left out, for the import report."""
    headings: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    """(offset, heading path) taken from outside the text, such as a PDF outline."""
    line_keys: list[tuple[int, str, tuple[str, ...]]] = field(default_factory=list)
    """(offset, text, keys) of lines that may repeat across the project's documents."""

    def skip_shared(self, shared: SharedLines) -> None:
        """Leave out the lines the project's documents share."""
        for offset, text, keys in self.line_keys:
            if shared.matches(keys):
                self.skip_lines.add(offset)
                line = " ".join(text.split())
                if line not in self.boilerplate:
                    self.boilerplate.append(line)
