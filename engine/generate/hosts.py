"""Backends from a project's settings: one backend per host, checked before a run."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from engine.generate.backends import ChatBackend, make_backend
from engine.settings import ProjectSettings

# Decoding slots of an embedded server when concurrency is auto: on 2 cores, 4 requests at
# once give about 1.4x the tokens per second of one; the runner finds how many of them pay.
EMBEDDED_AUTO_SLOTS = 4


def backends_from_settings(
    settings: ProjectSettings,
    *,
    backend: str | None = None,
    model: str | None = None,
    hosts: Sequence[str] | None = None,
    concurrency: int | str | None = None,
) -> list[ChatBackend]:
    """One backend per host: hosts from the arguments, else ``generation.hosts``, else
    ``$OLLAMA_HOST`` or the local default (resolved by the backend itself).

    The embedded backend has no host and runs ``model`` (a GGUF path or a built-in
    name), else ``generation.model_path``, else the default built-in model, with one
    decoding slot per request in flight (``concurrency``, else ``generation.concurrency``;
    with auto, EMBEDDED_AUTO_SLOTS slots, of which the runner uses as many as pay).
    Raises ValueError for an unknown backend kind.
    """
    generation = settings.generation
    kind = backend or generation.backend
    if kind == "llamacpp":
        # The Ollama-style default model name means nothing to the embedded backend.
        path = model if model is not None else generation.model_path
        slots = embedded_slots(concurrency or generation.concurrency)
        return [make_backend("llamacpp", path or "", None, slots=slots)]
    name = model or generation.model
    chosen: list[str | None] = [*(hosts or generation.hosts)] or [None]
    # The same host twice would only double its concurrency; keep each once.
    unique = list(dict.fromkeys(chosen))
    return [make_backend(kind, name, host) for host in unique]


def embedded_slots(concurrency: int | str) -> int:
    """Decoding slots for an embedded server run at ``concurrency`` (a number, or auto)."""
    return concurrency if isinstance(concurrency, int) else EMBEDDED_AUTO_SLOTS


async def check_backends(backends: Sequence[ChatBackend]) -> None:
    """Pre-flight: every backend answers and has its model; raises the first mapped BackendError."""
    await asyncio.gather(*(b.check() for b in backends))


async def close_backends(backends: Sequence[ChatBackend]) -> None:
    """Release every backend's connections."""
    await asyncio.gather(*(b.aclose() for b in backends), return_exceptions=True)


__all__ = ["EMBEDDED_AUTO_SLOTS", "backends_from_settings", "check_backends", "close_backends", "embedded_slots"]
