"""Every binding of the app in one table, for the help screen and the command palette."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding
from textual.keys import format_key


@dataclass(frozen=True)
class KeyEntry:
    """One binding as a person sees it: where it applies, its keys and what it does."""

    where: str
    binding_id: str
    keys: str
    description: str
    tooltip: str
    action: str

    @property
    def shown(self) -> str:
        """The keys as a person types them (``?`` and ``/``, not their names); ``keys`` keeps the names a keymap uses."""
        return ", ".join(format_key(key.strip()) for key in self.keys.split(","))


def binding_owners() -> list[tuple[str, type]]:
    """The classes declaring bindings, with the place they apply."""
    from tui.app import PairForgeApp
    from tui.screens.confirm import BulkActionScreen
    from tui.screens.documents import DocumentsPane
    from tui.screens.export import ExportPane
    from tui.screens.generate import GeneratePane
    from tui.screens.review import ReviewPane
    from tui.screens.settings import SettingsPane
    from tui.screens.workspace import WorkspaceScreen
    from tui.widgets.filter_bar import FilterBar
    from tui.widgets.pair_detail import PairDetail

    return [
        ("Everywhere", PairForgeApp), ("Everywhere", WorkspaceScreen),
        ("Review", ReviewPane), ("Review: editing", PairDetail), ("Review: filters", FilterBar),
        ("Review: bulk", BulkActionScreen), ("Documents", DocumentsPane), ("Generate", GeneratePane),
        ("Export", ExportPane), ("Settings", SettingsPane),
    ]


def all_keys(keymap: dict[str, str] | None = None) -> list[KeyEntry]:
    """Every binding with its current keys (``keymap`` overrides by binding id)."""
    keymap = keymap or {}
    entries: list[KeyEntry] = []
    for where, owner in binding_owners():
        for binding in owner.BINDINGS:
            if not isinstance(binding, Binding) or binding.id is None:
                continue
            entries.append(
                KeyEntry(where, binding.id, keymap.get(binding.id, binding.key), binding.description,
                         binding.tooltip, binding.action)
            )
    return entries


__all__ = ["KeyEntry", "all_keys", "binding_owners"]
