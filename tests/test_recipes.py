"""Training recipes next to an export: every script and config parses, the scripts read the export's
data with the datasets library, and the TRL script runs two optimizer steps on CPU against a tiny
randomly initialised model (when torch, trl and peft are installed: the optional ``[train]`` extra)."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from engine.export import ExportOptions, export_dataset, export_trial_set, recipe_max_length
from engine.store import Store
from tests.trial_support import TOKENIZER_DIR, build_diverse_project

SCRIPTS = ("train_trl.py", "train_unsloth.py")


@pytest.fixture
def diverse(project: Store) -> Store:
    build_diverse_project(project, n=160, clusters=2, tokenizer=True)
    return project


def _load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recipe_max_length_rounds_the_p95_up():
    assert recipe_max_length(145, 2048) == 192
    assert recipe_max_length(192, 2048) == 192
    assert recipe_max_length(20, 2048) == 128
    assert recipe_max_length(None, 2048) == 2048


def test_every_script_and_config_parses_and_points_at_the_export(diverse, tmp_path: Path):
    out = tmp_path / "full"
    result = export_dataset(diverse, out, ExportOptions(formats=["all"]))
    assert [p.name for p in result.recipes] == list(SCRIPTS)
    for name in SCRIPTS:
        source = (out / name).read_text(encoding="utf-8")
        ast.parse(source)
        assert "full set" in source
        module = _load_script(out / name)  # top level only: no torch needed
        assert module.DATA_FORMAT == "messages"
        for relative in [*module.TRAIN_FILES, *module.VALIDATION_FILES]:
            assert (out / relative).is_file()
        assert result.recipe_max_length == module.MAX_LENGTH
        args = module.parse_args([])
        assert args.model == diverse.settings.export.base_model and args.max_length == module.MAX_LENGTH
    card = (out / "README.md").read_text().splitlines()
    tokens_row = card[card.index("| Min | Mean | Median | p95 | p99 | Max |") + 2]
    p95 = int(tokens_row.split("|")[4])
    assert result.recipe_max_length == recipe_max_length(p95, 2048)
    info = json.loads((out / "dataset_info.json").read_text())
    assert all((out / entry["file_name"]).is_file() for entry in info.values())
    axolotl = yaml.safe_load((out / "axolotl-datasets.yml").read_text())
    assert all(Path(entry["path"]).is_file() for entry in axolotl["datasets"] + axolotl["test_datasets"])


def test_scripts_of_a_trial_subset_point_at_its_files(diverse, tmp_path: Path):
    out = tmp_path / "trial"
    result = export_trial_set(diverse, out, 50, ExportOptions(base_model="my/base-model"))
    module = _load_script(out / "train_trl.py")
    assert module.BASE_MODEL == "my/base-model"
    assert "trial subset" in (out / "train_trl.py").read_text()
    train, validation = module.load_splits()
    assert len(train) + len(validation) == result.exported == 50
    assert train.column_names == ["messages"]


@pytest.mark.parametrize("fmt", ["hf", "sharegpt"])
def test_scripts_read_conversations_from_the_other_chat_formats(diverse, tmp_path: Path, fmt: str):
    out = tmp_path / fmt
    result = export_dataset(diverse, out, ExportOptions(formats=[fmt]))
    module = _load_script(out / "train_unsloth.py")
    assert fmt == module.DATA_FORMAT
    train, validation = module.load_splits()
    assert len(train) + len(validation) == result.exported
    assert train.column_names == ["messages"]
    assert {turn["role"] for turn in train[0]["messages"]} == {"user", "assistant"}


def test_no_script_without_a_chat_format_and_the_note_says_which_to_add(diverse, tmp_path: Path):
    result = export_dataset(diverse, tmp_path / "alpaca", ExportOptions(formats=["alpaca"]))
    assert result.recipes == []
    assert not (tmp_path / "alpaca" / "train_trl.py").exists()
    assert any("--format messages" in note for note in result.notes)


def _tiny_model(folder: Path) -> None:
    """A two-layer Llama with random weights and the test tokenizer, saved as a model folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def test_trl_script_runs_two_optimizer_steps_on_cpu(diverse, tmp_path: Path):
    for name in ("torch", "trl", "peft"):
        pytest.importorskip(name)
    out = tmp_path / "trial"
    export_trial_set(diverse, out, 24)
    model = tmp_path / "tiny-model"
    _tiny_model(model)
    run = tmp_path / "run"
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, str(out / "train_trl.py"), "--model", str(model), "--output-dir", str(run),
         "--max-steps", "2", "--eval-steps", "1", "--batch-size", "2", "--grad-accum", "2"],
        capture_output=True, text=True, timeout=900, env={"HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
                                                           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    seconds = time.perf_counter() - started
    assert completed.returncode == 0, completed.stderr[-4000:]
    summary = json.loads((run / "pairforge-run.json").read_text())
    assert summary["optimizer_steps"] == 2
    assert summary["best_eval_loss"] is not None and summary["best_checkpoint"]
    state = json.loads((Path(summary["best_checkpoint"]) / "trainer_state.json").read_text())
    assert any("eval_loss" in entry for entry in state["log_history"])
    assert (run / "adapter_config.json").is_file()
    print(f"two optimizer steps with eval: {seconds:.1f} s")
