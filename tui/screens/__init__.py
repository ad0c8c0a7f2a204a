"""The app's screens: the workspace with its sections, and modal dialogs."""

from __future__ import annotations

from tui.screens.confirm import BulkActionScreen, ConfirmScreen
from tui.screens.documents import DocumentsPane
from tui.screens.export import ExportPane
from tui.screens.generate import GeneratePane
from tui.screens.help import HelpScreen
from tui.screens.log import LogPane
from tui.screens.review import ReviewPane
from tui.screens.settings import SettingsPane
from tui.screens.workspace import WorkspaceScreen

__all__ = [
    "BulkActionScreen",
    "ConfirmScreen",
    "DocumentsPane",
    "ExportPane",
    "GeneratePane",
    "HelpScreen",
    "LogPane",
    "ReviewPane",
    "SettingsPane",
    "WorkspaceScreen",
]
