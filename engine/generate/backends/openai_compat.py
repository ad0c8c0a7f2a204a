"""Backend for any OpenAI-compatible chat server (vLLM, llama.cpp server, LM Studio, Ollama's /v1).

Talks plain HTTP with ``httpx``: ``POST /v1/chat/completions`` (SSE streaming
or one JSON answer) and ``GET /v1/models``. Structured output is requested with
``response_format={"type": "json_schema", ...}``; usage becomes the token
counts and ``finish_reason`` the ``done_reason``.

A backend made with ``completion_prompt`` renders the messages into one prompt
and posts it to ``/v1/completions`` instead, with the schema as llama.cpp's
``json_schema`` grammar: base models continue documents and never learned
chat turns. The embedded backend uses this against its in-process server.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import httpx

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

__all__ = ["DEFAULT_OPENAI_HOST", "CompletionPrompt", "OpenAICompatBackend"]

CompletionPrompt = Callable[[list[dict[str, str]], dict[str, Any] | None], str]

DEFAULT_OPENAI_HOST = "http://127.0.0.1:8000"
_METADATA_TIMEOUT_S = 15.0
# Timeout of one embedding request: a batch of short texts, but the model may have to load first.
EMBED_TIMEOUT_S = 120.0
_STRUCTURED_MARKERS = (
    "response_format",
    "json_schema",
    "structured output",
    "guided_json",
    "grammar",
)


def _base_url(host: str | None) -> str:
    """``host``, else ``$OPENAI_BASE_URL``, else the local default; without a trailing ``/v1``."""
    raw = (host or os.environ.get("OPENAI_BASE_URL") or DEFAULT_OPENAI_HOST).strip().rstrip("/")
    if "://" not in raw:
        raw = f"http://{raw}"
    return raw[: -len("/v1")] if raw.endswith("/v1") else raw


class OpenAICompatBackend:
    """Chat with one model on one OpenAI-compatible server."""

    name = "openai"

    def __init__(
        self,
        model: str,
        host: str | None = None,
        *,
        api_key: str | None = None,
        timeout_s: float | None = None,
        schema_name: str = "answer",
        completion_prompt: CompletionPrompt | None = None,
        stop: list[str] | None = None,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        """Prepare a backend for ``model`` at ``host`` (base URL, with or without ``/v1``).

        The API key comes from ``api_key`` or ``$OPENAI_API_KEY``; local servers need none.
        ``completion_prompt`` switches to ``/v1/completions`` with that rendering of the
        messages; ``stop`` and ``extra_body`` (server-specific sampling fields such as
        llama.cpp's ``repeat_penalty``) go into every request.
        """
        self.model = model
        self.host: str | None = _base_url(host)
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._timeout_override = timeout_s
        self._schema_name = schema_name
        self._completion_prompt = completion_prompt
        self._stop = stop
        self._extra_body = extra_body or {}
        self._streaming = StreamChoice()
        headers = {"Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        self._http = httpx.AsyncClient(
            base_url=self.host, headers=headers, timeout=httpx.Timeout(300.0, connect=10.0)
        )

    def _timeout(self, seconds: float) -> httpx.Timeout:
        seconds = self._timeout_override or seconds
        return httpx.Timeout(seconds, connect=min(seconds, 10.0))

    def _payload(
        self, messages: list[dict[str, str]], schema: dict[str, Any] | None, options: ChatOptions
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"model": self.model, "temperature": options.temperature}
        if self._completion_prompt is not None:
            payload["prompt"] = self._completion_prompt(messages, schema)
            if schema is not None:
                payload["json_schema"] = schema
        else:
            payload["messages"] = messages
            if schema is not None:
                payload["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": self._schema_name, "schema": schema, "strict": True},
                }
        if options.num_predict is not None:
            payload["max_tokens"] = options.num_predict
        if options.seed is not None:
            payload["seed"] = options.seed
        if options.top_p is not None:
            payload["top_p"] = options.top_p
        if self._stop:
            payload["stop"] = self._stop
        return {**payload, **self._extra_body}

    @property
    def _endpoint(self) -> str:
        return "/v1/completions" if self._completion_prompt is not None else "/v1/chat/completions"

    async def chat(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any] | None,
        options: ChatOptions,
        on_token: TokenCallback | None = None,
    ) -> ChatResult:
        """Send one chat completion; stream to ``on_token`` when given.

        Returns the answer with the server's usage counts (``None`` when it
        reports none) and ``finish_reason``. Raises the mapped
        :class:`~engine.errors.BackendError` subclass on failure.
        """
        payload = self._payload(messages, schema, options)
        timeout = self._timeout(options.timeout_s)
        started = time.perf_counter()
        try:
            # Streamed, the timeout is one between tokens (each read waits at most that long),
            # not one on the whole answer: see StreamChoice for when a request is streamed.
            if not self._streaming.stream(on_token):
                response = await self._http.post(self._endpoint, json=payload, timeout=timeout)
                await self._raise_for_status(response)
                data = response.json()
                choice = (data.get("choices") or [{}])[0]
                content = _choice_text(choice) or ""
                finish = choice.get("finish_reason")
                usage = data.get("usage") or {}
            else:
                content, finish, usage = await self._stream(payload, timeout, on_token)
        except BackendError:
            raise
        except Exception as exc:
            if isinstance(exc, httpx.TimeoutException):
                self._streaming.timed_out()
            raise self._map_error(exc) from exc
        self._streaming.answered(time.perf_counter() - started, self._timeout_override or options.timeout_s)
        return ChatResult(
            content=content,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            latency_s=time.perf_counter() - started,
            done_reason=finish,
            model=self.model,
            backend=self.name,
            host=self.host,
        )

    async def _stream(
        self, payload: dict[str, Any], timeout: httpx.Timeout, on_token: TokenCallback | None
    ) -> tuple[str, str | None, dict[str, Any]]:
        # Ask for usage in the last event; servers that do not know the option ignore it.
        payload = {**payload, "stream": True, "stream_options": {"include_usage": True}}
        pieces: list[str] = []
        finish: str | None = None
        usage: dict[str, Any] = {}
        finished = False
        async with self._http.stream(
            "POST", self._endpoint, json=payload, timeout=timeout
        ) as response:
            await self._raise_for_status(response)
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # SSE comments, event names and blank separators
                data = line[5:].strip()
                if data == "[DONE]":
                    finished = True
                    break
                event = json.loads(data)
                if event.get("error"):
                    raise BackendServerError(
                        f"The server at {self.host} failed while answering: {_error_text(event)}."
                    )
                if event.get("usage"):
                    usage = event["usage"]
                for choice in event.get("choices") or []:
                    piece = _choice_text(choice)
                    if piece:
                        pieces.append(piece)
                        if on_token is not None:
                            on_token(piece)
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
        if not finished and finish is None:
            raise BackendServerError(
                f"The server at {self.host} ended the answer stream before it was complete: "
                "check its log and retry."
            )
        return "".join(pieces), finish, usage

    async def _raise_for_status(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        await response.aread()
        raise self._map_status(response.status_code, _error_text_from_response(response))

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One embedding per text, in order, from the backend's model (``POST /v1/embeddings``).

        Raises the mapped :class:`~engine.errors.BackendError` subclass: a model the server does not
        serve, a server without the endpoint, or a malformed answer each name the fix.
        """
        if not texts:
            return []
        try:
            response = await self._http.post(
                "/v1/embeddings", json={"model": self.model, "input": texts}, timeout=self._timeout(EMBED_TIMEOUT_S)
            )
            if response.status_code in (404, 405) and "model" not in _error_text_from_response(response).lower():
                raise BackendError(
                    f"The server at {self.host} has no /v1/embeddings endpoint: use a server that serves "
                    "embeddings (vLLM, llama.cpp server with --embeddings, Ollama) or leave quality.embedding_model empty."
                )
            await self._raise_for_status(response)
            data = sorted(response.json().get("data") or [], key=lambda item: item.get("index", 0))
            vectors = [[float(x) for x in item["embedding"]] for item in data]
        except BackendError:
            raise
        except (KeyError, TypeError) as exc:
            raise self._map_error(ValueError(str(exc))) from exc
        except Exception as exc:
            raise self._map_error(exc) from exc
        if len(vectors) != len(texts):
            raise BackendServerError(
                f"The server at {self.host} returned {len(vectors)} embeddings for {len(texts)} texts: "
                "check that it serves embeddings and retry."
            )
        return vectors

    async def check(self) -> None:
        """Make sure the server answers and serves the model; raises the mapped error."""
        names = {info.name for info in await self.list_models()}
        if self.model not in names:
            served = ", ".join(sorted(names)) or "none"
            raise ModelNotFoundError(
                f"Model '{self.model}' is not served by {self.host} (it serves: {served}): "
                "start the server with that model or pick one it serves."
            )

    async def list_models(self) -> list[ModelInfo]:
        """Return the models the server lists at ``/v1/models``."""
        try:
            response = await self._http.get(
                "/v1/models", timeout=self._timeout(_METADATA_TIMEOUT_S)
            )
            await self._raise_for_status(response)
            data = response.json().get("data") or []
        except BackendError:
            raise
        except Exception as exc:
            raise self._map_error(exc) from exc
        return [ModelInfo(name=str(item.get("id"))) for item in data if item.get("id")]

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    def _map_status(self, status: int, text: str) -> BackendError:
        host, model = self.host, self.model
        lowered = text.lower()
        if status in (401, 403):
            return BackendError(
                f"The server at {host} rejected the API key (HTTP {status}): set OPENAI_API_KEY to a valid key."
            )
        if status == 404 or (
            "model" in lowered and ("not found" in lowered or "does not exist" in lowered)
        ):
            return ModelNotFoundError(
                f"Model '{model}' is not served by {host}: start the server with that model "
                "or pick one listed by /v1/models."
            )
        if status in (400, 422) and any(marker in lowered for marker in _STRUCTURED_MARKERS):
            return StructuredOutputUnsupportedError(
                f"The server at {host} cannot produce structured JSON output for '{model}' ({text}): "
                "use a server with json_schema response_format support (vLLM, llama.cpp server, LM Studio)."
            )
        if status >= 500:
            return BackendServerError(
                f"The server at {host} failed while answering (HTTP {status}): {text}."
            )
        return BackendError(f"The server at {host} rejected the request (HTTP {status}): {text}.")

    def _map_error(self, exc: BaseException) -> BackendError:
        host = self.host
        if isinstance(exc, (httpx.ConnectTimeout, httpx.ConnectError)):
            return BackendUnreachableError(
                f"Cannot reach the OpenAI-compatible server at {host}: start it or pass the right --host."
            )
        if isinstance(exc, httpx.TimeoutException):
            return BackendTimeoutError(
                f"The server at {host} sent nothing for longer than the timeout: raise "
                "generation.timeout_s, or lower the concurrency for this host."
            )
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
            return BackendServerError(
                f"The server at {host} dropped the connection mid-answer: check its log and retry."
            )
        if isinstance(exc, (json.JSONDecodeError, ValueError)):
            return BackendServerError(
                f"The server at {host} sent something that is not OpenAI-protocol JSON: "
                "check that the address points to an OpenAI-compatible server."
            )
        if isinstance(exc, httpx.HTTPError):
            return BackendServerError(f"The request to {host} failed ({exc}): retry.")
        return BackendError(
            f"The server at {host} failed unexpectedly ({type(exc).__name__}: {exc})."
        )


def _choice_text(choice: dict[str, Any]) -> str | None:
    """The text of one choice: a chat message, a streamed delta, or a completion's text."""
    for key in ("message", "delta"):
        if isinstance(choice.get(key), dict):
            content = choice[key].get("content")
            return content if isinstance(content, str) else None
    text = choice.get("text")
    return text if isinstance(text, str) else None


def _error_text(payload: Any) -> str:
    """The human message inside an OpenAI-style (or Ollama-style) error body."""
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict):
            return str(error.get("message") or error)
        return str(error)
    return str(payload)


def _error_text_from_response(response: httpx.Response) -> str:
    try:
        return _error_text(response.json()).strip()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
