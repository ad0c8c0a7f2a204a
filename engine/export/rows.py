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

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from engine.models import Pair, Role

SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}


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
        merged: list[list[str]] = []  # [role, content]
        for message in pair.messages:
            if message.role is Role.SYSTEM:
                continue
            role = message.role.value
            if merged and merged[-1][0] == role:
                merged[-1][1] = f"{merged[-1][1]}\n\n{message.content}"
            else:
                merged.append([role, message.content])
        # Leading assistant turns have no question and a trailing user turn has no answer.
        while merged and merged[0][0] != Role.USER.value:
            merged.pop(0)
        while merged and merged[-1][0] != Role.ASSISTANT.value:
            merged.pop()
        if not merged:
            return None
        turns = tuple((merged[i][1], merged[i + 1][1]) for i in range(0, len(merged), 2))
        context = pair.context if pair.context and pair.context.strip() else None
        return cls(system=system_prompt, turns=turns, context=context)

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


ROW_BUILDERS = {
    "messages": messages_row,
    "alpaca": alpaca_row,
    "sharegpt": sharegpt_row,
    "completion": completion_row,
}
