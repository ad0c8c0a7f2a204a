"""Themes from ``themes/*.toml``, validated by a pydantic model and turned into Textual themes."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from textual.color import Color, ColorParseError
from textual.theme import Theme

from engine.errors import ConfigError
from engine.resources import themes_dir

DEFAULT_THEME = "pairforge-dark"


class ThemeFile(BaseModel):
    """One theme file: a name plus the colours Textual derives its variables from."""

    model_config = ConfigDict(extra="forbid")

    name: str
    dark: bool = True
    primary: str
    secondary: str | None = None
    accent: str | None = None
    warning: str | None = None
    error: str | None = None
    success: str | None = None
    foreground: str | None = None
    background: str | None = None
    surface: str | None = None
    panel: str | None = None

    @field_validator(
        "primary", "secondary", "accent", "warning", "error", "success",
        "foreground", "background", "surface", "panel",
    )
    @classmethod
    def _is_colour(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                Color.parse(value)
            except ColorParseError as exc:
                raise ValueError(f"{value!r} is not a colour (use #RRGGBB or a colour name)") from exc
        return value

    def to_theme(self) -> Theme:
        """The Textual theme this file describes."""
        return Theme(**self.model_dump())


def load_theme_file(path: Path) -> Theme:
    """Read and validate one theme file; raises ConfigError naming the file and the fix."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Theme file {path} cannot be read ({exc}); fix its TOML or remove it.") from exc
    try:
        return ThemeFile.model_validate(data).to_theme()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"Theme file {path}: {where}: {first['msg']}; fix the value or remove the file.") from exc


def load_themes(folder: Path | None = None) -> tuple[list[Theme], list[str]]:
    """Every valid theme in ``folder`` (default: the built-in themes), plus one message per bad file."""
    folder = folder or themes_dir()
    themes: list[Theme] = []
    problems: list[str] = []
    for path in sorted(folder.glob("*.toml")):
        try:
            themes.append(load_theme_file(path))
        except ConfigError as exc:
            problems.append(str(exc))
    return themes, problems


__all__ = ["DEFAULT_THEME", "ThemeFile", "load_theme_file", "load_themes"]
