"""The quality panel: thresholds as gauges, composition warnings and warning counts.

Each line leads to the Review screen filtered to the pairs behind it.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option, OptionDoesNotExist

from engine.store import PairFilter
from tui.messages import RunDeepChecks, ShowPairs
from tui.quality_figures import DeepFigures, DiversityFigure, PanelFigures, ReviewFigure
from tui.widgets.filter_bar import NEAR_DUPLICATE_CHECK
from tui.widgets.gauge import gauge_content

# Cells of text in a panel line: its CSS width (34) less its border, padding and scrollbar gutter.
# The width is fixed (and the panel may be hidden when it redraws), so lines are drawn for it.
PANEL_TEXT_WIDTH = 30


class QualityPanel(Vertical):
    """Dataset health at a glance, always beside the current screen."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._targets: dict[str, tuple[PairFilter, str]] = {}
        # What the panel shows now (None until the first figures arrive).
        self.figures: PanelFigures | None = None

    def compose(self) -> ComposeResult:
        yield Label("Quality", id="quality-title")
        yield OptionList(id="quality-lines")

    def show(self, figures: PanelFigures) -> None:
        """Redraw from ``figures``, keeping the same line highlighted (by what it is, not where it was)."""
        self.figures = figures
        options = self.query_one("#quality-lines", OptionList)
        highlighted = options.highlighted
        highlighted_id = options.get_option_at_index(highlighted).id if highlighted is not None else None
        self._targets.clear()
        lines: list[Option | None] = []
        for gauge in figures.gauges:
            key = f"gauge:{gauge.key}"
            self._targets[key] = (gauge.pair_filter, gauge.label)
            lines.append(Option(gauge_content(gauge.label, gauge.value, gauge.target, gauge.status, width=PANEL_TEXT_WIDTH), id=key))
        if figures.corpus_line:
            self._targets["corpus"] = (PairFilter(), "all pairs")
            lines.append(Option(Content(figures.corpus_line), id="corpus"))
        for n, line in enumerate(figures.composition):
            key = f"composition:{n}"
            self._targets[key] = (PairFilter(), "all pairs")
            lines.append(Option(Content.assemble(("! ", "bold $warning"), line), id=key))
        for n, line in enumerate(figures.consistency):
            key = f"consistency:{n}"
            self._targets[key] = (PairFilter(), "all pairs")
            lines.append(Option(Content.assemble(("~ ", "bold $warning"), line), id=key))
        lines.extend(self._diversity_lines(figures.diversity))
        if figures.review is not None:
            lines.append(self._review_line(figures.review))
        lines.extend(self._deep_lines(figures.deep))
        if figures.warnings:
            lines.append(None)
            for check, title, count in figures.warnings:
                key = f"warning:{check}"
                self._targets[key] = (PairFilter(warning=check), f"warning {check}")
                lines.append(Option(Content.assemble((f"{count:>5} ", "bold $warning"), title), id=key))
        else:
            lines.append(Option(Content.styled("No pair warnings.", "$success"), id="no-warnings"))
        options.set_options(lines)
        if highlighted_id is not None:
            try:
                options.highlighted = options.get_option_index(highlighted_id)
            except OptionDoesNotExist:  # that line is gone: stay near where it was
                options.highlighted = min(highlighted or 0, options.option_count - 1) if options.option_count else None

    def _diversity_lines(self, diversity: DiversityFigure | None) -> list[Option | None]:
        """The diversity summary (coloured by its status) and a line per diversity warning."""
        if diversity is None:
            return []
        self._targets["diversity"] = (diversity.pair_filter, "the commonest opener's kind and mode")
        style = {"ok": "$success", "warning": "$warning"}.get(diversity.status, "$text-muted")
        lines: list[Option | None] = [Option(Content.styled(diversity.summary, style), id="diversity")]
        for n, (text, target) in enumerate(diversity.warnings):
            key = f"diversity:{n}"
            self._targets[key] = (target, "pairs behind the diversity warning")
            lines.append(Option(Content.assemble(("~ ", "bold $warning"), text), id=key))
        return lines

    def _review_line(self, review: ReviewFigure) -> Option:
        """The review sample's verdict, coloured by it; Enter opens the sample."""
        if review.pair_filter is not None:
            self._targets["review"] = (review.pair_filter, "review sample")
        style = {"ready": "$success", "not ready": "$error", "in progress": "$warning"}.get(review.status, "$text-muted")
        return Option(Content.styled(review.message, style), id="review")

    def _deep_lines(self, deep: DeepFigures) -> list[Option | None]:
        """Lines for the checks that compare pairs with each other."""
        if deep.state == "waiting":
            return []
        if deep.state == "running":
            return [Option(Content.styled("Checking contradictions and near duplicates…", "$text-muted"), id="deep:running")]
        if deep.state == "failed":
            return [Option(Content.assemble(("! ", "bold $error"), "Contradiction check failed (see the log); Enter retries."),
                           id="deep:run")]
        if deep.state == "too-big":
            return [Option(Content.assemble(
                ("? ", "bold $warning"),
                f"Contradictions and near-duplicate groups are not checked automatically on {deep.pairs} pairs; "
                "Enter (or ctrl+k) checks now.",
            ), id="deep:run")]
        lines: list[Option | None] = []
        if deep.contradictions:
            ids = sorted({i for pair in deep.contradictions for i in pair})
            self._targets["deep:contradictions"] = (PairFilter(ids=ids), "contradicting pairs")
            lines.append(Option(Content.assemble(
                (f"{len(deep.contradictions):>5} ", "bold $error"), "contradiction" + ("s" if len(deep.contradictions) != 1 else ""),
            ), id="deep:contradictions"))
        else:
            lines.append(Option(Content.styled("No contradictions.", "$success"), id="deep:none"))
        if deep.groups:
            self._targets["deep:groups"] = (PairFilter(warning=NEAR_DUPLICATE_CHECK), "has near duplicates")
            lines.append(Option(Content.assemble(
                (f"{deep.groups:>5} ", "bold $warning"), "near-duplicate group" + ("s" if deep.groups != 1 else ""),
            ), id="deep:groups"))
        if deep.stale:
            lines.append(Option(Content.styled(
                "Checked before the latest changes; Enter (or ctrl+k) checks again.", "$text-muted"), id="deep:run"))
        return lines

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option_id == "deep:run":
            event.stop()
            self.post_message(RunDeepChecks())
            return
        target = self._targets.get(event.option_id or "")
        if target is not None:
            event.stop()
            self.post_message(ShowPairs(target[0], target[1]))


__all__ = ["QualityPanel"]
