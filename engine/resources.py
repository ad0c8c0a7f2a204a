"""Where the files shipped with PairForge live, installed or in a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    # A wheel puts data under engine/_data; an editable install or a checkout keeps it at the root.
    installed = _PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name


def themes_dir() -> Path:
    """The folder of built-in ``*.toml`` themes."""
    return _shipped("themes")


def sample_docs_dir() -> Path:
    """The bundled sample corpus used by the demo and the tests."""
    return _shipped("sample_docs")


def prompts_dir() -> Path:
    """The built-in prompt packs (TOML)."""
    return _PACKAGE / "generate" / "packs"
