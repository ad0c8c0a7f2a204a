"""The workspace's section panes: one per section, each given the store and the quality
model by the workspace and posting messages up to it."""

from __future__ import annotations

from tui.panes.documents import DocumentsPane
from tui.panes.export import ExportPane
from tui.panes.generate import GeneratePane
from tui.panes.log import LogPane
from tui.panes.review import ReviewPane
from tui.panes.settings import SettingsPane

__all__ = ["DocumentsPane", "ExportPane", "GeneratePane", "LogPane", "ReviewPane", "SettingsPane"]
