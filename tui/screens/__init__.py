"""The app's screens: the workspace that holds the section panes, and the key help."""

from __future__ import annotations

from tui.screens.help import HelpScreen
from tui.screens.workspace import WorkspaceScreen

__all__ = ["HelpScreen", "WorkspaceScreen"]
