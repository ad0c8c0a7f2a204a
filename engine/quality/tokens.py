"""Token counts of pairs: a real tokenizer when one is configured and loadable offline, else a labelled estimate."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

from engine.models import Pair
from engine.settings import ProjectSettings, QualitySettings

log = logging.getLogger(__name__)

# The estimate: about four characters per token for English prose and code, plus a few tokens of chat-template
# framing per message. Good to roughly +-20% for BPE tokenizers of the Llama/Qwen families.
CHARS_PER_TOKEN = 4.0
TEMPLATE_TOKENS_PER_MESSAGE = 4


def _chat_messages(pair: Pair) -> list[dict[str, str]]:
    """The pair as role/content dicts; an Alpaca-style context is appended to the first user turn."""
    return _with_context([{"role": str(m.role), "content": m.content} for m in pair.messages], pair.context)


def _with_context(messages: list[dict[str, str]], context: str | None) -> list[dict[str, str]]:
    if context:
        messages = [dict(m) for m in messages]
        for message in messages:
            if message["role"] == "user":
                message["content"] = f"{message['content']}\n\n{context}"
                break
    return messages


class TokenCounter:
    """Counts the tokens of a pair as the trainer would see it (chat template included when known).

    ``estimated`` is True when no real tokenizer is in use: every figure must then be shown as estimated.
    """

    def __init__(self, tokenizer: Any | None = None, *, name: str | None = None, problem: str | None = None) -> None:
        self._tokenizer = tokenizer
        self.estimated = tokenizer is None
        self.name = name or ("estimate (~4 characters per token)" if tokenizer is None else "tokenizer")
        # Why the configured tokenizer could not be used, for the report; None when it loaded or none was set.
        self.problem = problem
        self._has_template = bool(getattr(tokenizer, "chat_template", None))

    @classmethod
    def estimate(cls) -> TokenCounter:
        """A counter that estimates from characters (and the backend's own counts when a pair has them)."""
        return cls()

    @classmethod
    def from_path(cls, path: str | os.PathLike[str]) -> TokenCounter:
        """Load a tokenizer folder (``tokenizer.json`` + ``tokenizer_config.json``), a ``tokenizer.json`` file,
        or a model name already in the local Hugging Face cache; never touches the network.

        Falls back to the estimate (with ``problem`` set) when nothing loadable is found.
        """
        location = Path(os.path.expanduser(str(path)))
        try:
            if location.is_file():
                from transformers import PreTrainedTokenizerFast

                tokenizer: Any = PreTrainedTokenizerFast(tokenizer_file=str(location))
                config = location.with_name("tokenizer_config.json")
                if config.exists():
                    import json

                    template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
                    if isinstance(template, str):
                        tokenizer.chat_template = template
            else:
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(str(location) if location.exists() else str(path), local_files_only=True)
        except Exception as exc:  # transformers raises many types (OSError, ValueError, EnvironmentError...)
            problem = (
                f"The tokenizer {path} could not be loaded offline ({type(exc).__name__}); set quality.tokenizer "
                "to a local folder holding tokenizer.json, or leave it empty to use estimated counts."
            )
            log.info(problem)
            return cls(problem=problem)
        return cls(tokenizer, name=location.name if location.exists() else str(path))

    @classmethod
    def from_settings(cls, settings: QualitySettings | ProjectSettings) -> TokenCounter:
        """The counter configured by ``quality.tokenizer`` (estimated when it is empty or not loadable)."""
        quality = settings.quality if isinstance(settings, ProjectSettings) else settings
        if not quality.tokenizer:
            return cls.estimate()
        return cls.from_path(quality.tokenizer)

    @staticmethod
    def estimate_text(text: str) -> int:
        """Estimated tokens of a piece of text."""
        return math.ceil(len(text) / CHARS_PER_TOKEN) if text else 0

    def count_text(self, text: str) -> int:
        """Tokens of plain text (no template)."""
        if self._tokenizer is None:
            return self.estimate_text(text)
        return len(self._tokenizer.encode(text, add_special_tokens=False))

    def count_pair(self, pair: Pair) -> int:
        """Tokens of the whole conversation as a training example."""
        return self.count_messages(
            [{"role": str(m.role), "content": m.content} for m in pair.messages],
            context=pair.context,
            completion_tokens=pair.origin.completion_tokens,
            backend=pair.origin.backend,
        )

    def count_messages(
        self,
        messages: list[dict[str, str]],
        *,
        context: str | None = None,
        completion_tokens: int | None = None,
        backend: str | None = None,
    ) -> int:
        """Tokens of a conversation given as role/content dicts (what ``count_pair`` counts)."""
        messages = _with_context(messages, context)
        if self._tokenizer is None:
            completion = completion_tokens
            if completion and not context and backend:
                # The backend counted what it wrote (the answer turns); add the user and system turns.
                user_side = sum(self.estimate_text(m["content"]) for m in messages if m["role"] != "assistant")
                return completion + user_side + TEMPLATE_TOKENS_PER_MESSAGE * len(messages)
            return sum(self.estimate_text(m["content"]) + TEMPLATE_TOKENS_PER_MESSAGE for m in messages)
        if self._has_template:
            encoded = self._tokenizer.apply_chat_template(messages, tokenize=True)
            ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
            return len(ids)
        return sum(self.count_text(m["content"]) + TEMPLATE_TOKENS_PER_MESSAGE for m in messages)


__all__ = ["CHARS_PER_TOKEN", "TokenCounter"]
