"""The demo pipeline end to end: import, plan, generate, check, split, export.

The embedded model is an optional extra, so this test drives the same pipeline with the
Ollama backend against tests/fake_ollama.py, which stands in for an Ollama server because
none can run here; the real ``ollama`` client talks to it over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.store import Store
from tests.fake_ollama import fake_ollama
from tui.cli import main


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    with fake_ollama(models=["qwen2.5:7b-instruct"]) as srv:
        monkeypatch.setenv("OLLAMA_HOST", srv.url)
        yield srv


def test_demo_runs_the_whole_pipeline(tmp_path: Path, server) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--dir", str(out), "--pairs", "12", "--backend", "ollama", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["import"]["failed"] == 0
    assert summary["import"]["pairs_imported"] == 16
    assert summary["generate"]["pairs"] == 12
    assert summary["split"]["train"] + summary["split"]["validation"] == 12 + 16
    card = Path(summary["export"]["card"])
    assert card.is_file() and card.read_text().startswith("---")
    assert (out / "export" / "messages" / "train.jsonl").is_file()
    with Store.open(out) as store:
        kinds = store.pair_counts("kind")
        assert kinds.get("refusal", 0) >= 1 and kinds.get("multi_hop", 0) >= 1
        assert store.settings.generation.backend == "ollama"

    # Running it again resumes the same project: nothing is imported or generated twice.
    again = CliRunner().invoke(main, ["demo", "--dir", str(out), "--pairs", "12", "--backend", "ollama", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["import"]["unchanged"] == 12
    with Store.open(out) as store:
        assert store.count_pairs() == 12 + 16


def test_demo_without_a_server_says_why_and_still_exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # nothing listens on the discard port
    result = CliRunner().invoke(main, ["demo", "--dir", str(tmp_path / "d"), "--pairs", "6", "--backend", "ollama"])
    assert result.exit_code == 1
    assert "Cannot reach Ollama" in result.output
    assert (tmp_path / "d" / "export" / "README.md").is_file()


def _embedded_default_installed() -> bool:
    import importlib.util

    from engine.generate.backends.llamacpp import BUILTIN_MODELS, DEFAULT_BUILTIN

    return all(
        importlib.util.find_spec(name) is not None
        for name in ("xllamacpp", BUILTIN_MODELS[DEFAULT_BUILTIN].package)
    )


@pytest.mark.skipif(not _embedded_default_installed(), reason="the embedded default model is not installed")
def test_demo_with_the_embedded_default_model(tmp_path: Path) -> None:
    """The README's first command, small: the embedded default model, no server, real pairs."""
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--dir", str(out), "--pairs", "5", "--no-app", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["generate"]["pairs"] >= 1, summary["generate"]
    with Store.open(out) as store:
        generated = [p for p in store.iter_pairs() if p.origin.job_id is not None]
        assert generated and all(p.origin.backend == "llamacpp" for p in generated)
        assert store.settings.generation.concurrency == 4  # the embedded server's slots
    assert (out / "export" / "README.md").is_file()
