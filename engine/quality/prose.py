"""The prose of a text: its words with offsets, leaving out code, quoted strings, commands, paths and identifiers.

Copying is measured on prose only. An answer that quotes a code block, a flag, a file path or an
identifier verbatim is doing its job; an answer whose sentences are the source's sentences is not.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]*\1[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)
# A run of backticks closes on the same run (Markdown; reStructuredText's ``literal`` too); an unmatched
# backtick left by an edit must not turn the rest of the paragraph into code, so spans are short.
_INLINE_CODE = re.compile(r"(`+)[^`\n]{1,120}?\1(?!`)")
# reStructuredText literal blocks: a paragraph ending in "::" (or a code-block directive), then indented lines.
_RST_LITERAL = re.compile(r"(?:::|^\.\. code-block::[^\n]*)[ \t]*\n(?:[ \t]*\n)+((?:[ \t]+[^\n]*\n?|[ \t]*\n)+)", re.MULTILINE)
_COMMAND_LINE = re.compile(r"^[ \t]*(?:\$|>>>|%|#!)[ \t][^\n]*$", re.MULTILINE)
# Short quoted strings: a phrase the answer cites, not a passage it copies (longer quotes stay prose).
_QUOTED = re.compile(r"\"[^\"\n]{1,100}\"|“[^”\n]{1,100}”|(?<!\w)'[^'\n]{1,100}'(?!\w)")
_QUOTED_MAX_WORDS = 12
# Whitespace-delimited tokens that may be code-like: only these go through ``is_identifier`` (plain words skip it).
_CANDIDATE_TOKEN = re.compile(r"(?<!\S)\S*[-_/\\=<>{}()\[\]@$`|&^~#%.A-Z]\S*")
_TOKEN_EDGE = "()[]{}<>\"'“”‘’,;:!?.*"
_CAMEL = re.compile(r"[a-z][A-Z]|[A-Z]{2,}[a-z]")
_DOTTED = re.compile(r"\w\.\w")
_CODE_CHARS = frozenset("_/\\=<>{}()[]@$`|&^~#%")
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)


class ProseWord(NamedTuple):
    """One prose word: lowercased, with its start and end offsets in the original text."""

    # A tuple, not a dataclass: an answer has hundreds of words and building them is the check's main cost.
    word: str
    start: int
    end: int


def is_identifier(token: str) -> bool:
    """Whether a whitespace-delimited token is code-like: a path, flag, identifier, call or version."""
    core = token.strip(_TOKEN_EDGE)
    if not core:
        return False
    if core.startswith("-") and len(core) > 1 and core.lstrip("-")[:1].isalpha():
        return True  # a command-line flag
    if any(ch in _CODE_CHARS for ch in core):
        return True
    return bool(_DOTTED.search(core) or _CAMEL.search(core))


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _code_ranges(text: str) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for pattern in (_FENCE, _COMMAND_LINE, _INLINE_CODE):
        ranges.extend(m.span() for m in pattern.finditer(text))
    ranges.extend(m.span(1) for m in _RST_LITERAL.finditer(text))
    return ranges


def code_mask(text: str) -> list[tuple[int, int]]:
    """The character ranges of ``text`` that are code: fenced and literal blocks, command lines, inline code."""
    return _merge(_code_ranges(text))


def prose_mask(text: str) -> list[tuple[int, int]]:
    """The character ranges of ``text`` that are not prose (code, commands, short quotes, identifiers)."""
    ranges = _code_ranges(text)
    for match in _QUOTED.finditer(text):
        if len(_WORD.findall(match.group(0))) <= _QUOTED_MAX_WORDS:
            ranges.append(match.span())
    ranges.extend(m.span() for m in _CANDIDATE_TOKEN.finditer(text) if is_identifier(m.group(0)))
    return _merge(ranges)


def identifiers(text: str) -> list[str]:
    """The code-like tokens of ``text`` (paths, flags, identifiers, calls, versions), as written."""
    return [m.group(0) for m in _CANDIDATE_TOKEN.finditer(text) if is_identifier(m.group(0))]


def prose_words(text: str) -> list[ProseWord]:
    """The prose words of ``text`` in order, each with its offsets; code-like parts are left out."""
    masked = prose_mask(text)
    found: list[ProseWord] = []
    position = 0  # index of the first masked range that may still cover a word
    for match in _WORD.finditer(text):
        start, end = match.span()
        while position < len(masked) and masked[position][1] <= start:
            position += 1
        if position < len(masked) and masked[position][0] < end:
            continue
        found.append(ProseWord(match.group(0).lower(), start, end))
    return found


__all__ = ["ProseWord", "code_mask", "identifiers", "is_identifier", "prose_mask", "prose_words"]
