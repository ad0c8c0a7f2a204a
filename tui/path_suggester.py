"""Completion of file-system paths typed into an Input."""

from __future__ import annotations

from pathlib import Path

from textual.suggester import Suggester


class PathSuggester(Suggester):
    """Suggests the first existing entry that completes the typed path (tab or → accepts)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        """The completed path, or None when nothing matches."""
        if not value:
            return None
        typed = Path(value).expanduser()
        folder, stem = (typed, "") if value.endswith("/") else (typed.parent, typed.name)
        try:
            names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir() if p.name.startswith(stem))
        except OSError:
            return None
        if not names:
            return None
        prefix = value[: len(value) - len(stem)]
        return prefix + names[0]


__all__ = ["PathSuggester"]
