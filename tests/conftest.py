"""Fixtures shared by every test module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.resources import sample_docs_dir
from engine.store import Store

# Tests never reach a real model server or the Hugging Face Hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")


@pytest.fixture
def sample_docs() -> Path:
    """The bundled sample corpus."""
    return sample_docs_dir()


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Store]:
    """A new, empty project in a temporary folder."""
    store = Store.init(tmp_path / "project")
    yield store
    store.close()
