"""Typed messages workers and store listeners post to the app; handlers own the state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.message import Message

from engine.settings import ProjectSettings
from engine.store import PairFilter
from tui.quality_figures import DeepFigures, PanelFigures

if TYPE_CHECKING:
    from engine.quality import LiveReport


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


class RunDeepChecks(Message):
    """The user asked for contradictions and near-duplicate groups to be checked now."""


class ShowPairs(Message):
    """Jump to the Review screen showing the pairs matching ``pair_filter``."""

    def __init__(self, pair_filter: PairFilter, label: str) -> None:
        super().__init__()
        self.pair_filter = pair_filter
        self.label = label


class EngineFailed(Message):
    """An engine call failed with a message a person can act on."""

    def __init__(self, text: str, *, where: str = "") -> None:
        super().__init__()
        self.text = text
        self.where = where


class SettingsSaved(Message):
    """The Settings form saved ``settings``: the App applies the keymap (and the theme if it changed there)."""

    def __init__(self, settings: ProjectSettings, *, theme_changed: bool) -> None:
        super().__init__()
        self.settings = settings
        self.theme_changed = theme_changed


class ImportProgress(Message):
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


class ImportFinished(Message):
    """An import ended."""

    def __init__(self, outcome: ImportOutcome) -> None:
        super().__init__()
        self.outcome = outcome


class GenerationUpdate(Message):
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


class GenerationText(Message):
    """Streamed text of the answer being generated."""

    def __init__(self, job_id: int | None, text: str) -> None:
        super().__init__()
        self.job_id = job_id
        self.text = text


class GenerationFinished(Message):
    """The generation queue stopped (done, paused, cancelled or failed)."""

    def __init__(self, summary: str) -> None:
        super().__init__()
        self.summary = summary


class ExportProgress(Message):
    """How far an export has got."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__()
        self.done = done
        self.total = total

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ExportProgress)


class ExportFinished(Message):
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
    "QualityReady",
    "RunDeepChecks",
    "SettingsSaved",
    "ShowPairs",
]
