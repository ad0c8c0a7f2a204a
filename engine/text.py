"""Text hygiene shared by import, display and export."""

from __future__ import annotations

import re

# CSI / OSC / other ESC sequences, then C0/C1 controls except tab, newline and carriage return.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI ... final byte
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC ... BEL or ST
    r"|\x1b[PX^_][^\x1b]*\x1b\\"  # DCS/SOS/PM/APC ... ST
    r"|\x1b[@-Z\\-_]"  # two-byte escapes
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def strip_control(text: str) -> str:
    """Remove ANSI escape sequences and control characters (keeps tab and newlines)."""
    if not text:
        return text
    text = _ANSI.sub("", text)
    return _CONTROL.sub("", text)


def normalize_newlines(text: str) -> str:
    """Convert CRLF and CR line ends to LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")
