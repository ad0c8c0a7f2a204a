"""Typed messages workers and store listeners post to the app; handlers own the state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.dom import DOMNode
from textual.message import Message
from textual.widget import Widget
from textual.worker import NoActiveWorker, get_current_worker

from engine.settings import ProjectSettings
from engine.store import PairFilter
from tui.quality_figures import DeepFigures, PanelFigures

if TYPE_CHECKING:
    from engine.quality import LiveReport


class PaneMessage(Message):
    """A message a pane (or one of its widgets) posts up: ``control`` is the widget it came from.

    The control is found where the message is made (the widget whose handler runs, or the
    widget that started the worker thread making it), so ``@on(EngineFailed, "#review")``
    matches without every post site naming itself. Messages the App posts have none.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        self._control: Widget | None = _posting_widget(self._sender)
        if self._sender is None:
            # Made on a worker thread: the widget that started the worker is the sender, which
            # Textual needs before it matches a selector at all.
            self._sender = self._control

    @property
    def control(self) -> DOMNode | None:
        """The pane or widget that posted the message, or None when the App did."""
        return self._control


def _posting_widget(pump: object) -> Widget | None:
    # Message records the message pump whose handler is running (None on a worker thread).
    if isinstance(pump, Widget):
        return pump
    try:
        node = get_current_worker().node
    except NoActiveWorker:
        return None
    return node if isinstance(node, Widget) else None


class PairsChanged(Message):
    """Pairs were added, edited or removed (posted from whichever thread wrote them)."""

    def __init__(self, pair_ids: list[int]) -> None:
        super().__init__()
        self.pair_ids = pair_ids

    def can_replace(self, message: Message) -> bool:
        # A burst of writes needs one refresh, not one per write: the later message, which is
        # kept, takes this one's ids too, so no change goes unseen.
        if isinstance(message, PairsChanged):
            message.pair_ids = self.pair_ids + message.pair_ids
            return True
        return False


class QualityReady(Message):
    """Fresh figures for the quality panel."""

    def __init__(self, figures: PanelFigures) -> None:
        super().__init__()
        self.figures = figures

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, QualityReady)


class DeepChecksReady(Message):
    """Contradictions and near-duplicate groups were checked (or could not be)."""

    def __init__(self, deep: DeepFigures) -> None:
        super().__init__()
        self.deep = deep


class LiveReportBuilt(Message):
    """The live quality report has read every pair and follows the store from now on."""

    def __init__(self, report: LiveReport) -> None:
        super().__init__()
        self.report = report


class RunDeepChecks(PaneMessage):
    """The user asked for contradictions and near-duplicate groups to be checked now."""


class ReviewVerdictChanged(PaneMessage):
    """A pair of the review sample was marked pass or fail, or a new sample was drawn: the panel's verdict is out of date."""


class ShowPairs(PaneMessage):
    """Jump to the Review screen showing the pairs matching ``pair_filter``."""

    def __init__(self, pair_filter: PairFilter, label: str) -> None:
        super().__init__()
        self.pair_filter = pair_filter
        self.label = label


class EngineFailed(PaneMessage):
    """An engine call failed with a message a person can act on."""

    def __init__(self, text: str, *, where: str = "") -> None:
        super().__init__()
        self.text = text
        self.where = where


class SettingsSaved(PaneMessage):
    """The Settings form saved ``settings``: the App applies the keymap (and the theme if it changed there)."""

    def __init__(self, settings: ProjectSettings, *, theme_changed: bool) -> None:
        super().__init__()
        self.settings = settings
        self.theme_changed = theme_changed


class ImportProgress(PaneMessage):
    """How far an import has got."""

    def __init__(self, done: int, total: int, current: str) -> None:
        super().__init__()
        self.done = done
        self.total = total
        self.current = current

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ImportProgress)


@dataclass
class ImportOutcome:
    """What an import did, in lines a person reads."""

    imported: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


class ImportFinished(PaneMessage):
    """An import ended."""

    def __init__(self, outcome: ImportOutcome) -> None:
        super().__init__()
        self.outcome = outcome


class GenerationUpdate(PaneMessage):
    """Live figures of the running generation queue, and the jobs that changed."""

    def __init__(self, stats: dict[str, Any], job_ids: list[int] | None = None) -> None:
        super().__init__()
        self.stats = stats
        self.job_ids = job_ids or []

    def can_replace(self, message: Message) -> bool:
        # The newer figures win; the changed jobs of both are kept, so no row goes stale.
        if isinstance(message, GenerationUpdate):
            message.job_ids = self.job_ids + message.job_ids
            return True
        return False


class GenerationText(PaneMessage):
    """Streamed text of the answer being generated."""

    def __init__(self, job_id: int | None, text: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.text = text


class GenerationFinished(PaneMessage):
    """The generation queue stopped (done, paused, cancelled or failed)."""

    def __init__(self, summary: str) -> None:
        super().__init__()
        self.summary = summary


class ExportProgress(PaneMessage):
    """How far an export has got."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__()
        self.done = done
        self.total = total

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ExportProgress)


class ExportFinished(PaneMessage):
    """An export ended; ``card`` is the dataset card's text and ``summary`` one line saying what was written."""

    def __init__(self, out_dir: str, files: list[str], card: str, summary: str = "") -> None:
        super().__init__()
        self.out_dir = out_dir
        self.files = files
        self.card = card
        self.summary = summary


__all__ = [
    "DeepChecksReady",
    "EngineFailed",
    "ExportFinished",
    "ExportProgress",
    "GenerationFinished",
    "GenerationText",
    "GenerationUpdate",
    "ImportFinished",
    "ImportOutcome",
    "ImportProgress",
    "LiveReportBuilt",
    "PairsChanged",
    "PaneMessage",
    "QualityReady",
    "ReviewVerdictChanged",
    "RunDeepChecks",
    "SettingsSaved",
    "ShowPairs",
]
