"""Show text from documents and models as text: no Rich markup, no terminal control codes."""

from __future__ import annotations

from collections.abc import Sequence

from rich.style import Style
from rich.text import Text

from engine.text import strip_control


def plain(text: str | None) -> Text:
    """A Rich Text holding ``text`` literally (markup not interpreted, control codes removed)."""
    return Text(strip_control(text or ""))


def plain_marked(text: str | None, spans: Sequence[tuple[int, int]], style: Style) -> Text:
    """``text`` as :func:`plain`, with the character ranges ``spans`` (offsets in ``text``) in ``style``.

    Each piece is cleaned on its own, so the ranges stay right when control codes are removed.
    """
    text = text or ""
    result = Text()
    position = 0
    for start, end in sorted(spans):
        start, end = max(start, position), min(end, len(text))
        if start >= end:
            continue
        result.append(strip_control(text[position:start]))
        result.append(strip_control(text[start:end]), style=style)
        position = end
    result.append(strip_control(text[position:]))
    return result


def one_line(text: str | None, width: int) -> str:
    """The first line of ``text``, control codes removed, cut to ``width`` cells."""
    clean = strip_control(text or "").replace("\t", " ")
    first = clean.strip().split("\n", 1)[0]
    if len(first) > width:
        return first[: max(width - 1, 0)] + "…"
    return first


__all__ = ["one_line", "plain", "plain_marked"]
