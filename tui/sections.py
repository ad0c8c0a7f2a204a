"""What a workspace section declares about itself: its name, its label, what it is for.

The workspace's section keys, the help table and the command palette are built from these
declarations, so adding a section means writing its pane, not editing lists elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, cast

from tui.keys import KeyOwner, KeyScope

if TYPE_CHECKING:
    from textual.widget import Widget

    from engine.store import Store
    from tui.quality_model import QualityModel


@dataclass(frozen=True)
class Section:
    """One section of the workspace."""

    name: str  # its id in the workspace, and the argument of section('name')
    title: str  # where its keys apply, in help and the palette ("Documents")
    label: str  # the section key's footer label, kept short for 80 columns ("Docs")
    tooltip: str  # what the section is for


class SectionPane(KeyOwner):
    """Mixed into the pane of each section; a subclass sets ``SECTION`` and gets its key scope from it."""

    SECTION: ClassVar[Section]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "SECTION" in cls.__dict__:
            cls.KEY_SCOPE = KeyScope(cls.SECTION.title, section=cls.SECTION.name)

    @classmethod
    def for_project(cls, store: Store, quality: QualityModel) -> Widget:
        """This section's pane over ``store``; a pane that also shows ``quality`` overrides this."""
        # Every pane takes the store first and its id; the mixin itself has no constructor to say so.
        build = cast("Callable[..., Widget]", cls)
        return build(store, id=cls.SECTION.name)


__all__ = ["Section", "SectionPane"]
