"""The one protocol every generation backend speaks, and helpers around it.

A backend turns a list of chat messages (plus an optional JSON schema the answer
must follow) into a :class:`ChatResult`. Backends never parse the answer: the
caller validates it with :func:`parse_structured`, so a truncated or malformed
answer becomes an :class:`~engine.errors.InvalidModelOutputError` the queue can
retry, never a crash.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ValidationError

from engine.errors import InvalidModelOutputError

__all__ = [
    "BACKEND_KINDS",
    "ChatBackend",
    "ChatOptions",
    "ChatResult",
    "EmbeddingBackend",
    "ModelInfo",
    "StreamChoice",
    "StructuredAnswerError",
    "TokenCallback",
    "make_backend",
    "parse_structured",
    "schema_for",
]

BACKEND_KINDS = ("ollama", "llamacpp", "openai")

TokenCallback = Callable[[str], None]
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass
class ChatOptions:
    """Sampling and transport options for one chat request.

    ``None`` leaves a value to the server or model default. ``keep_alive`` is
    Ollama's "keep the model loaded for" duration; other backends ignore it.
    ``timeout_s`` bounds how long the server may stay silent, before the first token or
    between two: an answer that keeps coming may take longer in total.
    """

    temperature: float = 0.7
    num_ctx: int | None = None
    num_predict: int | None = None
    seed: int | None = None
    top_p: float | None = None
    keep_alive: str | None = "10m"
    timeout_s: float = 300.0


class StreamChoice:
    """Whether a backend streams a request no one watches token by token.

    Streamed, a request's timeout is one between tokens, so a slow CPU that keeps
    producing tokens is never cut off; but parsing every token costs client CPU, which
    shows on a fast server. So a host is streamed until ``FAST_ANSWERS`` answers in a row
    took under a quarter of their timeout, and streamed again after a slow answer or a
    timeout (the request that timed out is retried, streamed).
    """

    FAST_ANSWERS = 3

    def __init__(self) -> None:
        self._fast = 0

    def stream(self, on_token: TokenCallback | None) -> bool:
        """True when the next request should be streamed."""
        return on_token is not None or self._fast < self.FAST_ANSWERS

    def answered(self, latency_s: float, timeout_s: float) -> None:
        """An answer took ``latency_s`` under a timeout of ``timeout_s``."""
        self._fast = self._fast + 1 if latency_s < timeout_s / 4 else 0

    def timed_out(self) -> None:
        """A request hit its timeout: stream from now on."""
        self._fast = 0


@dataclass
class ChatResult:
    """One finished answer: its text, real token counts and where it came from."""

    content: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float
    done_reason: str | None
    model: str
    backend: str
    host: str | None

    @property
    def truncated(self) -> bool:
        """True when the model stopped at its token limit, not by itself."""
        return self.done_reason == "length"


@dataclass
class ModelInfo:
    """A model a backend can serve, as far as the server tells."""

    name: str
    size_bytes: int | None = None
    family: str | None = None
    parameter_size: str | None = None
    quantization: str | None = None


@runtime_checkable
class ChatBackend(Protocol):
    """An async chat model: Ollama, an embedded llama.cpp model, or any OpenAI-compatible server."""

    name: str
    model: str
    host: str | None

    async def chat(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any] | None,
        options: ChatOptions,
        on_token: TokenCallback | None = None,
    ) -> ChatResult:
        """Answer ``messages``; stream pieces to ``on_token`` when given.

        ``schema`` constrains the answer to that JSON schema. Raises a
        :class:`~engine.errors.BackendError` subclass on any expected failure.
        """
        ...

    async def check(self) -> None:
        """Raise the mapped error if the server is unreachable or the model is missing."""
        ...

    async def list_models(self) -> list[ModelInfo]:
        """Return the models the server (or cache) offers."""
        ...

    async def aclose(self) -> None:
        """Release connections (and nothing else: cached models stay loaded)."""
        ...


@runtime_checkable
class EmbeddingBackend(Protocol):
    """A backend whose server also turns texts into vectors (Ollama, OpenAI-compatible servers)."""

    name: str
    model: str
    host: str | None

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One embedding per text, in order; raises a :class:`~engine.errors.BackendError` subclass."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def make_backend(kind: str, model: str, host: str | None = None, **kw: Any) -> ChatBackend:
    """Build the backend of ``kind`` ("ollama", "llamacpp" or "openai") for ``model``.

    Extra keyword arguments go to the backend's constructor. Raises
    ``ValueError`` for an unknown kind; the embedded backend raises
    :class:`~engine.errors.BackendError` when its optional extra is missing,
    on first use rather than here, so listing kinds never needs it.
    """
    # Imported here so that choosing one backend never imports the others' dependencies.
    if kind == "ollama":
        from engine.generate.backends.ollama import OllamaBackend

        return OllamaBackend(model, host, **kw)
    if kind == "openai":
        from engine.generate.backends.openai_compat import OpenAICompatBackend

        return OpenAICompatBackend(model, host, **kw)
    if kind == "llamacpp":
        from engine.generate.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(model, host, **kw)
    raise ValueError(f"Unknown backend {kind!r}: choose one of {', '.join(BACKEND_KINDS)}.")


# --- structured output ---------------------------------------------------------

_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


def _extract_json_text(content: str) -> str:
    """Return the JSON document inside ``content``, without fences or chatter around it."""
    text = content.strip()
    fenced = _FENCE_RE.search(text)
    if fenced:
        text = fenced.group(1).strip()
    if text[:1] in "{[":
        return text
    # Small models like to open with "Sure! Here is the JSON:"; start at the first brace.
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return text
    start = min(starts)
    closer = "}" if text[start] == "{" else "]"
    end = text.rfind(closer)
    return text[start : end + 1] if end > start else text[start:]


def parse_structured(
    content: str,
    model_cls: type[ModelT],
    *,
    done_reason: str | None = None,
) -> ModelT:
    """Parse a model's answer into ``model_cls``.

    Strips code fences and leading text, loads the JSON and validates it with
    pydantic. Pass the result's ``done_reason`` so a truncated answer is named
    as such. Raises :class:`StructuredAnswerError`, an
    :class:`~engine.errors.InvalidModelOutputError` with the first 200
    characters of the answer on ``.raw``, when the answer was cut off, is not
    JSON, or does not match the schema.
    """
    raw = content[:200]
    text = _extract_json_text(content)
    try:
        data = json.loads(text, strict=False)  # small models put raw newlines inside strings
    except json.JSONDecodeError as exc:
        if done_reason == "length":
            message = (
                "The model's answer was cut off at its token limit before the JSON was complete: "
                "raise num_predict (or num_ctx) or ask for shorter answers."
            )
        elif not content.strip():
            message = "The model returned an empty answer: retry, or try a larger model."
        else:
            message = (
                f"The model's answer is not valid JSON ({exc.msg} at character {exc.pos}): "
                "retry, or use a model that supports structured output."
            )
        raise _invalid(message, raw) from None
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the top level"
        message = (
            f"The model's answer does not match the {model_cls.__name__} schema "
            f"({where}: {first['msg']}): retry, or use a larger model."
        )
        raise _invalid(message, raw) from None


class StructuredAnswerError(InvalidModelOutputError):
    """An answer that could not be parsed into the output model; ``raw`` keeps its start."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        # Kept short: enough to show the user what came back, not a whole essay.
        self.raw = raw


def _invalid(message: str, raw: str) -> StructuredAnswerError:
    return StructuredAnswerError(message, raw)


def schema_for(model_cls: type[BaseModel]) -> dict[str, Any]:
    """Return the JSON schema to send as the answer's required format.

    ``$ref``s are inlined and ``$defs`` dropped, because small models and some
    grammar converters cope badly with references; titles are removed because
    they only cost prompt tokens.
    """
    schema = model_cls.model_json_schema()
    defs = schema.pop("$defs", {})
    return _inline(schema, defs, depth=0)


def _inline(node: Any, defs: dict[str, Any], depth: int) -> Any:
    if depth > 32:
        raise ValueError("The output model is recursive; structured output needs a finite schema.")
    if isinstance(node, list):
        return [_inline(item, defs, depth) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**copy.deepcopy(target), **{k: v for k, v in node.items() if k != "$ref"}}
        return _inline(merged, defs, depth + 1)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key == "properties" and isinstance(value, dict):
            # Property names are data, not keywords: a field called "title" stays.
            out[key] = {name: _inline(sub, defs, depth) for name, sub in value.items()}
        else:
            out[key] = _inline(value, defs, depth)
    return out
