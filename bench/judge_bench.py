"""Judge throughput: how close a judge run gets to what the server allows.

Prints, against the stand-in Ollama server (``tests/fake_ollama.py``, standing in for
Ollama because none can run here), run in its own process as Ollama would be
(``--in-process`` runs it in this one, sharing the interpreter with the client):

* verdicts/s of a full judge run (plan, claim, prompt, chat, validate, store the verdict
  and mark the job done) with per-request latency L and server parallelism P at
  concurrency P, against the ideal P/L (target: at least 95%);
* with L=0, the wall time per verdict of the same run (steady state) next to the time per bare chat
  request through the same backend, and their difference: the judge engine's own
  overhead per verdict (store transactions, prompt building, validation).

Run: ``python bench/judge_bench.py [--pairs 200] [--latency 0.2] [--parallel 4] [--in-process]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.generate.backends import ChatOptions, make_backend, schema_for
from engine.jobs import JobEvent
from engine.judge import (
    JudgeVerdictOutput,
    build_judge_messages,
    judge_runner,
    plan_judging,
)
from engine.models import Pair
from engine.store import Store
from tests.fake_ollama import fake_ollama

MODEL = "qwen2.5:7b"
ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def _server(latency: float, parallel: int, *, in_process: bool) -> Iterator[str]:
    """A stand-in Ollama server with ``latency`` and ``parallel``; yields its base URL."""
    if in_process:
        with fake_ollama(latency=latency, parallel=parallel) as server:
            yield server.url
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, str(ROOT / "tests" / "fake_ollama.py"), "--port", str(port),
               "--latency", str(latency), "--parallel", str(parallel)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        process.stdout.readline()  # "fake Ollama listening on ..."
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _project(root: Path, pairs: int) -> Store:
    store = Store.init(root)
    store.add_pairs(
        Pair.simple(
            f"How does the cache in service {i} decide when an entry is stale?",
            f"Service {i} marks an entry stale once its time-to-live passes; the next read refreshes it "
            "from the origin while the old value is still served, so readers never wait.",
        )
        for i in range(pairs)
    )
    return store


async def _judge_run(store: Store, url: str, concurrency: int) -> tuple[float, float, int]:
    """Plan and run judging of every pair.

    Returns (wall seconds of the whole run, seconds from the first request to the last
    verdict stored, verdicts stored). The difference is the fixed start-up: planning,
    creating the HTTP clients and checking that the model is pulled.
    """
    backend = make_backend("ollama", MODEL, url)
    marks: dict[str, float] = {}

    def on_event(event: JobEvent) -> None:
        marks.setdefault(event.kind, time.perf_counter())

    started = time.perf_counter()
    run_id = plan_judging(store)
    runner = judge_runner(store, [backend], options=ChatOptions(temperature=0.1), concurrency_per_host=concurrency)
    summary = (await runner.run(run_id, on_event)).raise_for_stop()
    ended = time.perf_counter()
    await backend.aclose()
    return ended - started, ended - marks["job_started"], summary.done


async def _bare_chats(url: str, count: int, concurrency: int) -> float:
    """Send ``count`` verdict-sized chat requests, nothing else; returns wall seconds."""
    backend = make_backend("ollama", MODEL, url)
    pair = Pair.simple("How does the cache decide when an entry is stale?", "Once its time-to-live passes.")
    messages = build_judge_messages(pair, [])
    schema = schema_for(JudgeVerdictOutput)
    options = ChatOptions(temperature=0.1)
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await backend.chat(messages, schema, options)

    await backend.chat(messages, schema, options)  # warm the connection pool
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    elapsed = time.perf_counter() - started
    await backend.aclose()
    return elapsed


def main(argv: list[str] | None = None) -> None:
    """Run both measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--in-process", action="store_true", help="Run the stand-in server in this process.")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        store = _project(Path(tmp) / "capacity", args.pairs)
        with _server(args.latency, args.parallel, in_process=args.in_process) as url:
            wall, steady, judged = asyncio.run(_judge_run(store, url, args.parallel))
            bare = asyncio.run(_bare_chats(url, args.pairs, args.parallel))
        store.close()
        ideal = args.parallel / args.latency
        where = "in this process" if args.in_process else "in its own process"
        print(f"Judge throughput, L={args.latency * 1000:.0f} ms, P={args.parallel}, concurrency {args.parallel}, server {where}:")
        print(f"  ideal P/L = {ideal:.2f} verdicts/s")
        print(f"  judging, steady state: {judged / steady:.2f} verdicts/s = {judged / steady / ideal:.1%} of P/L (target >= 95%)")
        print(f"  judging, whole run incl. {wall - steady:.2f} s start-up: {judged / wall:.2f} verdicts/s = {judged / wall / ideal:.1%}")
        print(f"  bare chat requests, same server: {args.pairs / bare:.2f} requests/s = {args.pairs / bare / ideal:.1%}")

        store = _project(Path(tmp) / "overhead", args.pairs)
        with _server(0.0, args.parallel, in_process=args.in_process) as url:
            bare = asyncio.run(_bare_chats(url, args.pairs, args.parallel))
            _, steady, judged = asyncio.run(_judge_run(store, url, args.parallel))
        store.close()
        wall = steady
        per_verdict = wall / judged * 1000
        per_chat = bare / args.pairs * 1000
        print(f"Engine overhead, L=0, concurrency {args.parallel}:")
        print(f"  judge run: {per_verdict:.2f} ms per verdict ({judged / wall:.0f} verdicts/s)")
        print(f"  bare chat requests: {per_chat:.2f} ms per request ({args.pairs / bare:.0f} requests/s)")
        print(f"  judge engine overhead: {per_verdict - per_chat:.2f} ms per verdict")


if __name__ == "__main__":
    main()
