"""One command-palette provider offering every action of the app by name."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.keys import KeyOwner, RunsKeyActions, all_keys

Command = tuple[str, str, Callable[[], Any]]


class PairForgeCommands(Provider):
    """Every binding's action and every theme, by name.

    The actions are read from the App's key declarations (``tui.keys``) and run by the App,
    which knows where each applies; this provider knows neither the App nor its panes.
    """

    def _commands(self) -> list[Command]:
        app = self.app
        root = type(app)
        commands: list[Command] = []
        if isinstance(app, RunsKeyActions) and issubclass(root, KeyOwner):
            for entry in all_keys(root):
                if not entry.scope.in_palette:
                    continue
                name = entry.description if entry.scope.section is None else f"{entry.where}: {entry.description}"
                run: Callable[[], Coroutine[Any, Any, None]] = partial(app.run_key_action, entry)
                commands.append((name, f"{entry.tooltip} ({entry.shown})", run))
        for theme in sorted(app.available_themes):
            commands.append((f"Theme: {theme}", "Switch to this theme (remembered).", partial(setattr, app, "theme", theme)))
        return commands

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
