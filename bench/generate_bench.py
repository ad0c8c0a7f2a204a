"""Generation engine throughput against the stand-in Ollama server.

Prints, for a project holding the sample corpus:

* requests/s through the whole engine (planner jobs -> queue -> backend -> builder ->
  quality checks -> store) with per-request latency L and server parallelism P,
  against the ideal P/L;
* pairs/s with L=0 and the engine's CPU time per pair;
* with ``--llama`` and the optional extra installed: tokens/s of the embedded model
  through the engine against a direct llama-cpp call on the same prompt and grammar.

The server runs in its own process, so its Python work neither shares the engine's
interpreter lock nor counts as the engine's CPU time (``time.process_time()`` of this
process only). Each case runs ``--repeat`` times (3) and the median is printed, with
the machine's load average, since a loaded machine slows both sides.

Run: ``python bench/generate_bench.py [--jobs 200] [--fast-jobs 1000] [--repeat 3] [--llama]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.generate import backends_from_settings, generation_runner, make_plan, save_plan  # noqa: E402
from engine.jobs import JobEvent  # noqa: E402
from engine.store import Store  # noqa: E402
from tests.test_generate_corpus import load_sample_corpus  # noqa: E402

MODEL = "llama3.2:3b"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server(latency: float, parallel: int | None) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    args = [sys.executable, str(ROOT / "tests" / "fake_ollama.py"), "--port", str(port), "--latency", str(latency)]
    if parallel:
        args += ["--parallel", str(parallel)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    proc.stdout.readline()  # "listening on ..."
    return proc, f"http://127.0.0.1:{port}"


def _project(jobs: int) -> tuple[Store, int]:
    store = Store.init(Path(tempfile.mkdtemp(prefix="pf-bench-")) / "proj")
    load_sample_corpus(store)
    run_id = save_plan(store, make_plan(store, target=jobs))
    return store, run_id


def run_case(latency: float, parallel: int | None, concurrency: int, jobs: int) -> dict[str, float]:
    """One timed run; returns wall seconds, CPU seconds, pairs and rates.

    ``rate`` counts the whole run (start-up included); ``steady`` counts the jobs finished
    after the first ``concurrency`` ones, over the time they took, i.e. the pipeline
    once every slot is busy. ``startup`` is the time to the first finished job.
    """
    proc, url = _server(latency, parallel)
    try:
        store, run_id = _project(jobs)
        backends = backends_from_settings(store.settings, backend="ollama", model=MODEL, hosts=[url])
        runner = generation_runner(store, backends, concurrency_per_host=concurrency)
        done: list[float] = []

        def on_event(event: JobEvent) -> None:
            if event.kind == "job_done":
                done.append(time.perf_counter())

        cpu0, wall0 = time.process_time(), time.perf_counter()
        summary = asyncio.run(runner.run(run_id, on_event=on_event))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        store.close()
    finally:
        proc.terminate()
        proc.wait()
    pairs = summary.pairs
    steady = (len(done) - concurrency) / (done[-1] - done[concurrency - 1]) if len(done) > 2 * concurrency else 0.0
    return {"pairs": pairs, "wall": wall, "cpu": cpu, "rate": pairs / wall, "steady": steady,
            "startup": (done[0] - wall0) if done else 0.0, "cpu_ms_per_pair": 1000 * cpu / max(pairs, 1)}


def median_case(repeat: int, latency: float, parallel: int | None, concurrency: int, jobs: int) -> dict[str, float]:
    """``repeat`` runs of :func:`run_case`; the median of each figure."""
    runs = [run_case(latency, parallel, concurrency, jobs) for _ in range(repeat)]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def load_average() -> str:
    """The 1, 5 and 15 minute load averages and the CPU count, as ``uptime`` shows them."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPU(s)"


def llama_case() -> None:
    """Tokens/s of the embedded model through the engine vs a direct llama-cpp call."""
    from engine.generate.backends.llamacpp import (
        _grammar,
        default_model_path,
        render_completion_prompt,
    )
    from engine.generate.builders import GenerationContext, builder_for
    from engine.models import Job, PairKind

    store = Store.init(Path(tempfile.mkdtemp(prefix="pf-bench-")) / "proj")
    load_sample_corpus(store)
    chunk = next(c for c in store.list_chunks() if 300 < len(c.text) < 700)
    jobs = [Job(kind=PairKind.INSTRUCTION, mode="factual", chunk_ids=[chunk.id or 0], params={"variant": i}) for i in range(3)]
    run_id, _ = store.create_run("generate", {}, jobs)
    backends = backends_from_settings(store.settings, backend="llamacpp")
    runner = generation_runner(store, backends, concurrency_per_host=1)
    wall0 = time.perf_counter()
    summary = asyncio.run(runner.run(run_id))
    engine_tps = summary.completion_tokens / (time.perf_counter() - wall0)

    import llama_cpp

    request = builder_for(GenerationContext.load(store), "instruction").prepare(jobs[0])
    llama = llama_cpp.Llama(str(default_model_path()), n_ctx=4096, verbose=False)
    prompt = render_completion_prompt(request.messages, request.schema)
    grammar = _grammar(request.schema)
    tokens, wall0 = 0, time.perf_counter()
    for _ in range(3):
        out = llama.create_completion(prompt, grammar=grammar, max_tokens=store.settings.generation.num_predict,
                                      temperature=0.7, repeat_penalty=1.2, stop=["\n### "])
        tokens += out["usage"]["completion_tokens"]
    direct_tps = tokens / (time.perf_counter() - wall0)
    print(f"embedded Gemma 3 270M: engine {engine_tps:.1f} tok/s ({summary.pairs} pairs), "
          f"direct llama-cpp {direct_tps:.1f} tok/s -> {100 * engine_tps / direct_tps:.0f}% (target >= 90%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs in the latency-bound case")
    parser.add_argument("--fast-jobs", type=int, default=1000, help="jobs in the L=0 case")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median is printed")
    parser.add_argument("--llama", action="store_true", help="also measure the embedded model")
    args = parser.parse_args()

    print(f"before: {load_average()}; median of {args.repeat} run(s) per case")
    latency, parallel = 0.2, 4
    r = median_case(args.repeat, latency, parallel, concurrency=4, jobs=args.jobs)
    ideal = parallel / latency
    print(f"P={parallel} L={latency * 1000:.0f} ms concurrency 4: {r['rate']:.2f} req/s vs ideal {ideal:.2f} "
          f"-> {100 * r['rate'] / ideal:.1f}% over the whole run (target >= 95%); steady state "
          f"{r['steady']:.2f} req/s -> {100 * r['steady'] / ideal:.1f}%; first pair after {r['startup']:.2f} s; "
          f"{r['pairs']:.0f} pairs in {r['wall']:.1f} s, engine CPU {r['cpu_ms_per_pair']:.2f} ms/pair")
    r = median_case(args.repeat, 0.0, None, concurrency=8, jobs=args.fast_jobs)
    print(f"L=0 concurrency 8: {r['rate']:.0f} pairs/s (target >= 300); "
          f"engine CPU {r['cpu_ms_per_pair']:.2f} ms/pair over {r['pairs']:.0f} pairs")
    print(f"after: {load_average()}")
    if args.llama:
        llama_case()


if __name__ == "__main__":
    main()
