"""A two-line threshold gauge drawn with theme colours: figures above, bar below."""

from __future__ import annotations

from textual.content import Content

# Theme variables, so every theme colours the gauge its own way.
STATUS_STYLE = {"ok": "$success", "warning": "$warning", "missing": "$error"}
# The word says it too, for terminals and eyes that do not tell the colours apart.
STATUS_WORD = {"ok": "ok", "warning": "low", "missing": "missing"}
MIN_WIDTH = 12


def gauge_content(label: str, value: int, target: int, status: str, *, width: int = 30) -> Content:
    """``label   value/target status`` over a ``width``-cell bar, as styled content (no markup from outside)."""
    width = max(MIN_WIDTH, width)
    style = STATUS_STYLE.get(status, "$foreground")
    word = STATUS_WORD.get(status, status)
    figures = f"{value}/{target} "
    gap = max(1, width - len(label) - len(figures) - len(word))
    filled = 0 if target <= 0 else min(width, round(width * value / target))
    return Content.assemble(
        (label, "bold"),
        " " * gap,
        figures,
        (word, f"bold {style}"),
        "\n",
        ("█" * filled, style),
        ("░" * (width - filled), "$foreground 30%"),
    )


__all__ = ["STATUS_STYLE", "STATUS_WORD", "gauge_content"]
