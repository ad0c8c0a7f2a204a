"""Reading files as clean text: one pass for facts (hash, UTF-8 validity), streamed decoding.

Text is decoded in blocks so a 200 MB file never sits in memory whole. Every block
passes through :func:`engine.text.strip_control` and newline normalisation; the few
characters that could start a sequence split across two blocks (a CR, an ESC) are held
back and prepended to the next block.
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.text import normalize_newlines, strip_control

BLOCK_BYTES = 1 << 20
SNIFF_BYTES = 8192
# An escape sequence longer than this at a block end is not one we would strip anyway.
_MAX_ESCAPE = 256


@dataclass(frozen=True)
class FileFacts:
    """What one read of a file tells: its size, hash, and whether it is binary or valid UTF-8."""

    size: int
    sha256: str
    looks_binary: bool
    valid_utf8: bool


def file_facts(path: Path) -> FileFacts:
    """Hash ``path`` and check its bytes in one streamed pass; raises OSError if unreadable."""
    digest = hashlib.sha256()
    validator = codecs.getincrementaldecoder("utf-8")("strict")
    valid = True
    size = 0
    looks_binary = False
    with path.open("rb") as handle:
        first = True
        while block := handle.read(BLOCK_BYTES):
            if first:
                looks_binary = b"\x00" in block[:SNIFF_BYTES]
                first = False
            digest.update(block)
            size += len(block)
            if valid:
                try:
                    validator.decode(block)
                except UnicodeDecodeError:
                    valid = False
        if valid:
            try:
                validator.decode(b"", final=True)
            except UnicodeDecodeError:
                valid = False
    return FileFacts(size=size, sha256=digest.hexdigest(), looks_binary=looks_binary, valid_utf8=valid)


def clean_text(text: str) -> str:
    """Text as PairForge stores it: control characters and ANSI escapes removed, LF line ends."""
    return strip_control(normalize_newlines(text))


def iter_clean_text(path: Path, *, block_bytes: int = BLOCK_BYTES) -> Iterator[str]:
    """Yield the cleaned text of ``path`` in pieces (UTF-8, invalid bytes replaced, BOM dropped)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")("replace")
    carry = ""
    with path.open("rb") as handle:
        while True:
            block = handle.read(block_bytes)
            final = not block
            text = carry + decoder.decode(block, final=final)
            carry = ""
            if not final:
                text, carry = _hold_back(text)
            cleaned = clean_text(text)
            if cleaned:
                yield cleaned
            if final:
                return


def _hold_back(text: str) -> tuple[str, str]:
    """Split off a tail that may be the first half of a CRLF or an escape sequence."""
    cut = len(text)
    if text.endswith("\r"):
        cut -= 1
    window_start = max(0, cut - _MAX_ESCAPE)
    escape_at = max(text.rfind("\x1b", window_start, cut), text.rfind("\x9b", window_start, cut))
    if escape_at >= 0:
        cut = escape_at
    return text[:cut], text[cut:]


def read_head(path: Path, limit: int = 65536) -> str:
    """The cleaned first ``limit`` bytes of a file (for titles and format sniffing)."""
    with path.open("rb") as handle:
        raw = handle.read(limit)
    return clean_text(raw.decode("utf-8-sig", errors="replace"))
