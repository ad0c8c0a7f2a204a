"""Generation backends: one async chat protocol over Ollama, embedded llama.cpp and OpenAI-compatible servers."""

from __future__ import annotations

from engine.generate.backends.base import (
    BACKEND_KINDS,
    ChatBackend,
    ChatOptions,
    ChatResult,
    EmbeddingBackend,
    ModelInfo,
    StructuredAnswerError,
    TokenCallback,
    make_backend,
    parse_structured,
    schema_for,
)

__all__ = [
    "BACKEND_KINDS",
    "ChatBackend",
    "ChatOptions",
    "ChatResult",
    "EmbeddingBackend",
    "ModelInfo",
    "StructuredAnswerError",
    "TokenCallback",
    "make_backend",
    "parse_structured",
    "schema_for",
]
