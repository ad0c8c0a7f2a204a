"""Generation engine throughput against two Ollama-protocol servers with 1, 4 and 8 slots.

Prints, for a project holding the sample corpus, at the project's default settings (no
concurrency set, so ``generation.concurrency = "auto"``) unless ``--concurrency N``:

* for each server and slot count S with latency L per answer: answered requests/s through
  the whole engine (plan -> queue -> backend -> builder -> quality checks -> store) against
  the server's capacity S/L, over the whole run and in steady state (from the middle answer
  until the last request was sent: after it the queue is dry and the run drains; a job may
  ask twice, a refusal whose proposed topics were all rejected, so requests per pair are
  printed too), the concurrency the run settled at (what the project remembers for that host),
  and the median latency the engine saw per request minus L (what HTTP and the client
  add per request);
* pairs/s with L=0 at concurrency 8 and the engine's CPU time per pair.

The two servers are ``tests/fake_ollama.py`` (HTTP/1.1 keep-alive, Nagle off) and
``bench/plain_ollama_server.py`` (the standard library's defaults: HTTP/1.0, a new
connection per request, Nagle on). Each runs in its own process, so its Python work
neither shares the engine's interpreter lock nor counts as the engine's CPU time. Each case
runs ``--repeat`` times (3); the median is printed with the spread (min-max), and the
machine's load average, since a loaded machine slows both sides.

Run: ``python bench/generate_bench.py [--seconds 12] [--repeat 3] [--servers fake,plain]
[--slots 1,4,8] [--concurrency N|auto] [--fast-jobs 1000] [--llama]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.steady import steady_rate  # noqa: E402
from engine.generate import backends_from_settings, generation_runner, make_plan, save_plan  # noqa: E402
from engine.jobs import JobEvent  # noqa: E402
from engine.jobs.concurrency import remembered_concurrency  # noqa: E402
from engine.store import Store  # noqa: E402
from tests.test_generate_corpus import load_sample_corpus  # noqa: E402

MODEL = "llama3.2:3b"
SERVERS = {
    "fake": "tests/fake_ollama.py (HTTP/1.1 keep-alive)",
    "plain": "bench/plain_ollama_server.py (HTTP/1.0, connection per request)",
}


def _server(kind: str, latency: float, slots: int | None) -> tuple[subprocess.Popen[bytes], str]:
    """Start server ``kind`` in its own process; returns it and its base URL."""
    if kind == "fake":
        args = [str(ROOT / "tests" / "fake_ollama.py"), "--port", "0", "--latency", str(latency)]
        args += ["--parallel", str(slots)] if slots else []
    else:
        args = [str(ROOT / "bench" / "plain_ollama_server.py"), "--latency", str(latency),
                "--slots", str(slots or 64), "--models", MODEL]
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()  # "... listening on http://127.0.0.1:PORT ..."
    url = next(word for word in line.split() if word.startswith("http://"))
    return proc, url


def _project(jobs: int) -> tuple[Store, int]:
    store = Store.init(Path(tempfile.mkdtemp(prefix="pf-bench-")) / "proj")
    load_sample_corpus(store)
    # The plan's minimums would dwarf a short run: keep its shape at the run's size.
    store.override_settings({"generation": {"min_refusals": max(2, jobs // 10), "min_multi_hop": max(2, jobs // 12)}})
    run_id = save_plan(store, make_plan(store, target=jobs))
    return store, run_id


def run_case(kind: str, latency: float, slots: int | None, concurrency: int | str | None, jobs: int) -> dict[str, float]:
    """One timed run; returns pairs/s over the whole run and in steady state, and what it settled at.

    ``steady`` is answers per second between the run's middle answer and its last request
    (see :func:`bench.steady.steady_rate`). ``overhead_ms`` is the median
    request latency the engine recorded minus the server's ``latency``.
    """
    proc, url = _server(kind, latency, slots)
    try:
        store, run_id = _project(jobs)
        if concurrency is not None:
            store.override_settings({"generation": {"concurrency": concurrency}})
        backends = backends_from_settings(store.settings, backend="ollama", model=MODEL, hosts=[url])
        runner = generation_runner(store, backends)
        done: list[float] = []
        # A job may ask more than once (a refusal whose proposed topics are all rejected asks
        # again), so the server's capacity is measured in answered requests, not in pairs.
        answered: list[float] = []
        sent: list[float] = []
        chat = backends[0].chat

        async def counted_chat(*args: Any, **kwargs: Any) -> Any:
            sent.append(time.perf_counter())
            result = await chat(*args, **kwargs)
            answered.append(time.perf_counter())
            return result

        backends[0].chat = counted_chat  # type: ignore[method-assign]

        def on_event(event: JobEvent) -> None:
            if event.kind == "job_done":
                done.append(time.perf_counter())

        cpu0, wall0 = time.process_time(), time.perf_counter()
        summary = asyncio.run(runner.run(run_id, on_event=on_event))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        latencies = [p.origin.latency_s for p in store.iter_pairs() if p.origin.latency_s is not None]
        settled = remembered_concurrency(store, backends[0].host or "") or 0
        store.close()
    finally:
        proc.terminate()
        proc.wait()
    pairs = summary.pairs
    steady = steady_rate(answered, sent)  # None (nan below) when the run is too short to say
    return {
        "pairs": pairs, "wall": wall, "rate": pairs / wall, "request_rate": len(answered) / wall, "steady": steady if steady is not None else float("nan"),
        "settled": settled,
        "requests_per_pair": len(answered) / max(pairs, 1),
        "overhead_ms": 1000 * (statistics.median(latencies) - latency) if latencies else 0.0,
        "cpu_ms_per_pair": 1000 * cpu / max(pairs, 1),
    }


def repeat_case(repeat: int, *args: object) -> dict[str, list[float]]:
    """``repeat`` runs of :func:`run_case`; every figure's values, sorted."""
    runs = [run_case(*args) for _ in range(repeat)]  # type: ignore[arg-type]
    return {key: sorted(r[key] for r in runs) for key in runs[0]}


