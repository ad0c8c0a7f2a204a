"""Show text from documents and models as text: no Rich markup, no terminal control codes."""

from __future__ import annotations

from rich.text import Text

from engine.text import strip_control


def plain(text: str | None) -> Text:
    """A Rich Text holding ``text`` literally (markup not interpreted, control codes removed)."""
    return Text(strip_control(text or ""))


def one_line(text: str | None, width: int) -> str:
    """The first line of ``text``, control codes removed, cut to ``width`` cells."""
    clean = strip_control(text or "").replace("\t", " ")
    first = clean.strip().split("\n", 1)[0]
    if len(first) > width:
        return first[: max(width - 1, 0)] + "…"
    return first


__all__ = ["one_line", "plain"]
