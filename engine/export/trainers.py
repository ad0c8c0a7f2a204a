"""Trainer configs pointing at the exported files: LLaMA-Factory's ``dataset_info.json`` and an
Axolotl ``datasets:`` snippet, each with the format keys its loader reads."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engine.export.options import ExportedFile

LLAMA_FACTORY_FILE = "dataset_info.json"
AXOLOTL_FILE = "axolotl-datasets.yml"

# LLaMA-Factory's column and tag names per format (data/README.md of LLaMA-Factory).
_LLAMA_FACTORY: dict[str, dict[str, Any]] = {
    "alpaca": {
        "columns": {"prompt": "instruction", "query": "input", "response": "output",
                    "system": "system", "history": "history"},
    },
    "sharegpt": {
        "formatting": "sharegpt",
        "columns": {"messages": "conversations"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                 "assistant_tag": "gpt", "system_tag": "system"},
    },
    "messages": {
        "formatting": "sharegpt",
        "columns": {"messages": "messages"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                 "assistant_tag": "assistant", "system_tag": "system"},
    },
    "completion": {
        "columns": {"prompt": "prompt", "response": "completion"},
    },
}


def dataset_slug(name: str) -> str:
    """A dataset name usable as a config key: lower case, letters, digits and underscores."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "pairforge"


def llama_factory_info(files: Sequence[ExportedFile], slug: str, *, has_system: bool) -> dict[str, Any]:
    """``dataset_info.json`` entries, one per format and split, named ``<slug>_<format>_<split>``.

    ``file_name`` is relative to the export folder (LLaMA-Factory's ``dataset_dir``).
    """
    info: dict[str, Any] = {}
    for exported in files:
        spec = _LLAMA_FACTORY.get(exported.format)
        if spec is None:
            continue
        entry: dict[str, Any] = {"file_name": exported.path.as_posix()}
        entry.update(json.loads(json.dumps(spec)))
        if exported.format == "alpaca" and not has_system:
            # No system column was written; pointing at a missing column would fail to load.
            entry["columns"].pop("system")
        info[f"{slug}_{exported.format}_{exported.split}"] = entry
    return info


def _axolotl_entry(exported: ExportedFile, out_dir: Path) -> list[str]:
    path = json.dumps((out_dir / exported.path).as_posix())
    lines = [f"  - path: {path}", "    ds_type: json", "    split: train"]
    if exported.format == "alpaca":
        lines.append("    type: alpaca")
    elif exported.format == "messages":
        lines += [
            "    type: chat_template",
            "    field_messages: messages",
            "    message_property_mappings:",
            "      role: role",
            "      content: content",
        ]
    elif exported.format == "sharegpt":
        lines += [
            "    type: chat_template",
            "    field_messages: conversations",
            "    message_property_mappings:",
            "      role: from",
            "      content: value",
            "    roles:",
            '      system: ["system"]',
            '      user: ["human"]',
            '      assistant: ["gpt"]',
        ]
    elif exported.format == "completion":
        # Axolotl's user-defined prompt format: the prompt is the input, the loss is on the completion.
        lines += [
            "    type:",
            "      field_instruction: prompt",
            "      field_output: completion",
            '      format: "{instruction}"',
            '      no_input_format: "{instruction}"',
        ]
    return lines


def axolotl_snippet(files: Sequence[ExportedFile], out_dir: Path) -> str:
    """YAML for Axolotl: train files under ``datasets:``, validation files under ``test_datasets:``.

    Each JSONL file is its own dataset, so its rows are its ``train`` split.
    """
    jsonl = [f for f in files if f.format in _LLAMA_FACTORY]
    lines = ["# Axolotl dataset entries for this export; paste the formats you train on into your config.",
             "# Pick one format per run: each entry below holds the same pairs.", "datasets:"]
    for exported in (f for f in jsonl if f.split == "train"):
        lines += _axolotl_entry(exported, out_dir)
    validation = [f for f in jsonl if f.split != "train"]
    if validation:
        lines.append("test_datasets:")
        for exported in validation:
            lines += _axolotl_entry(exported, out_dir)
    return "\n".join(lines) + "\n"
