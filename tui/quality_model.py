"""The quality model: the live report and the results of the checks that compare pairs with each other.

The App owns it and is the only one to change it, in its message handlers on the UI thread; it passes
the model down to the widgets that show it (as it passes the store), and they post messages up
(``RunDeepChecks``) to ask for more. Workers get the live report handed to them; the report guards
its own counters, so they may query it while pairs are written.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from tui.quality_figures import DeepFigures

if TYPE_CHECKING:
    from engine.quality import LiveReport


class QualityModel:
    """What the app knows about the dataset as a whole, beyond single pairs."""

    def __init__(self, *, auto_max_pairs: int, quiet_s: float) -> None:
        # Contradictions and near-duplicate groups run on their own up to ``auto_max_pairs``
        # pairs, once the report is built and again when writes have paused ``quiet_s`` seconds.
        self.auto_max_pairs = auto_max_pairs
        self.quiet_s = quiet_s
        self._report: LiveReport | None = None
        self._deep = DeepFigures()
        self._deep_due: float | None = None

    @property
    def report(self) -> LiveReport | None:
        """The engine's live quality report, None until it is built."""
        return self._report

    @property
    def deep(self) -> DeepFigures:
        """The latest contradiction and near-duplicate group figures."""
        return self._deep

    @property
    def pair_count(self) -> int:
        """Pairs the report counts (0 until it is built)."""
        return self._report.pair_count if self._report is not None else 0

    def near_duplicates_available(self) -> bool:
        """Whether near-duplicate lookups may run without the user asking (the index is built or cheap to build)."""
        report = self._report
        return report is not None and (report.index_ready or report.pair_count <= self.auto_max_pairs)

    # ------------------------------------------------------------------ changed by the App only

    def report_built(self, report: LiveReport, now: float) -> None:
        """The live report is ready: the cross-pair checks are due at once."""
        self._report = report
        self._deep_due = now

    def pairs_changed(self, now: float) -> None:
        """Pairs were written: the cross-pair checks are due once writes pause (unless only asked for)."""
        if self._deep.state != "too-big" and not self._deep.stale:
            self._deep_due = now + self.quiet_s

    def take_due(self, now: float) -> bool:
        """Whether the cross-pair checks should start on their own now; taking it clears the due time."""
        due = self._deep_due
        if due is None or now < due or self._report is None or self._deep.state == "running":
            return False
        self._deep_due = None
        return True

    def next_deep(self, *, forced: bool) -> DeepFigures | None:
        """The figures to show when the checks are asked for: "running" if they should run now, else why not.

        Returns None when they are running already. Over ``auto_max_pairs`` (and not ``forced``) the
        last results stay, marked as older than the data.
        """
        if self._deep.state == "running" or self._report is None:
            return None
        pairs = self._report.pair_count
        if not forced and pairs > self.auto_max_pairs:
            return replace(self._deep, stale=True) if self._deep.state == "done" else DeepFigures("too-big", pairs=pairs)
        return DeepFigures("running", pairs=pairs)

    def set_deep(self, deep: DeepFigures) -> None:
        """Record new cross-pair check figures."""
        self._deep = deep

    def close(self) -> None:
        """Stop the live report following the store."""
        if self._report is not None:
            self._report.close()


__all__ = ["QualityModel"]
