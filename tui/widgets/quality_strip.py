"""One line with the three threshold counts, shown while the quality panel is collapsed (below 100 columns)."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from tui.quality_figures import PanelFigures
from tui.widgets.gauge import STATUS_STYLE, STATUS_WORD


def strip_content(figures: PanelFigures | None, panel_key: str) -> Content:
    """``^b  pairs 30/1000 missing · refusals 2/60 low · multi-hop 20/20 ok``, the counts in status colours.

    The key that opens the panel comes first, styled like a footer key, so it is never cut off.
    """
    parts: list[Content] = [Content.styled(f"{panel_key} ", "bold $accent")]
    if figures is None:
        parts.append(Content.styled("Quality: counting…", "$text-muted"))
    for gauge in figures.gauges if figures is not None else []:
        if len(parts) > 1:
            parts.append(Content.styled(" · ", "$text-muted"))
        style = STATUS_STYLE.get(gauge.status, "$foreground")
        parts.append(Content.assemble(
            (f"{gauge.label} ", "bold"),
            (f"{gauge.value}/{gauge.target} ", style),
            # The word says it too, for terminals and eyes that do not tell the colours apart.
            (STATUS_WORD.get(gauge.status, gauge.status), f"bold {style}"),
        ))
    return Content.assemble(*parts)


class QualityStrip(Widget):
    """The dataset's three threshold counts on one line; the panel itself is one key away."""

    # The figures on show: set by the workspace with every panel refresh; a change redraws the line.
    figures: reactive[PanelFigures | None] = reactive(None, always_update=True)

    def __init__(self, *, panel_key: str, id: str | None = None) -> None:
        super().__init__(id=id)
        # The key that opens the panel, as the footer shows it (``^b``) after the person's keymap.
        self.panel_key = panel_key

    def render(self) -> Content:
        """The panel key and the counts."""
        return strip_content(self.figures, self.panel_key)


__all__ = ["QualityStrip", "strip_content"]
