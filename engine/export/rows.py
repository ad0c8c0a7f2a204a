"""One pair as one row of each export format.

Conventions every format shares, so a dataset reads the same whichever file a trainer uses:

- System prompt: one rule for the whole export. ``None`` strips every system turn; a
  string replaces them with exactly that prompt, first, on every row.
- Context (the Alpaca ``input``): Alpaca keeps it in ``input`` for single-turn pairs. Every
  other format, and Alpaca rows with history, fold it into the first user turn as the
  instruction, a blank line, then the context (Alpaca's own instruction-then-input order,
  and the order the token counts use).
- Consecutive turns of the same role are joined with a blank line, so every row alternates
  user and assistant and ends with the assistant's answer; a pair with no user turn
  answered by an assistant turn is not exportable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from json.encoder import encode_basestring
from typing import Any

from engine.models import Pair, Role

SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}


@dataclass(slots=True)
class PairRecord:
    """The metadata of one stored pair as an export reads it: plain values, no model validation.

    ``origin`` and each warning are the stored JSON objects (dicts); ``kind`` and ``status`` are
    their string values.
    """

    id: int
    kind: str
    mode: str
    status: str
    sources: list[int]
    origin: dict[str, Any]
    warnings: list[dict[str, Any]]
    score: float | None
    split: str | None
    messages: list[dict[str, str]]
    context: str | None

    def to_pair(self) -> Pair:
        """The full validated pair (for the rare callers that need the model)."""
        return Pair.model_validate(
            {"id": self.id, "messages": self.messages, "context": self.context, "mode": self.mode,
             "kind": self.kind, "sources": self.sources, "status": self.status, "origin": self.origin,
             "warnings": self.warnings, "score": self.score, "split": self.split}
        )


def fold_context(instruction: str, context: str | None) -> str:
    """The user turn a chat format sees: the instruction, a blank line, then the context."""
    return f"{instruction}\n\n{context}" if context else instruction


@dataclass(frozen=True)
class Conversation:
    """A pair's turns as exported: an optional system prompt then alternating user/assistant turns.

    ``turns`` holds (user, assistant) pairs; the first user turn is the raw instruction and
    ``context`` is kept apart so each format can place it by its own convention.
    """

    system: str | None
    turns: tuple[tuple[str, str], ...]
    context: str | None

    @classmethod
    def from_pair(cls, pair: Pair, system_prompt: str | None) -> Conversation | None:
        """The exported conversation of ``pair`` under the system-prompt rule; None if not exportable."""
        return cls.from_turns(((m.role.value, m.content) for m in pair.messages), pair.context, system_prompt)

    @classmethod
    def from_turns(
        cls, messages: Iterable[tuple[str, str]], context: str | None, system_prompt: str | None
    ) -> Conversation | None:
        """The exported conversation of (role, content) turns and a context; None if not exportable."""
        merged: list[list[str]] = []  # [role, content]
        for role, content in messages:
            if role == "system":
                continue
            if merged and merged[-1][0] == role:
                merged[-1][1] = f"{merged[-1][1]}\n\n{content}"
            else:
                merged.append([role, content])
        # Leading assistant turns have no question and a trailing user turn has no answer.
        while merged and merged[0][0] != Role.USER.value:
            merged.pop(0)
        while merged and merged[-1][0] != Role.ASSISTANT.value:
            merged.pop()
        if not merged:
            return None
        turns = tuple((merged[i][1], merged[i + 1][1]) for i in range(0, len(merged), 2))
        return cls(system=system_prompt, turns=turns, context=context if context and context.strip() else None)

    def chat(self) -> list[tuple[str, str]]:
        """Every turn as (role, content), context folded into the first user turn."""
        return list(self._chat)

    @cached_property
    def _chat(self) -> tuple[tuple[str, str], ...]:
        # Every format reads the same turns; build them once per pair.
        out: list[tuple[str, str]] = []
        if self.system is not None:
            out.append(("system", self.system))
        for index, (user, assistant) in enumerate(self.turns):
            out.append(("user", fold_context(user, self.context) if index == 0 else user))
            out.append(("assistant", assistant))
        return tuple(out)


    @cached_property
    def _encoded_chat(self) -> tuple[tuple[str, str], ...]:
        # Each text is JSON-encoded once and the encoded pieces are reused by every format's line.
        out: list[tuple[str, str]] = []
        if self.system is not None:
            out.append(("system", encode_basestring(self.system)))
        context = encode_basestring(self.context) if self.context else None
        for index, (user, assistant) in enumerate(self.turns):
            encoded_user = encode_basestring(user)
            if index == 0 and context is not None:
                encoded_user = _join_encoded(encoded_user, context)
            out.append(("user", encoded_user))
            out.append(("assistant", encode_basestring(assistant)))
        return tuple(out)


def _join_encoded(first: str, second: str) -> str:
    """The JSON string of ``a + "\\n\\n" + b`` from the JSON strings of ``a`` and ``b``
    (JSON escapes character by character, so encoded pieces join exactly)."""
    return f"{first[:-1]}\\n\\n{second[1:]}"


def messages_line(conv: Conversation) -> str:
    """``json.dumps(messages_row(conv), ensure_ascii=False)``, built from the once-encoded turns."""
    turns = ", ".join(f'{{"role": "{role}", "content": {content}}}' for role, content in conv._encoded_chat)
    return f'{{"messages": [{turns}]}}'


def sharegpt_line(conv: Conversation) -> str:
    """``json.dumps(sharegpt_row(conv), ensure_ascii=False)``, built from the once-encoded turns."""
    turns = ", ".join(
        f'{{"from": "{SHAREGPT_ROLES[role]}", "value": {content}}}' for role, content in conv._encoded_chat
    )
    return f'{{"conversations": [{turns}]}}'


def alpaca_line(conv: Conversation) -> str:
    """``json.dumps(alpaca_row(conv), ensure_ascii=False)``, built from the once-encoded turns."""
    chat = conv._encoded_chat
    first = 1 if conv.system is not None else 0
    turns = [(chat[i][1], chat[i + 1][1]) for i in range(first, len(chat), 2)]
    if len(turns) == 1:
        # Single turn: the context stays in ``input``, so the instruction is the raw user turn.
        instruction = encode_basestring(conv.turns[0][0])
        context = encode_basestring(conv.context) if conv.context else '""'
    else:
        instruction, context = turns[-1][0], '""'
    history = ", ".join(f"[{user}, {assistant}]" for user, assistant in turns[:-1])
    system = f', "system": {chat[0][1]}' if conv.system is not None else ""
    return (
        f'{{"instruction": {instruction}, "input": {context}, "output": {turns[-1][1]}, '
        f'"history": [{history}]{system}}}'
    )


def completion_line(conv: Conversation) -> str:
    """``json.dumps(completion_row(conv), ensure_ascii=False)``, built from the once-encoded turns."""
    chat = conv._encoded_chat
    prompt = "\\n\\n".join(content[1:-1] for _, content in chat[:-1])
    return f'{{"prompt": "{prompt}", "completion": {chat[-1][1]}}}'


def messages_row(conv: Conversation) -> dict[str, Any]:
    """OpenAI chat row: ``{"messages": [{"role", "content"}, ...]}``."""
    return {"messages": [{"role": role, "content": content} for role, content in conv.chat()]}


def sharegpt_row(conv: Conversation) -> dict[str, Any]:
    """ShareGPT row: ``{"conversations": [{"from": system|human|gpt, "value"}, ...]}``."""
    return {"conversations": [{"from": SHAREGPT_ROLES[role], "value": content} for role, content in conv.chat()]}


def alpaca_row(conv: Conversation) -> dict[str, Any]:
    """Alpaca row as LLaMA-Factory reads it: instruction, input, output, history, and system if set.

    ``history`` lists the earlier [user, assistant] turns; with history the context is folded
    into the first history turn, since ``input`` belongs to the last instruction.
    """
    chat_turns = list(conv.turns)
    context_in_input = len(chat_turns) == 1
    if not context_in_input and conv.context:
        first_user, first_answer = chat_turns[0]
        chat_turns[0] = (fold_context(first_user, conv.context), first_answer)
    instruction, output = chat_turns[-1]
    row: dict[str, Any] = {
        "instruction": instruction,
        "input": (conv.context or "") if context_in_input else "",
        "output": output,
        "history": [[user, assistant] for user, assistant in chat_turns[:-1]],
    }
    if conv.system is not None:
        row["system"] = conv.system
    return row


def completion_row(conv: Conversation) -> dict[str, Any]:
    """Prompt/completion row: the final answer is the completion; every turn before it, joined
    by blank lines (system prompt first), is the prompt."""
    chat = conv.chat()
    return {"prompt": "\n\n".join(content for _, content in chat[:-1]), "completion": chat[-1][1]}


# Each format's JSONL line, equal to ``json.dumps(ROW_BUILDERS[fmt](conv), ensure_ascii=False)``.
LINE_BUILDERS = {
    "messages": messages_line,
    "alpaca": alpaca_line,
    "sharegpt": sharegpt_line,
    "completion": completion_line,
}


def row_line(fmt: str, conv: Conversation) -> str:
    """The JSONL line of ``conv`` in ``fmt`` the slow, obvious way (kept as the reference)."""
    return json.dumps(ROW_BUILDERS[fmt](conv), ensure_ascii=False)


ROW_BUILDERS = {
    "messages": messages_row,
    "alpaca": alpaca_row,
    "sharegpt": sharegpt_row,
    "completion": completion_row,
}
