"""Settings in layers: the file holds what the person wrote and changed; the environment and flags sit on top."""

from __future__ import annotations

import asyncio
import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from engine.cli import main
from engine.errors import ConfigError
from engine.settings import (
    SETTINGS_FILE,
    ProjectSettings,
    SettingsLayers,
    settings_changes,
    settings_without_project,
)
from engine.store import Store
from tests.fake_ollama import fake_ollama

JUDGE_MODEL = "qwen2.5:7b"


def _file(root: Path) -> dict[str, Any]:
    return tomllib.loads((root / SETTINGS_FILE).read_text(encoding="utf-8"))


@pytest.fixture
def project_root(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    Store.init(root).close()
    return root


async def _pick_theme_in_the_app(root: Path, theme: str) -> None:
    """Open the app as ``pairforge open --backend llamacpp`` does and pick ``theme``."""
    from tui.app import PairForgeApp

    app = PairForgeApp(root, backend="llamacpp")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.store is not None
        assert app.store.settings.generation.model == "model-from-env"
        assert app.store.settings.generation.backend == "llamacpp"
        assert app.store.settings.quality.min_pairs == 50
        app.theme = theme
        await pilot.pause()


def test_environment_and_flags_never_reach_the_file(project_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An env override and ``open --backend``, then a theme change in the app and ``judge --threshold``:
    the file gains exactly the theme and the threshold."""
    before = _file(project_root)
    monkeypatch.setenv("PAIRFORGE_GENERATION__MODEL", "model-from-env")
    monkeypatch.setenv("PAIRFORGE_QUALITY__MIN_PAIRS", "50")
    asyncio.run(_pick_theme_in_the_app(project_root, "high-contrast"))
    with fake_ollama() as server:
        result = CliRunner().invoke(
            main, ["-p", str(project_root), "judge", "--host", server.url, "--model", JUDGE_MODEL, "--threshold", "6.5"],
        )
    assert result.exit_code == 0, result.output
    expected = copy.deepcopy(before)
    expected["tui"]["theme"] = "high-contrast"
    expected["quality"]["judge_threshold"] = 6.5
    assert _file(project_root) == expected


def test_a_change_writes_only_itself_over_what_the_person_wrote(tmp_path: Path) -> None:
    """A short hand-written file stays short: a change adds its own value, not every default."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / SETTINGS_FILE).write_text('name = "handmade"\n\n[generation]\nmodel = "mine:7b"\n', encoding="utf-8")
    with Store.open(root) as store:
        store.change_settings({"tui": {"theme": "tidewater"}, "quality": {"tokenizer": None}})
        assert store.settings.tui.theme == "tidewater"
    assert _file(root) == {"name": "handmade", "generation": {"model": "mine:7b"}, "tui": {"theme": "tidewater"}}


def test_a_hand_edit_made_while_the_project_is_open_is_kept(project_root: Path) -> None:
    with Store.open(project_root) as store:
        (project_root / SETTINGS_FILE).write_text('name = "proj"\n[generation]\nmodel = "edited-by-hand"\n', encoding="utf-8")
        store.change_settings({"tui": {"theme": "tidewater"}})
        assert store.settings.generation.model == "edited-by-hand"
    assert _file(project_root) == {"name": "proj", "generation": {"model": "edited-by-hand"}, "tui": {"theme": "tidewater"}}


def test_an_emptied_value_falls_back_to_its_default(project_root: Path) -> None:
    with Store.open(project_root) as store:
        store.change_settings({"quality": {"tokenizer": "/models/tok"}})
        assert _file(project_root)["quality"]["tokenizer"] == "/models/tok"
        store.change_settings({"quality": {"tokenizer": None}})
        assert "tokenizer" not in _file(project_root)["quality"]
        assert store.settings.quality.tokenizer is None


def test_settings_are_read_only(project_root: Path) -> None:
    with Store.open(project_root) as store:
        with pytest.raises(ValidationError, match="frozen"):
            store.settings.generation.model = "assigned"  # type: ignore[misc]
        with pytest.raises(AttributeError):
            store.settings = ProjectSettings()  # type: ignore[misc]


def test_an_invalid_change_writes_nothing(project_root: Path) -> None:
    text = (project_root / SETTINGS_FILE).read_text(encoding="utf-8")
    with Store.open(project_root) as store:
        with pytest.raises(ConfigError, match="min_pairs"):
            store.change_settings({"quality": {"min_pairs": 0}})
        assert store.settings.quality.min_pairs == 1000
    assert (project_root / SETTINGS_FILE).read_text(encoding="utf-8") == text


def test_flags_sit_above_the_environment_which_sits_above_the_file(project_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRFORGE_GENERATION__MODEL", "from-env")
    monkeypatch.setenv("PAIRFORGE_GENERATION__BACKEND", "openai")
    with Store.open(project_root) as store:
        store.override_settings({"generation": {"backend": "llamacpp"}})
        assert (store.settings.generation.model, store.settings.generation.backend) == ("from-env", "llamacpp")
        assert (store.file_settings.generation.model, store.file_settings.generation.backend) == ("qwen2.5:7b-instruct", "ollama")
        assert store.settings_layers.overridden() == {
            "generation.model": "PAIRFORGE_GENERATION__MODEL", "generation.backend": "a command-line flag",
        }
        # A change the person makes to an overridden value is saved; the override still wins for this run.
        store.change_settings({"generation": {"model": "chosen"}})
        assert store.file_settings.generation.model == "chosen" and store.settings.generation.model == "from-env"
    assert _file(project_root)["generation"]["model"] == "chosen"
    assert _file(project_root)["generation"]["backend"] == "ollama"


def test_a_new_project_file_holds_no_environment_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRFORGE_GENERATION__MODEL", "from-env")
    Store.init(tmp_path / "proj").close()
    assert _file(tmp_path / "proj")["generation"]["model"] == "qwen2.5:7b-instruct"


def test_a_bad_environment_variable_is_named_with_its_fix(project_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRFORGE_GENERATION__CONCURRENCY", "lots")
    with pytest.raises(ConfigError, match=r"PAIRFORGE_GENERATION__CONCURRENCY.*unset it"):
        Store.open(project_root)


def test_check_strict_is_for_one_run(project_root: Path) -> None:
    before = _file(project_root)
    result = CliRunner().invoke(main, ["-p", str(project_root), "check", "--strict", "--json"])
    assert result.exit_code == 1, result.output  # an empty project misses every threshold
    assert _file(project_root) == before


def test_settings_changes_lists_only_what_differs() -> None:
    shown = ProjectSettings()
    edited = shown.model_copy(update={
        "generation": shown.generation.model_copy(update={"model": "new"}),
        "quality": shown.quality.model_copy(update={"tokenizer": None}),
        "tui": shown.tui.model_copy(update={"keymap": {"accept": "y"}}),
    })
    assert settings_changes(shown, edited) == {"generation": {"model": "new"}, "tui": {"keymap": {"accept": "y"}}}


def test_commands_without_a_project_still_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAIRFORGE_GENERATION__HOSTS", '["http://gpu:11434"]')
    assert settings_without_project().generation.hosts == ["http://gpu:11434"]


def test_layers_load_without_a_file(tmp_path: Path) -> None:
    layers = SettingsLayers.load(tmp_path, environ={})
    assert layers.file == layers.effective == ProjectSettings()
