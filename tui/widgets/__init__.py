"""The app's widgets, one per module."""

from __future__ import annotations

from tui.widgets.filter_bar import FilterBar
from tui.widgets.flow_guide import FlowGuide
from tui.widgets.job_list import JobList
from tui.widgets.key_footer import KeyFooter
from tui.widgets.log_view import LogView
from tui.widgets.near_duplicates import NearDuplicateList
from tui.widgets.pair_detail import PairDetail
from tui.widgets.pair_list import PairList
from tui.widgets.quality_panel import QualityPanel
from tui.widgets.quality_strip import QualityStrip
from tui.widgets.source_view import SourceView

__all__ = [
    "FilterBar",
    "FlowGuide",
    "JobList",
    "KeyFooter",
    "LogView",
    "NearDuplicateList",
    "PairDetail",
    "PairList",
    "QualityPanel",
    "QualityStrip",
    "SourceView",
]
