"""Existing datasets (JSON arrays and JSONL) normalized into imported pairs.

Supported row formats, detected per file from its first valid rows:

- ``alpaca``: instruction, input (kept as the pair's context), output; optional system
  and history (a list of [user, assistant] turns before the instruction);
- ``sharegpt``: conversations of {from, value} with from = system | human | gpt;
- ``messages``: OpenAI chat rows, messages of {role, content};
- ``prompt_completion``: prompt and completion.

Rows are kept as they are, flaws included: judging them is the quality checks' job.
A malformed row becomes a warning naming its file and line, and the rest is imported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import IngestError
from engine.ingest.reading import clean_text
from engine.models import Message, Pair, PairKind, PairOrigin, Role

DATASET_FORMATS = ("alpaca", "sharegpt", "messages", "prompt_completion")
_DETECT_ROWS = 5

_SHAREGPT_ROLES = {
    "system": Role.SYSTEM, "human": Role.USER, "user": Role.USER,
    "gpt": Role.ASSISTANT, "assistant": Role.ASSISTANT, "model": Role.ASSISTANT, "bot": Role.ASSISTANT,
}


class NotADatasetError(Exception):
    """The JSON file holds something else (a config, a manifest): import it as a document."""


@dataclass
class DatasetFile:
    """The pairs read from one dataset file, its detected format and per-row warnings."""

    source_format: str
    pairs: list[Pair]
    rows: int
    warnings: list[str] = field(default_factory=list)


def detect_format(row: Any) -> str | None:
    """The dataset format one row is written in, or None."""
    if not isinstance(row, dict):
        return None
    if isinstance(row.get("messages"), list):
        return "messages"
    if isinstance(row.get("conversations"), list):
        return "sharegpt"
    if "instruction" in row and "output" in row:
        return "alpaca"
    if "prompt" in row and "completion" in row:
        return "prompt_completion"
    return None


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"field {name!r} is not a string")
    return clean_text(value)


def _alpaca(row: dict[str, Any]) -> tuple[list[Message], str | None]:
    messages: list[Message] = []
    if row.get("system"):
        messages.append(Message(role=Role.SYSTEM, content=_text(row["system"], "system")))
    for turn in row.get("history") or []:
        if not (isinstance(turn, list | tuple) and len(turn) == 2):
            raise ValueError("'history' must be a list of [user, assistant] pairs")
        messages.append(Message(role=Role.USER, content=_text(turn[0], "history")))
        messages.append(Message(role=Role.ASSISTANT, content=_text(turn[1], "history")))
    messages.append(Message(role=Role.USER, content=_text(row["instruction"], "instruction")))
    messages.append(Message(role=Role.ASSISTANT, content=_text(row["output"], "output")))
    context = row.get("input")
    return messages, (_text(context, "input") if context else None)


def _sharegpt(row: dict[str, Any]) -> tuple[list[Message], str | None]:
    messages: list[Message] = []
    if row.get("system"):
        messages.append(Message(role=Role.SYSTEM, content=_text(row["system"], "system")))
    for turn in row["conversations"]:
        if not isinstance(turn, dict):
            raise ValueError("each conversation turn must be an object with 'from' and 'value'")
        role = _SHAREGPT_ROLES.get(str(turn.get("from", "")).lower())
        if role is None:
            raise ValueError(f"unknown speaker {turn.get('from')!r} (expected system, human or gpt)")
        messages.append(Message(role=role, content=_text(turn.get("value"), "value")))
    return messages, None


def _messages(row: dict[str, Any]) -> tuple[list[Message], str | None]:
    messages: list[Message] = []
    for turn in row["messages"]:
        if not isinstance(turn, dict):
            raise ValueError("each message must be an object with 'role' and 'content'")
        try:
            role = Role(str(turn.get("role", "")).lower())
        except ValueError:
            raise ValueError(f"unknown role {turn.get('role')!r} (expected system, user or assistant)") from None
        messages.append(Message(role=role, content=_text(turn.get("content"), "content")))
    return messages, None


def _prompt_completion(row: dict[str, Any]) -> tuple[list[Message], str | None]:
    return [
        Message(role=Role.USER, content=_text(row["prompt"], "prompt")),
        Message(role=Role.ASSISTANT, content=_text(row["completion"], "completion")),
    ], None


_NORMALIZERS = {
    "alpaca": _alpaca, "sharegpt": _sharegpt, "messages": _messages, "prompt_completion": _prompt_completion,
}


def row_to_pair(row: Any, source_format: str, *, source_file: str, line: int) -> Pair:
    """One dataset row as an imported pair; raises ValueError naming what is wrong with it."""
    if detect_format(row) != source_format:
        raise ValueError(f"row is not in the file's {source_format} format")
    messages, context = _NORMALIZERS[source_format](row)
    if not any(m.role is Role.USER for m in messages) or not any(m.role is Role.ASSISTANT for m in messages):
        raise ValueError("row has no user turn or no assistant turn")
    return Pair(
        messages=messages,
        context=context,
        mode="factual",
        kind=PairKind.IMPORTED,
        origin=PairOrigin(source_file=source_file, source_line=line, source_format=source_format),
    )


def _jsonl_rows(text: str, name: str, warnings: list[str]) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as exc:
            warnings.append(f"{name}:{number}: not valid JSON ({exc.msg}); the line was skipped.")


def _json_array_rows(text: str) -> Iterator[tuple[int, Any]]:
    """Elements of a top-level JSON array with the line each starts on."""
    decoder = json.JSONDecoder()
    pos = len(text) - len(text.lstrip())
    if text[pos : pos + 1] != "[":
        raise NotADatasetError
    pos += 1
    line = 1 + text.count("\n", 0, pos)
    last = pos
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return
        line += text.count("\n", last, pos)
        last = pos
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise NotADatasetError from exc
        yield line, value


def load_dataset_file(path: Path, *, source_file: str, text: str) -> DatasetFile:
    """Normalize a JSON or JSONL dataset into pairs.

    Raises NotADatasetError when the file is JSON of another kind (import it as a
    document), and IngestError when its rows are in no supported format.
    """
    warnings: list[str] = []
    is_jsonl = path.suffix.lower() in (".jsonl", ".ndjson")
    if is_jsonl:
        rows = list(_jsonl_rows(text, path.name, warnings))
    else:
        rows = list(_json_array_rows(text))
    if not rows:
        raise NotADatasetError
    objects = [(n, r) for n, r in rows if isinstance(r, dict)]
    if not objects:
        raise NotADatasetError
    detected = [f for _, r in objects[:_DETECT_ROWS] if (f := detect_format(r))]
    if not detected:
        keys = sorted({k for _, r in objects[:_DETECT_ROWS] for k in r})[:8]
        raise IngestError(
            f"{path.name} is a dataset in an unknown format (fields: {', '.join(keys) or 'none'}): "
            "convert it to Alpaca, ShareGPT, OpenAI messages or prompt/completion rows."
        )
    source_format = max(set(detected), key=detected.count)
    pairs: list[Pair] = []
    for number, row in rows:
        try:
            pairs.append(row_to_pair(row, source_format, source_file=source_file, line=number))
        except (ValueError, KeyError, TypeError) as exc:
            warnings.append(f"{path.name}:{number}: {exc}; the row was skipped.")
    return DatasetFile(source_format=source_format, pairs=pairs, rows=len(rows), warnings=warnings)
