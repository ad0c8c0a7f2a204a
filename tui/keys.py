"""Every binding of the app in one table, for the help screen and the command palette.

Nothing here lists the app's classes: each class with bindings declares where they apply
(``KEY_SCOPE``) and which of its parts have bindings of their own (``KEY_PARTS``); the table
is read from the App class down. So this module imports no widget, and the App, the help
screen and the palette can all import it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from textual.binding import Binding, BindingType
from textual.keys import format_key


@dataclass(frozen=True)
class KeyScope:
    """Where a class's bindings apply, as help and the command palette name it."""

    where: str
    # The workspace section shown before one of its actions runs from the palette; None: everywhere.
    section: str | None = None
    # Modal dialogs and the filter bar act only while open: their keys are listed, not offered by name.
    in_palette: bool = True


class KeyOwner:
    """Mixed into every class whose bindings help lists and the palette offers."""

    BINDINGS: ClassVar[list[BindingType]] = []
    KEY_SCOPE: ClassVar[KeyScope] = KeyScope("Everywhere")
    # The classes inside this one (children, dialogs it opens) that have bindings of their own.
    KEY_PARTS: ClassVar[tuple[type[KeyOwner], ...]] = ()


@dataclass(frozen=True)
class KeyEntry:
    """One binding as a person sees it: where it applies, its keys and what it does."""

    where: str
    binding_id: str
    keys: str
    description: str
    tooltip: str
    action: str
    owner: type[KeyOwner]

    @property
    def shown(self) -> str:
        """The keys as a person types them (``?`` and ``/``, not their names); ``keys`` keeps the names a keymap uses."""
        return ", ".join(format_key(key.strip()) for key in self.keys.split(","))

    @property
    def scope(self) -> KeyScope:
        """Where the binding applies."""
        return self.owner.KEY_SCOPE


@runtime_checkable
class RunsKeyActions(Protocol):
    """The App: it runs a binding's action where the binding applies (for the palette)."""

    async def run_key_action(self, entry: KeyEntry) -> None:
        """Run ``entry``'s action on the node it belongs to, showing its section first."""
        ...


def binding_owners(root: type[KeyOwner]) -> list[type[KeyOwner]]:
    """``root`` and every class with bindings inside it, each once, parents before their parts."""
    seen: list[type[KeyOwner]] = []

    def visit(owner: type[KeyOwner]) -> Iterator[type[KeyOwner]]:
        if owner in seen:
            return
        seen.append(owner)
        yield owner
        for part in owner.KEY_PARTS:
            yield from visit(part)

    return list(visit(root))


def all_keys(root: type[KeyOwner], keymap: dict[str, str] | None = None) -> list[KeyEntry]:
    """Every binding under ``root`` (the App class) with its current keys (``keymap`` overrides by binding id)."""
    keymap = keymap or {}
    entries: list[KeyEntry] = []
    for owner in binding_owners(root):
        for binding in owner.BINDINGS:
            if not isinstance(binding, Binding) or binding.id is None:
                continue
            entries.append(
                KeyEntry(owner.KEY_SCOPE.where, binding.id, keymap.get(binding.id, binding.key),
                         binding.description, binding.tooltip, binding.action, owner)
            )
    return entries


__all__ = ["KeyEntry", "KeyOwner", "KeyScope", "RunsKeyActions", "all_keys", "binding_owners"]
