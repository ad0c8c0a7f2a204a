"""Read-only wrapped text drawn with the Line API.

Showing new text redraws this pane alone: its height is set without a layout of the screen,
which keeps moving through thousands of pairs cheap, even over a slow SSH link.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget


class TextPane(ScrollView, can_focus=True):
    """A scrollable, wrapped, read-only view of one Rich ``Text``."""

    DEFAULT_CSS = """
    TextPane {
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-gutter: stable;
        scrollbar-size-vertical: 1;
    }
    """

    COMPONENT_CLASSES = {"text-pane--heading", "text-pane--muted", "text-pane--copied"}

    def __init__(self, text: Text | str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._text = Text(text) if isinstance(text, str) else text
        self._lines: list[list[Segment]] = []
        self._wrapped_width = -1
        self._base_style = Style()

    @property
    def text(self) -> Text:
        """The text on show."""
        return self._text

    @property
    def heading_style(self) -> Style:
        """The theme's heading style, for callers building text with headings."""
        return self._foreground_style("text-pane--heading")

    @property
    def muted_style(self) -> Style:
        """The theme's style for secondary lines."""
        return self._foreground_style("text-pane--muted")

    @property
    def copied_style(self) -> Style:
        """The theme's style for text copied from a source (a mimicry warning's spans)."""
        style = self.get_component_rich_style("text-pane--copied")
        return Style(color=style.color, bgcolor=style.bgcolor, bold=style.bold, underline=style.underline)

    def _foreground_style(self, component: str) -> Style:
        # A translucent theme colour ($text-muted) is only right once blended with the pane's
        # background, which a partial style skips; keep the blended colour, not the background.
        style = self.get_component_rich_style(component)
        return Style(color=style.color, bold=style.bold, italic=style.italic, underline=style.underline)

    def show(self, text: Text | str) -> None:
        """Replace the text and scroll back to its top."""
        self._text = Text(text) if isinstance(text, str) else text
        self._wrapped_width = -1
        self.scroll_to(0, 0, animate=False, immediate=True)
        self._rewrap()
        self.refresh()

    def _wrap_width(self) -> int:
        return max(self.scrollable_content_region.width, 1)

    def _rewrap(self) -> None:
        width = self._wrap_width()
        if width == self._wrapped_width or not self.is_mounted:
            return
        console = self.app.console
        self._lines = [list(line.render(console)) for line in self._text.wrap(console, width, overflow="fold")]
        self._wrapped_width = width
        size = Size(0, len(self._lines))  # width 0: never a horizontal scrollbar
        if size != self.virtual_size:
            # Only this pane's scrollbar depends on its height: skip the screen-wide layout that
            # the reactive would ask for (a layout still follows if the scrollbar appears or goes).
            self.set_reactive(Widget.virtual_size, size)
            self._scroll_update(size)

    def on_resize(self) -> None:
        self._rewrap()

    def on_mount(self) -> None:
        self._rewrap()

    def render_lines(self, crop: Region) -> list[Strip]:
        # Style and width are looked up once per frame, not once per line.
        if self._wrapped_width != self._wrap_width():
            self._rewrap()
        self._base_style = self.rich_style
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        """One wrapped line (only visible lines are ever rendered)."""
        width = self._wrapped_width
        index = int(self.scroll_offset.y) + y
        base = self._base_style
        if index >= len(self._lines):
            return Strip.blank(width, base)
        return Strip(self._lines[index]).apply_style(base).adjust_cell_length(width, base)


__all__ = ["TextPane"]