def _spread(values: list[float], scale: float = 1.0, fmt: str = ".1f") -> str:
    """The median of ``values`` (times ``scale``) with its range when there are several."""
    median = format(statistics.median(values) * scale, fmt)
    if len(values) == 1:
        return median
    return f"{median} ({format(values[0] * scale, fmt)}-{format(values[-1] * scale, fmt)})"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages and the CPU count, as ``uptime`` shows them."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPU(s)"


def llama_case() -> None:
    """Tokens/s of the embedded model through the engine at its default slots."""
    from engine.models import Job, PairKind

    store = Store.init(Path(tempfile.mkdtemp(prefix="pf-bench-")) / "proj")
    load_sample_corpus(store)
    chunk = next(c for c in store.list_chunks() if 300 < len(c.text) < 700)
    jobs = [Job(kind=PairKind.INSTRUCTION, mode="factual", chunk_ids=[chunk.id or 0], params={"variant": i})
            for i in range(8)]
    run_id, _ = store.create_run("generate", {}, jobs)
    backends = backends_from_settings(store.settings, backend="llamacpp")
    runner = generation_runner(store, backends)
    wall0 = time.perf_counter()
    summary = asyncio.run(runner.run(run_id))
    wall = time.perf_counter() - wall0
    slots = getattr(backends[0], "slots", 1)
    print(f"embedded model, {slots} slot(s), concurrency auto: {summary.completion_tokens / wall:.1f} tok/s, "
          f"{summary.pairs} pairs in {wall:.1f} s, settled at {remembered_concurrency(store, 'llamacpp')}")


def _concurrency(text: str | None) -> int | str | None:
    if text is None or text == "auto":
        return text
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="ideal length of a run at capacity")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per answer on the server")
    parser.add_argument("--servers", default="fake,plain", help="comma-separated: fake, plain")
    parser.add_argument("--slots", default="1,4,8", help="comma-separated slot counts")
    parser.add_argument("--concurrency", default=None, help="a number or auto (default: the project's default)")
    parser.add_argument("--fast-jobs", type=int, default=1000, help="jobs in the L=0 case (0 skips it)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; median and range are printed")
    parser.add_argument("--llama", action="store_true", help="also measure the embedded model")
    args = parser.parse_args()
    concurrency = _concurrency(args.concurrency)
    shown = concurrency if concurrency is not None else "default (auto)"

    print(f"before: {load_average()}; {args.repeat} run(s) per case, median (min-max); concurrency {shown}")
    for kind in args.servers.split(","):
        print(f"{kind}: {SERVERS[kind]}")
        for slots in (int(s) for s in args.slots.split(",")):
            capacity = slots / args.latency
            jobs = max(40, round(capacity * args.seconds))
            r = repeat_case(args.repeat, kind, args.latency, slots, concurrency, jobs)
            print(f"  S={slots} L={args.latency * 1000:.0f} ms, {jobs} jobs: steady "
                  f"{_spread(r['steady'], 100 / capacity)}% of S/L={capacity:.0f}/s (target >= 95%), "
                  f"whole run {_spread(r['request_rate'], 100 / capacity)}%; settled at {_spread(r['settled'], fmt='.0f')}; "
                  f"+{_spread(r['overhead_ms'])} ms per request over L; {_spread(r['requests_per_pair'], fmt='.2f')} "
                  f"requests per pair, {_spread(r['rate'])} pairs/s")
    if args.fast_jobs:
        r = repeat_case(args.repeat, "fake", 0.0, None, 8, args.fast_jobs)
        print(f"L=0 concurrency 8: {_spread(r['rate'], fmt='.0f')} pairs/s (target >= 300); "
              f"engine CPU {_spread(r['cpu_ms_per_pair'], fmt='.2f')} ms/pair over {r['pairs'][0]:.0f} pairs")
    print(f"after: {load_average()}")
    if args.llama:
        llama_case()


if __name__ == "__main__":
    main()
