"""The main screen: the current section beside the always-visible quality panel."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.keys import format_key
from textual.message import Message
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Header, Input, TextArea

from engine.store import PairFilter, Store
from tui.keys import KeyOwner
from tui.messages import ExportFinished, RunDeepChecks
from tui.panes.documents import DocumentsPane
from tui.panes.eval import EvalPane
from tui.panes.export import ExportPane
from tui.panes.generate import GeneratePane
from tui.panes.log import LogPane
from tui.panes.review import ReviewPane
from tui.panes.settings import SettingsPane
from tui.quality_figures import DeepFigures, PanelFigures
from tui.quality_model import QualityModel
from tui.sections import SectionPane
from tui.widgets.flow_guide import FlowGuide
from tui.widgets.form import COMPACT_BELOW_ROWS, set_compact
from tui.widgets.key_footer import KeyFooter
from tui.widgets.quality_panel import QualityPanel
from tui.widgets.quality_strip import QualityStrip

# The sections in the order of their keys; each pane declares its name, label and tooltip.
# Review and Log exist from the start (Log collects errors), and Documents when a project with no
# pairs opens on it; the others are built the first time they are shown, so opening a big project
# paints without querying for sections not in view.
SECTION_PANES: tuple[type[SectionPane], ...] = (
    DocumentsPane, GeneratePane, ReviewPane, ExportPane, SettingsPane, LogPane, EvalPane,
)
SECTIONS = tuple(pane.SECTION.name for pane in SECTION_PANES)
_PANE_OF = {pane.SECTION.name: pane for pane in SECTION_PANES}


def section_bindings() -> list[BindingType]:
    """A binding per section: digit n and F(n+1) show the n-th one (F1 is help)."""
    return [
        Binding(f"{n},f{n + 1}", f"section('{pane.SECTION.name}')", pane.SECTION.label,
                id=f"show_{pane.SECTION.name}", tooltip=pane.SECTION.tooltip)
        for n, pane in enumerate(SECTION_PANES, 1)
    ]
# Below this width the quality panel starts collapsed so the section keeps room.
PANEL_MIN_WIDTH = 100


class WorkspaceScreen(KeyOwner, Screen[None]):
    """Sections switch in place; the quality panel stays beside them."""

    KEY_PARTS = SECTION_PANES
    BINDINGS = [
        *section_bindings(),
        Binding("ctrl+b", "toggle_quality", "Quality", id="toggle_quality", tooltip="Show or hide the quality panel."),
        Binding("ctrl+k", "deep_checks", "Contradictions", id="deep_checks", tooltip="Check contradictions and near-duplicate groups now (automatic on smaller projects).", show=False),
        Binding("ctrl+o", "focus_quality", "Quality lines", id="focus_quality", tooltip="Move to the quality panel to jump to the pairs behind a line.", show=False),
    ]

    def __init__(self, store: Store, quality: QualityModel) -> None:
        super().__init__()
        self.store = store
        self.quality = quality
        self._panel_forced: bool | None = None

    def compose(self) -> ComposeResult:
        # A project without pairs starts where its next step is done: importing documents.
        initial = "review" if self.store.count_pairs() else "documents"
        yield Header(show_clock=False)
        yield FlowGuide(self.store, section_keys=self._section_keys(), section=initial, id="flow-guide")
        with Horizontal(id="workspace"):
            with ContentSwitcher(initial=initial, id="sections"):
                if initial == "documents":
                    yield DocumentsPane.for_project(self.store, self.quality)
                yield ReviewPane.for_project(self.store, self.quality)
                yield LogPane.for_project(self.store, self.quality)
            yield QualityPanel(id="quality-panel")
        yield QualityStrip(panel_key=self._panel_key_display(), id="quality-strip")
        yield KeyFooter()

    def _section_keys(self) -> dict[str, str]:
        # The first key of each section binding, as the person's keymap has it.
        return {name: self._binding_key(f"show_{name}") for name in SECTIONS}

    def _panel_key_display(self) -> str:
        # As the footer would show it (^b).
        return self.app.get_key_display(Binding(self._first_key("toggle_quality"), "toggle_quality"))

    def _binding_key(self, binding_id: str) -> str:
        """The first key of this screen's binding ``binding_id`` as a person types it."""
        return format_key(self._first_key(binding_id))

    def _first_key(self, binding_id: str) -> str:
        # The first key of the binding, as the person's keymap has it.
        binding = next(b for b in self.BINDINGS if isinstance(b, Binding) and b.id == binding_id)
        chosen = self.store.settings.tui.keymap.get(binding_id, "").strip() or binding.key
        return chosen.split(",")[0].strip()

    class Painted(Message):
        """The workspace has been drawn once: background work may start."""

    def on_mount(self) -> None:
        self.sub_title = self.store.settings.name
        self._apply_panel_width()
        self._apply_density()
        self.call_after_refresh(self._first_paint_done)

    def _first_paint_done(self) -> None:
        self.focus_section()
        self.post_message(self.Painted())

    def on_resize(self) -> None:
        self._apply_panel_width()
        self._apply_density()

    def _apply_density(self) -> None:
        set_compact(self, self.size.height < COMPACT_BELOW_ROWS)

    def _apply_panel_width(self) -> None:
        visible = self._panel_forced if self._panel_forced is not None else self.size.width >= PANEL_MIN_WIDTH
        self.query_one(QualityPanel).display = visible
        # The thresholds stay on screen: one line of counts while the panel is collapsed.
        self.query_one(QualityStrip).display = not visible

    @property
    def current_section(self) -> str:
        return self.query_one(ContentSwitcher).current or "review"

    async def action_section(self, name: str) -> None:
        """Switch to the section called ``name`` (building it on first use)."""
        switcher = self.query_one(ContentSwitcher)
        built = bool(switcher.query_children(f"#{name}"))
        if not built:
            await switcher.mount(_PANE_OF[name].for_project(self.store, self.quality))
            self._apply_density()
        switcher.current = name
        self.focus_section()
        self.query_one(FlowGuide).show_section(name)
        # A freshly built section has just read the store; one built earlier catches up now.
        pane = switcher.query_one(f"#{name}")
        if isinstance(pane, LogPane) or (built and isinstance(pane, DocumentsPane | GeneratePane | EvalPane)):
            pane.reload()

    def focus_section(self) -> None:
        """Put focus on the current section's first control that is not a text box.

        A text box would take the section keys as text; Documents on a project without documents
        is the exception, its path box first.
        """
        name = self.current_section
        pane = self.query_one(f"#{name}")
        if name == "review":
            pane.query_one("#pair-list").focus()
            return
        if isinstance(pane, DocumentsPane):
            pane.focus_home()
            return
        for widget in pane.query("*"):
            if widget.focusable and widget.display and not isinstance(widget, (Input, TextArea)):
                widget.focus()
                return

    def action_toggle_quality(self) -> None:
        """Show or hide the quality panel (remembered until the next toggle)."""
        panel = self.query_one(QualityPanel)
        self._panel_forced = not panel.display
        self._apply_panel_width()

    def action_deep_checks(self) -> None:
        """Check contradictions and near-duplicate groups now."""
        self.post_message(RunDeepChecks())

    def action_focus_quality(self) -> None:
        """Move focus to the quality panel's lines."""
        panel = self.query_one(QualityPanel)
        if not panel.display:
            self._panel_forced = True
            self._apply_panel_width()
        panel.query_one("#quality-lines").focus()

    def show_pairs(self, flt: PairFilter, label: str) -> None:
        """Open Review on the pairs matching ``flt``."""
        self.query_one(ContentSwitcher).current = "review"
        self.query_one(ReviewPane).show_filter(flt, label)
        self.focus_section()
        self.query_one(FlowGuide).show_section("review")

    def show_quality(self, figures: PanelFigures) -> None:
        """Redraw the quality panel and the strip standing in for it."""
        self.query_one(QualityPanel).show(figures)
        self.query_one(QualityStrip).figures = figures

    def pairs_changed(self, pair_ids: list[int]) -> None:
        """Pairs changed in the store: refresh what shows them."""
        self.query_one(ReviewPane).refresh_after_change(pair_ids)
        self.query_one(FlowGuide).project_changed()

    def on_export_finished(self, message: ExportFinished) -> None:
        # A first export completes the flow: the guide goes.
        self.query_one(FlowGuide).project_changed()

    def log_error(self, text: str, details: Sequence[str] = ()) -> None:
        """Add an error (and the lines explaining it) to the Log section."""
        self.query_one(LogPane).add_error(text, details)

    def duplicates_checked(self, deep: DeepFigures | None) -> None:
        """Near-duplicate lookups became possible, or groups were found: Review shows them."""
        self.query_one(ReviewPane).duplicates_checked(deep)


__all__ = ["SECTIONS", "SECTION_PANES", "WorkspaceScreen", "section_bindings"]
