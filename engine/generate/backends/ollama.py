"""Ollama backend over the official ``ollama`` client (``AsyncClient``).

Structured output uses Ollama's ``format=<JSON schema>``; token counts are the
server's own ``prompt_eval_count`` / ``eval_count``. Every expected failure is
mapped to one :mod:`engine.errors` class whose message names the host and the fix.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import httpx
import ollama
from ollama._client import _parse_host

from engine.errors import (
    BackendError,
    BackendServerError,
    BackendTimeoutError,
    BackendUnreachableError,
    ModelNotFoundError,
    StructuredOutputUnsupportedError,
)
from engine.generate.backends.base import (
    ChatOptions,
    ChatResult,
    ModelInfo,
    StreamChoice,
    TokenCallback,
)

__all__ = ["DEFAULT_OLLAMA_HOST", "OllamaBackend", "resolve_ollama_host"]

DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"

# Timeout for the quick metadata calls (list, show): a healthy server answers at once.
_METADATA_TIMEOUT_S = 15.0
# Timeout of one embedding request: a batch of short texts, but the model may have to load first.
EMBED_TIMEOUT_S = 120.0

# Ollama's wording when structured output cannot be used: tools/format not supported
# by the model, a schema its grammar converter rejects, or a server too old for
# schema formats (it then fails to decode the object into a string field).
_STRUCTURED_MARKERS = (
    "does not support tools",
    "does not support format",
    "does not support structured",
    "does not support json",
    "invalid json schema",
    "invalid format",
    "field chatrequest.format",
    "field generaterequest.format",
)


def resolve_ollama_host(host: str | None = None) -> str:
    """Return the Ollama base URL: ``host``, else ``$OLLAMA_HOST``, else the local default.

    Accepts the same shorthand as Ollama itself (``0.0.0.0``, ``host:port``,
    a bare port ``:11434``) and always returns ``scheme://host:port``.
    """
    raw = (host or os.environ.get("OLLAMA_HOST") or "").strip()
    if not raw:
        return DEFAULT_OLLAMA_HOST
    # The client's own parser knows every form Ollama accepts.
    return _parse_host(raw)


class OllamaBackend:
    """Chat with one model on one Ollama server."""

    name = "ollama"

    def __init__(
        self, model: str, host: str | None = None, *, timeout_s: float | None = None
    ) -> None:
        """Prepare a backend for ``model`` on ``host`` (see :func:`resolve_ollama_host`).

        No connection is made here; ``timeout_s`` overrides every request's
        ``ChatOptions.timeout_s`` (the longest silence between tokens) when given.
        """
        self.model = model
        self.host: str | None = resolve_ollama_host(host)
        self._timeout_override = timeout_s
        # One client per timeout value: the client fixes its timeout at construction
        # and a run normally uses a single value, so this stays at one or two clients.
        self._clients: dict[float, ollama.AsyncClient] = {}
        self._streaming = StreamChoice()

    def _client(self, timeout_s: float) -> ollama.AsyncClient:
        timeout_s = self._timeout_override or timeout_s
        client = self._clients.get(timeout_s)
        if client is None:
            # Connecting to a healthy local server is instant; a short connect
            # timeout turns a black-holed address into an error quickly.
            # httpx's read timeout bounds each read of the stream: the silence between tokens.
            timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0))
            client = ollama.AsyncClient(host=self.host, timeout=timeout)
            self._clients[timeout_s] = client
        return client

    async def chat(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any] | None,
        options: ChatOptions,
        on_token: TokenCallback | None = None,
    ) -> ChatResult:
        """Send one chat request; stream to ``on_token`` when given.

        Returns the answer with Ollama's token counts and ``done_reason``
        (``"length"`` when ``num_predict`` cut it). Raises the mapped
        :class:`~engine.errors.BackendError` subclass on failure.
        """
        client = self._client(options.timeout_s)
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "options": _ollama_options(options),
        }
        if schema is not None:
            kwargs["format"] = schema
        if options.keep_alive is not None:
            kwargs["keep_alive"] = options.keep_alive
        started = time.perf_counter()
        try:
            final: ollama.ChatResponse | None = None
            # Streamed, the timeout is one between tokens (each read waits at most that long),
            # not one on the whole answer: see StreamChoice for when a request is streamed.
            if not self._streaming.stream(on_token):
                final = await client.chat(**kwargs, stream=False)
                content = final.message.content or ""
            else:
                pieces: list[str] = []
                stream = await client.chat(**kwargs, stream=True)
                async for part in stream:
                    piece = part.message.content or ""
                    if piece:
                        pieces.append(piece)
                        if on_token is not None:
                            on_token(piece)
                    if part.done:
                        final = part
                content = "".join(pieces)
            if final is None:
                raise BackendServerError(
                    f"Ollama at {self.host} ended the answer stream before it was complete: "
                    "the model runner may have crashed, check the Ollama log and retry."
                )
        except BackendError:
            raise
        except Exception as exc:
            if isinstance(exc, httpx.TimeoutException):
                self._streaming.timed_out()
            raise self._map_error(exc) from exc
        latency = time.perf_counter() - started
        self._streaming.answered(latency, self._timeout_override or options.timeout_s)
        return ChatResult(
            content=content,
            prompt_tokens=final.prompt_eval_count,
            completion_tokens=final.eval_count,
            latency_s=latency,
            done_reason=final.done_reason,
            model=self.model,
            backend=self.name,
            host=self.host,
        )

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One embedding per text, in order, from the backend's model (``/api/embed``).

        Raises :class:`~engine.errors.ModelNotFoundError` when the model is not pulled, a
        :class:`~engine.errors.BackendError` naming the fix when it makes no embeddings or the
        server predates ``/api/embed``, and the other mapped errors as ``chat`` does.
        """
        if not texts:
            return []
        client = self._client(EMBED_TIMEOUT_S)
        try:
            response = await client.embed(model=self.model, input=texts)
        except Exception as exc:
            raise self._map_embed_error(exc) from exc
        vectors = [list(v) for v in response.embeddings]
        if len(vectors) != len(texts):
            raise BackendServerError(
                f"Ollama at {self.host} returned {len(vectors)} embeddings for {len(texts)} texts: "
                "check that the address points to Ollama and retry."
            )
        return vectors

    def _map_embed_error(self, exc: BaseException) -> BackendError:
        if isinstance(exc, ollama.ResponseError):
            lowered = str(exc.error).lower()
            if "does not support embed" in lowered:
                return BackendError(
                    f"Model '{self.model}' on {self.host} makes no embeddings: set quality.embedding_model "
                    "to an embedding model (ollama pull nomic-embed-text)."
                )
            if exc.status_code == 404 and "page not found" in lowered:
                return BackendError(f"Ollama at {self.host} has no /api/embed: upgrade Ollama to 0.3.4 or newer.")
        return self._map_error(exc)

    async def check(self) -> None:
        """Make sure the server answers and has the model pulled.

        Raises :class:`~engine.errors.BackendUnreachableError` or
        :class:`~engine.errors.ModelNotFoundError` (or another mapped error).
        """
        client = self._client(_METADATA_TIMEOUT_S)
        try:
            listed = await client.list()
            names = {m.model for m in listed.models if m.model}
            if _canonical(self.model) in {_canonical(n) for n in names}:
                return
            # Not listed under that name: ``show`` also resolves aliases and digests.
            await client.show(self.model)
        except Exception as exc:
            raise self._map_error(exc) from exc

    async def list_models(self) -> list[ModelInfo]:
        """Return the models pulled on the server (``/api/tags``)."""
        client = self._client(_METADATA_TIMEOUT_S)
        try:
            listed = await client.list()
        except Exception as exc:
            raise self._map_error(exc) from exc
        infos = []
        for m in listed.models:
            details = m.details
            infos.append(
                ModelInfo(
                    name=m.model or "",
                    size_bytes=int(m.size) if m.size is not None else None,
                    family=details.family if details else None,
                    parameter_size=details.parameter_size if details else None,
                    quantization=details.quantization_level if details else None,
                )
            )
        return infos

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    def _map_error(self, exc: BaseException) -> BackendError:
        """Turn a client or transport exception into one user-facing error."""
        host = self.host
        if isinstance(exc, httpx.TimeoutException):
            if isinstance(exc, httpx.ConnectTimeout):
                return BackendUnreachableError(
                    f"Cannot reach Ollama at {host} (connection timed out): start it with "
                    "`ollama serve` or set OLLAMA_HOST to the right address."
                )
            return BackendTimeoutError(
                f"Ollama at {host} sent nothing for longer than the timeout: raise "
                "generation.timeout_s, or lower the concurrency for this host."
            )
        # The client turns httpx.ConnectError into a bare ConnectionError, except on the
        # streaming path where the httpx error escapes as is.
        if isinstance(exc, (httpx.ConnectError, ConnectionError)):
            return BackendUnreachableError(
                f"Cannot reach Ollama at {host}: start it with `ollama serve` "
                "or set OLLAMA_HOST to the right address."
            )
        if isinstance(exc, ollama.ResponseError):
            return self._map_response_error(exc)
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
            return BackendServerError(
                f"Ollama at {host} dropped the connection mid-answer: it may have crashed or "
                "restarted, check the Ollama log and retry."
            )
        if isinstance(exc, json.JSONDecodeError):
            return BackendServerError(
                f"Ollama at {host} sent a malformed stream line: check that the address points "
                "to Ollama and not another server."
            )
        if isinstance(exc, httpx.HTTPError):
            return BackendServerError(f"The request to Ollama at {host} failed ({exc}): retry.")
        return BackendError(f"Ollama at {host} failed unexpectedly ({type(exc).__name__}: {exc}).")

    def _map_response_error(self, exc: ollama.ResponseError) -> BackendError:
        host, model = self.host, self.model
        text = str(exc.error).strip()
        lowered = text.lower()
        status = exc.status_code
        if any(marker in lowered for marker in _STRUCTURED_MARKERS):
            if "format" in lowered and "unmarshal" in lowered:
                fix = "upgrade Ollama to 0.5 or newer, which accepts a JSON schema as format"
            else:
                fix = "pick a model that supports it (most instruct models from 2024 on do)"
            return StructuredOutputUnsupportedError(
                f"Model '{model}' on {host} cannot produce structured JSON output ({text}): {fix}."
            )
        if status == 404 or ("not found" in lowered and "model" in lowered):
            return ModelNotFoundError(
                f"Model '{model}' is not pulled on {host}: run `ollama pull {model}`."
            )
        if status >= 500 or status == -1:
            # -1: an error reported inside a stream, after a 200 status line.
            return BackendServerError(f"Ollama at {host} failed while answering: {text}.")
        return BackendError(f"Ollama at {host} rejected the request (HTTP {status}): {text}.")


def _ollama_options(options: ChatOptions) -> dict[str, Any]:
    """The ``options`` object Ollama expects; unset values are left to the model's defaults."""
    values = {
        "temperature": options.temperature,
        "num_ctx": options.num_ctx,
        "num_predict": options.num_predict,
        "seed": options.seed,
        "top_p": options.top_p,
    }
    return {k: v for k, v in values.items() if v is not None}


def _canonical(name: str) -> str:
    """Ollama treats ``llama3.2`` and ``llama3.2:latest`` as the same model."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
