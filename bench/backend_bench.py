"""Backend throughput: how close the backends get to what the server allows.

Prints, against the stand-in Ollama server (``tests/fake_ollama.py``):

* requests/s through :class:`OllamaBackend` with per-request latency L and
  server parallelism P, against the ideal P/L;
* requests/s with L=0 and the client-side CPU time per request (the backend
  must never be the bottleneck);

and, for each built-in embedded model that is installed, tokens/s through
:class:`LlamaCppBackend` (HTTP to the in-process server) against the same
request handed straight to llama.cpp's handler, and the aggregate with 4
decoding slots.

Run: ``python bench/backend_bench.py [--requests 200] [--skip-llama] [--skip-http]``
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.generate.backends import ChatOptions
from engine.generate.backends.ollama import OllamaBackend
from tests.fake_ollama import fake_ollama

MESSAGES = [
    {"role": "system", "content": "Write one question and answer pair grounded on the passage."},
    {
        "role": "user",
        "content": "Passage:\nSQLite's write-ahead log lets readers keep reading while one writer "
        "appends pages to the log. A checkpoint copies those pages back into the main database "
        "file. If the process dies during a checkpoint, nothing is lost.",
    },
]
SCHEMA = {
    "type": "object",
    "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
    "required": ["question", "answer"],
}


async def _drive(url: str, total: int, concurrency: int, stream: bool) -> tuple[float, float]:
    """Send ``total`` requests, ``concurrency`` at a time; return (wall s, process CPU s)."""
    backend = OllamaBackend("llama3.2:3b", url)
    gate = asyncio.Semaphore(concurrency)
    options = ChatOptions()

    async def one() -> None:
        async with gate:
            await backend.chat(
                MESSAGES, SCHEMA, options, on_token=(lambda _p: None) if stream else None
            )

    await backend.chat(MESSAGES, SCHEMA, options)  # warm the connection pool
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    await backend.aclose()
    return wall, cpu


def bench_http(total: int) -> None:
    print("Ollama backend against the stand-in server")
    for latency, parallel in ((0.2, 4), (0.05, 8)):
        with fake_ollama(latency=latency, parallel=parallel) as srv:
            wall, _ = asyncio.run(_drive(srv.url, total // 2, parallel, stream=False))
        achieved, ideal = (total // 2) / wall, parallel / latency
        print(
            f"  L={latency * 1000:.0f} ms P={parallel}: {achieved:6.1f} req/s of ideal {ideal:.1f} "
            f"({100 * achieved / ideal:.1f}%)"
        )
    for stream in (False, True):
        with fake_ollama(latency=0.0, parallel=8) as srv:
            # CPU time covers this process only: the client plus the in-process server threads.
            wall, cpu = asyncio.run(_drive(srv.url, total, 8, stream=stream))
        mode = "streaming" if stream else "single   "
        print(
            f"  L=0 {mode}: {total / wall:6.1f} req/s, {1000 * cpu / total:.2f} ms CPU per request "
            "(client and stand-in server together)"
        )


async def _embedded_answers(backend: Any, count: int, at_once: int) -> tuple[int, float]:
    """``count`` answers, ``at_once`` in flight; returns (tokens generated, wall seconds)."""
    await backend.check()
    gate = asyncio.Semaphore(at_once)

    async def one(seed: int) -> int:
        async with gate:
            options = ChatOptions(temperature=0.3, num_predict=96, seed=seed)
            return (await backend.chat(MESSAGES, SCHEMA, options)).completion_tokens or 0

    started = time.perf_counter()
    tokens = sum(await asyncio.gather(*(one(i) for i in range(count))))
    wall = time.perf_counter() - started
    await backend.aclose()
    return tokens, wall


def bench_llama(rounds: int) -> None:
    """Each installed built-in model: the engine's path against llama.cpp's own handler, and slots."""
    if importlib.util.find_spec("xllamacpp") is None:
        print("embedded model: skipped (pip install 'pairforge[local]')")
        return
    from engine.generate.backends.llamacpp import (
        _SERVERS,
        BUILTIN_MODELS,
        COMPLETION_STOP,
        LlamaCppBackend,
        _package_dir,
        render_completion_prompt,
    )

    for name, builtin in BUILTIN_MODELS.items():
        if _package_dir(builtin.package) is None:
            print(f"embedded {name}: skipped ({builtin.install})")
            continue
        print(f"embedded {builtin.description}, {builtin.prompt_style} prompt, JSON schema, {rounds} answers:")
        tokens_b, wall_b = asyncio.run(_embedded_answers(LlamaCppBackend(name, n_ctx=2048, slots=1), rounds, 1))
        # The same request straight into llama.cpp's handler in this process: no HTTP, no engine.
        server = next(s.server for k, s in _SERVERS.items() if k[1] == 1 and builtin.file_name in k[0])
        body: dict[str, Any] = {"max_tokens": 96, "temperature": 0.3, "repeat_penalty": 1.1}
        if builtin.prompt_style == "completion":
            body.update(prompt=render_completion_prompt(MESSAGES, SCHEMA), json_schema=SCHEMA,
                        stop=COMPLETION_STOP, repeat_penalty=1.2)
        else:
            body.update(messages=MESSAGES, response_format={
                "type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}})
        handle = server.handle_completions if builtin.prompt_style == "completion" else server.handle_chat_completions
        tokens_d, started = 0, time.perf_counter()
        for i in range(rounds):
            out: Any = handle({**body, "seed": i})
            tokens_d += out["usage"]["completion_tokens"]
        wall_d = time.perf_counter() - started
        via, direct = tokens_b / wall_b, tokens_d / wall_d
        print(f"  1 slot: via the backend {via:.1f} tok/s, llama.cpp's handler {direct:.1f} tok/s "
              f"({100 * via / direct:.0f}%)")

        tokens_c, wall_c = asyncio.run(
            _embedded_answers(LlamaCppBackend(name, n_ctx=2048, slots=4), 2 * rounds, 4)
        )
        print(f"  4 slots, {2 * rounds} requests at once: {tokens_c / wall_c:.1f} tok/s in all "
              f"({tokens_c / wall_c / via:.2f}x one slot)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--llama-rounds", type=int, default=4)
    parser.add_argument("--skip-llama", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    if not args.skip_http:
        bench_http(args.requests)
    if not args.skip_llama:
        bench_llama(args.llama_rounds)


if __name__ == "__main__":
    main()
