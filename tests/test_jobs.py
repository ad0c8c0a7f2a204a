"""The job runner's lease: a running job belongs to the run that keeps renewing it, not to a pid.

Runs go over HTTP to ``tests/fake_ollama.py``, which stands in for an Ollama server.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from engine.generate import backends_from_settings, generation_runner
from engine.models import Job, PairKind
from engine.store import Store
from tests.fake_ollama import fake_ollama
from tests.test_generate_corpus import load_sample_corpus

MODEL = "llama3.2:3b"
ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def live_unrelated_process() -> Iterator[int]:
    """A process that has nothing to do with PairForge and stays alive; yields its pid."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield child.pid
    finally:
        child.kill()
        child.wait()


def _set_owner(store: Store, job_id: int, pid: int) -> None:
    with store.transaction() as conn:
        conn.execute("UPDATE jobs SET owner = ? WHERE id = ?", (f"{socket.gethostname()}:{pid}", job_id))


def _one_job_run(store: Store) -> int:
    chunk = store.list_chunks()[3]
    run_id, _ = store.create_run("generate", {}, [Job(kind=PairKind.INSTRUCTION, mode="factual", chunk_ids=[chunk.id or 0])])
    return run_id


def test_a_run_takes_over_the_job_of_a_killed_process_whose_pid_was_reused(project: Store) -> None:
    store = load_sample_corpus(project)
    run_id = _one_job_run(store)
    claim_and_die = (
        "import os, sys; from engine.store import Store; "
        "s = Store.open(sys.argv[1]); s.claim_job('gone', task='generate', lease_s=0.2); "
        "os.kill(os.getpid(), 9)"
    )
    subprocess.run([sys.executable, "-c", claim_and_die, str(store.root)], cwd=ROOT, check=False, timeout=60)
    (job,) = store.list_jobs(run_id=run_id)
    assert job.status == "running" and job.id is not None
    with live_unrelated_process() as pid, fake_ollama() as server:
        _set_owner(store, job.id, pid)
        time.sleep(0.3)  # the dead run's lease runs out
        backends = backends_from_settings(store.settings, backend="ollama", model=MODEL, hosts=[server.url])
        summary = asyncio.run(generation_runner(store, backends).run(run_id))
    assert summary.pairs == 1 and summary.done == 1
    (job,) = store.list_jobs(run_id=run_id)
    assert job.status == "done" and len(job.result_pair_ids) == 1


def test_a_working_run_renews_its_leases_so_no_other_run_takes_its_jobs(project: Store) -> None:
    store = load_sample_corpus(project)
    run_id = _one_job_run(store)
    requeued: list[int] = []
    with fake_ollama(latency=2.2) as server:
        backends = backends_from_settings(store.settings, backend="ollama", model=MODEL, hosts=[server.url])
        runner = generation_runner(store, backends, lease_s=0.6)

        def another_run_starts() -> None:
            # Another run on the same project starts while the answer is still coming.
            time.sleep(1.5)
            with Store.open(store.root) as other:
                requeued.append(other.requeue_interrupted())

        starter = threading.Thread(target=another_run_starts)
        starter.start()
        summary = asyncio.run(runner.run(run_id))
        starter.join()
    assert requeued == [0]  # a lease of 0.6 s would have run out by then without renewal
    assert summary.pairs == 1
    (job,) = store.list_jobs(run_id=run_id)
    assert job.status == "done" and job.attempts == 1
