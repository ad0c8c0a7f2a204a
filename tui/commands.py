"""One command-palette provider offering every action of the app by name."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.keys import all_keys

# Where each binding's action runs: the screen, or a pane found by id.
_TARGETS = {
    "Everywhere": None, "Review": "#review", "Review: editing": "#pair-detail",
    "Documents": "#documents", "Generate": "#generate", "Export": "#export", "Settings": "#settings",
}


class PairForgeCommands(Provider):
    """Every binding's action and every theme, by name."""

    def _commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        app: Any = self.app
        commands: list[tuple[str, str, Callable[[], Any]]] = []
        workspace = getattr(app, "workspace", None)
        for entry in all_keys():
            if entry.where not in _TARGETS or entry.binding_id in {"help_close"}:
                continue
            selector = _TARGETS[entry.where]
            name = f"{entry.where}: {entry.description}" if entry.where != "Everywhere" else entry.description
            commands.append((name, f"{entry.tooltip} ({entry.shown})", partial(self._run, selector, entry.action, entry.where)))
        for theme in sorted(app.available_themes):
            commands.append((f"Theme: {theme}", "Switch to this theme (remembered).", partial(setattr, app, "theme", theme)))
        del workspace
        return commands

    async def _run(self, selector: str | None, action: str, where: str) -> None:
        app: Any = self.app
        workspace = app.workspace
        if selector is None:
            target = app if action in {"help", "quit"} else workspace
        else:
            if workspace is None:
                return
            section = selector.lstrip("#")
            if where.startswith("Review"):
                section = "review"
            await workspace.action_section(section)
            target = workspace.query_one(selector)
        if target is not None:
            await target.run_action(action)

    async def discover(self) -> Hits:
        """Every command, for an empty query."""
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        """Commands whose name matches ``query`` fuzzily."""
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)


__all__ = ["PairForgeCommands"]
