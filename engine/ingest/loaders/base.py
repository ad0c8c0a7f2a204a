"""What every loader returns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

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
