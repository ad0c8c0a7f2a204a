"""A one-line threshold gauge drawn with theme colours."""

from __future__ import annotations

from textual.content import Content

# Theme variables, so every theme colours the gauge its own way.
STATUS_STYLE = {"ok": "$success", "warning": "$warning", "missing": "$error"}
STATUS_WORD = {"ok": "ok", "warning": "low", "missing": "missing"}


def gauge_content(label: str, value: int, target: int, status: str, *, width: int = 10) -> Content:
    """``label  ████░░░░ value/target status`` as styled content (no markup from outside)."""
    filled = 0 if target <= 0 else min(width, round(width * value / target))
    style = STATUS_STYLE.get(status, "$foreground")
    return Content.assemble(
        f"{label:<9}",
        ("█" * filled, style),
        ("░" * (width - filled), "$foreground 30%"),
        f" {value}/{target} ",
        (STATUS_WORD.get(status, status), f"bold {style}"),
    )


__all__ = ["STATUS_STYLE", "gauge_content"]
