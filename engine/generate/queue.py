"""The persistent generation queue: async workers over the store's jobs table.

Each backend (one per host) gets ``concurrency_per_host`` workers. A worker takes a
job, asks the model, validates the answer and builds the pair, then goes straight on
to its next request while the pair is checked and stored. Jobs are claimed for a host
several at a time (one transaction hands every idle worker its next job), and pairs
that finish close together are stored in one transaction; each pair still commits
together with its job's done state, so a crash loses or doubles nothing. Jobs left
running by a dead process are queued again on start.

Malformed or truncated answers are asked for again at once (the server is healthy,
only that answer was bad, so waiting would just leave a slot idle); transient server
errors are retried with exponential backoff. Both stop at ``generation.max_attempts``;
a job that still fails keeps its reason. An error no retry can fix (the model is not pulled) stops the run with
that one sentence, leaving the remaining jobs queued.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.errors import (
    BackendError,
    BackendUnreachableError,
    InvalidModelOutputError,
    PairForgeError,
)
from engine.generate.backends import ChatBackend, ChatOptions, ChatResult, parse_structured
from engine.generate.builders import GenerationContext, PairBuilder, builder_for
from engine.models import Chunk, Job, Pair, PairWarning
from engine.store import Store

# Streamed text is handed on at most this often per job, so a UI is never flooded.
TOKEN_EVENT_INTERVAL_S = 0.05

# At most this many finished jobs share one store transaction.
COMMIT_BATCH_MAX = 64

# A finished job is checked and stored this long after its answer arrived: by then its
# worker's next request is on the wire, and jobs finishing meanwhile share the transaction.
COMMIT_DELAY_S = 0.005


@dataclass
class QueueProgress:
    """Where a run stands: job counts by status and the rates so far."""

    counts: dict[str, int]
    pairs_created: int
    elapsed_s: float
    pairs_per_min: float
    tokens_per_s: float
    eta_s: float | None


@dataclass
class QueueEvent:
    """Something happened in the queue.

    ``type`` is one of: run_started, job_started, job_retry, job_done, job_failed,
    pair_created, token (``text`` holds the streamed text since the last token event),
    progress, paused, resumed, stopped, run_finished.
    """

    type: str
    job_id: int | None = None
    host: str | None = None
    pair: Pair | None = None
    text: str = ""
    error: str | None = None
    progress: QueueProgress | None = None


@dataclass
class RunSummary:
    """What a run did, and why it stopped if it did not finish."""

    run_id: int | None
    pairs_created: int = 0
    jobs_done: int = 0
    jobs_failed: int = 0
    jobs_queued: int = 0
    elapsed_s: float = 0.0
    completion_tokens: int = 0
    stopped_reason: str | None = None
    last_error: str | None = None
    cancelled: bool = False
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the run made pairs and nothing stopped it."""
        return self.pairs_created > 0 and self.stopped_reason is None

    @property
    def message(self) -> str:
        """One sentence saying what happened, and why when no pair was made."""
        if self.stopped_reason:
            head = f"Stopped after {self.pairs_created} pair(s): {self.stopped_reason}"
            return head + (f" {self.jobs_queued} job(s) stay queued." if self.jobs_queued else "")
        if self.cancelled:
            return (f"Stopped after {self.pairs_created} pair(s); {self.jobs_queued} job(s) stay queued: "
                    "run `pairforge generate` again to resume.")
        if self.pairs_created == 0:
            if self.jobs_failed:
                return (f"0 pairs: all {self.jobs_failed} job(s) failed; the last error was: {self.last_error}")
            return "0 pairs: there were no queued jobs; run `pairforge plan --save` or `pairforge generate` to plan some."
        failed = f", {self.jobs_failed} job(s) failed (last error: {self.last_error})" if self.jobs_failed else ""
        return f"{self.pairs_created} pair(s) from {self.jobs_done} job(s) in {self.elapsed_s:.1f} s{failed}."


QualityChecker = Callable[[Pair, Sequence[Chunk], Any], list[PairWarning]]


def _quality_checker() -> QualityChecker | None:
    """``engine.quality``'s per-pair checks, when that part of the engine is installed."""
    for module in ("engine.quality", "engine.quality.checks"):
        try:
            imported = __import__(module, fromlist=["check_pair"])
        except ImportError:
            continue
        checker = getattr(imported, "check_pair", None)
        if checker is not None:
            return checker  # type: ignore[no-any-return]
    return None


def _load_quality_checker() -> concurrent.futures.Future[QualityChecker | None]:
    """:func:`_quality_checker`, imported in a thread when not yet loaded.

    A first import of the checks takes about 0.15 s; in a thread it overlaps the first
    requests instead of delaying them.
    """
    future: concurrent.futures.Future[QualityChecker | None] = concurrent.futures.Future()

    def load() -> None:
        try:
            future.set_result(_quality_checker())
        except BaseException as exc:  # handed to whoever waits for the checker
            future.set_exception(exc)

    if "engine.quality" in sys.modules:
        load()
    else:
        threading.Thread(target=load, name="pairforge-load-checks", daemon=True).start()
    return future


class _Fatal(Exception):
    """Stops the whole run: no retry or other job can succeed."""


@dataclass
class _Finished:
    """A job whose pair is built and waits to be checked and stored."""

    job: Job
    host: str
    pair: Pair
    sources: list[Chunk]
    completion_tokens: int


class GenerationQueue:
    """Run queued generation jobs against one or more backends (hosts)."""

    def __init__(
        self,
        store: Store,
        backends: Sequence[ChatBackend],
        *,
        concurrency_per_host: int | None = None,
        max_attempts: int | None = None,
        retry_base_s: float = 0.5,
        retry_max_s: float = 8.0,
        stream_tokens: bool = False,
        store_in_thread: bool = False,
    ) -> None:
        """Prepare a queue; nothing runs until :meth:`run`.

        ``concurrency_per_host`` and ``max_attempts`` default to the project's generation
        settings. ``stream_tokens`` streams answers and emits coalesced token events.
        ``store_in_thread`` moves store writes off the event loop (slower for SQLite's
        sub-millisecond writes, see bench/generate_bench.py).
        """
        if not backends:
            raise ValueError("GenerationQueue needs at least one backend")
        settings = store.settings.generation
        self.store = store
        self.backends = list(backends)
        self.concurrency = concurrency_per_host or settings.concurrency
        self.max_attempts = max_attempts or settings.max_attempts
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.stream_tokens = stream_tokens
        self.store_in_thread = store_in_thread
        self._paused = threading.Event()
        self._stopping = threading.Event()
        self._drop_queued = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._busy: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ control (any thread)

    def pause(self) -> None:
        """Stop claiming new jobs; answers in flight are still stored."""
        self._paused.set()
        self._emit_threadsafe(QueueEvent("paused"))

    def resume(self) -> None:
        """Claim jobs again after :meth:`pause`."""
        self._paused.clear()
        self._emit_threadsafe(QueueEvent("resumed"))

    @property
    def paused(self) -> bool:
        return self._paused.is_set()

    def cancel(self, *, drop_queued: bool = False) -> None:
        """Stop the run now: requests in flight are abandoned and their jobs queued again.

        With ``drop_queued`` the run's remaining jobs are cancelled too; otherwise they
        stay queued for a later run.
        """
        self._drop_queued = self._drop_queued or drop_queued
        self._stopping.set()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._cancel_busy)

    def _cancel_busy(self) -> None:
        for task in list(self._busy):
            task.cancel()

    def _emit_threadsafe(self, event: QueueEvent) -> None:
        loop, on_event = self._loop, self._on_event
        if loop is None or on_event is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(on_event, event)

    # ------------------------------------------------------------------ running

    _on_event: Callable[[QueueEvent], None] | None = None

    async def run(self, run_id: int | None = None, on_event: Callable[[QueueEvent], None] | None = None) -> RunSummary:
        """Work through the queued generation jobs (of ``run_id``, or all) until none is left.

        Returns a RunSummary; expected failures never raise, they end up in the summary.
        """
        self._loop = asyncio.get_running_loop()
        self._on_event = on_event
        self._run_id = run_id
        self._summary = RunSummary(run_id=run_id)
        self._started = time.perf_counter()
        self._down_hosts: set[str] = set()
        self._unreachable: str | None = None
        self.store.requeue_interrupted()
        self._context = GenerationContext.load(self.store)
        self._builders: dict[str, PairBuilder] = {}
        self._checker = _load_quality_checker()
        self._counts = self.store.job_counts(run_id)
        self._to_do = self._counts.get("queued", 0)
        self._claimed: dict[str, deque[Job]] = {(b.host or b.name): deque() for b in self.backends}
        self._claiming: dict[str, asyncio.Lock] = {host: asyncio.Lock() for host in self._claimed}
        self._finished: list[_Finished] = []
        self._commit_handle: asyncio.Handle | None = None
        self._commits: set[asyncio.Task[None]] = set()
        self._emit(QueueEvent("run_started", progress=self._progress()))
        self._tasks = [
            asyncio.create_task(self._worker(backend), name=f"generate-{backend.host or backend.name}-{i}")
            for backend in self.backends
            for i in range(self.concurrency)
        ]
        try:
            await asyncio.gather(*self._tasks)
        except asyncio.CancelledError:
            # The caller's task was cancelled: stop our workers and let their jobs be queued again.
            self.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            raise
        finally:
            await self._drain()
            self._finish()
        return self._summary

    async def _drain(self) -> None:
        """Store every pair still waiting and give claimed, unstarted jobs back to the queue."""
        if self._commit_handle is not None:
            self._commit_handle.cancel()
        self._commit_finished(in_thread=False)
        while self._commits:
            await asyncio.gather(*list(self._commits), return_exceptions=True)
        self._release_claimed()

    def _finish(self) -> None:
        summary = self._summary
        if self._drop_queued and self._run_id is not None:
            self.store.cancel_jobs(self._run_id)
        summary.elapsed_s = time.perf_counter() - self._started
        counts = self.store.job_counts(self._run_id)
        summary.jobs_queued = counts.get("queued", 0)
        if self._stopping.is_set() and summary.stopped_reason is None:
            summary.cancelled = True
        if summary.stopped_reason is None and self._unreachable and summary.jobs_queued:
            summary.stopped_reason = self._unreachable
        self.store.log(
            "generate", "run", summary.pairs_created, summary.message,
            {"run_id": self._run_id, "done": summary.jobs_done, "failed": summary.jobs_failed,
             "queued": summary.jobs_queued},
        )
        self._emit(QueueEvent("stopped" if summary.stopped_reason or summary.cancelled else "run_finished",
                              error=summary.stopped_reason, progress=self._progress()))

    def _emit(self, event: QueueEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)

    def _progress(self) -> QueueProgress:
        elapsed = max(time.perf_counter() - self._started, 1e-6)
        s = self._summary
        finished = s.jobs_done + s.jobs_failed
        remaining = max(self._to_do - finished, 0)
        rate = finished / elapsed
        return QueueProgress(
            counts=dict(self._counts),
            pairs_created=s.pairs_created,
            elapsed_s=elapsed,
            pairs_per_min=s.pairs_created / elapsed * 60,
            tokens_per_s=s.completion_tokens / elapsed,
            eta_s=(remaining / rate) if rate > 0 else None,
        )

    def _move(self, before: str, after: str) -> None:
        self._counts[before] = max(self._counts.get(before, 0) - 1, 0)
        self._counts[after] = self._counts.get(after, 0) + 1

    async def _store_call(self, func: Callable[..., Any], *args: Any) -> Any:
        if self.store_in_thread:
            return await asyncio.to_thread(func, *args)
        return func(*args)

    async def _worker(self, backend: ChatBackend) -> None:
        host = backend.host or backend.name
        while not self._stopping.is_set():
            if self._paused.is_set():
                # Jobs claimed ahead go back to the queue while nothing is being asked.
                self._release_claimed(host)
                await asyncio.sleep(0.05)
                continue
            if host in self._down_hosts:
                return
            job = await self._next_job(host)
            if job is None:
                return
            task = asyncio.current_task()
            assert task is not None
            self._busy.add(task)
            try:
                await self._process(backend, host, job)
            except asyncio.CancelledError:
                if not self._stopping.is_set():
                    raise
                # Abandoned by cancel(): the job goes back to the queue untouched.
                self.store.release_job(job.id or 0)
                self._move("running", "queued")
                return
            finally:
                self._busy.discard(task)

    async def _next_job(self, host: str) -> Job | None:
        """The host's next claimed job; claims a batch (one per worker) when none is left."""
        claimed = self._claimed[host]
        if not claimed:
            async with self._claiming[host]:
                if not claimed and not self._stopping.is_set():
                    jobs = await self._store_call(self._claim, host, self.concurrency)
                    claimed.extend(jobs)
                    self._counts["queued"] = max(self._counts.get("queued", 0) - len(jobs), 0)
                    self._counts["running"] = self._counts.get("running", 0) + len(jobs)
        if claimed:
            return claimed.popleft()
        # The queue is empty: help a slower host with the jobs it claimed ahead.
        for other in self._claimed.values():
            if other:
                return other.pop()
        return None

    def _claim(self, host: str, limit: int) -> list[Job]:
        jobs: list[Job] = []
        with self.store.transaction():  # every claim below joins this one transaction
            while len(jobs) < limit:
                job = self.store.claim_job(host, run_id=self._run_id, task="generate")
                if job is None:
                    break
                jobs.append(job)
        return jobs

    def _release_claimed(self, host: str | None = None) -> None:
        """Put jobs claimed ahead but not started (of ``host``, or all) back in the queue."""
        jobs = [job for h, claimed in self._claimed.items() if host is None or h == host for job in claimed]
        if not jobs:
            return
        for h, claimed in self._claimed.items():
            if host is None or h == host:
                claimed.clear()
        with self.store.transaction():
            for job in jobs:
                self.store.release_job(job.id or 0)
        for _ in jobs:
            self._move("running", "queued")

    def _builder(self, kind: str) -> PairBuilder:
        builder = self._builders.get(kind)
        if builder is None:
            builder = self._builders[kind] = builder_for(self._context, kind)
        return builder

    def _options(self, job: Job, temperature: float) -> ChatOptions:
        settings = self.store.settings.generation
        seed = settings.seed + int(job.params.get("variant", 0)) if settings.seed is not None else None
        return ChatOptions(
            temperature=temperature, num_ctx=settings.num_ctx, num_predict=settings.num_predict, seed=seed,
            keep_alive=settings.keep_alive, timeout_s=settings.timeout_s,
        )

    def _token_sink(self, job: Job, host: str) -> Callable[[str], None] | None:
        if not (self.stream_tokens and self._on_event is not None):
            return None
        buffer: list[str] = []
        last = [0.0]

        def on_token(piece: str) -> None:
            buffer.append(piece)
            now = time.monotonic()
            if now - last[0] >= TOKEN_EVENT_INTERVAL_S:
                last[0] = now
                self._emit(QueueEvent("token", job_id=job.id, host=host, text="".join(buffer)))
                buffer.clear()

        return on_token

    async def _process(self, backend: ChatBackend, host: str, job: Job) -> None:
        job_id = job.id or 0
        self._emit(QueueEvent("job_started", job_id=job_id, host=host))
        try:
            builder = self._builder(str(job.kind))
            request = builder.prepare(job)
            sources = self._context.chunks_of(job)
        except PairForgeError as exc:
            await self._fail(job_id, host, str(exc))
            return
        options = self._options(job, request.temperature)
        last_error = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                result = await backend.chat(request.messages, request.schema, options, self._token_sink(job, host))
                pair = self._build(builder, job, request.output_model, result)
            except (InvalidModelOutputError, BackendError) as exc:
                if not exc.retryable:
                    self.store.release_job(job_id)
                    self._move("running", "queued")
                    self._stop_run(str(exc))
                    return
                last_error = str(exc)
                self._summary.errors[type(exc).__name__] = self._summary.errors.get(type(exc).__name__, 0) + 1
                if attempt < self.max_attempts:
                    self._emit(QueueEvent("job_retry", job_id=job_id, host=host, error=last_error))
                    if not isinstance(exc, InvalidModelOutputError):
                        await asyncio.sleep(min(self.retry_max_s, self.retry_base_s * 2 ** (attempt - 1)))
                    continue
                if isinstance(exc, BackendUnreachableError):
                    # The host is down, not the job: give the job back and stop using this host.
                    self.store.release_job(job_id)
                    self._move("running", "queued")
                    self._host_down(host, last_error)
                    return
                await self._fail(job_id, host, f"{last_error} (gave up after {self.max_attempts} attempts)")
                return
            except PairForgeError as exc:
                await self._fail(job_id, host, str(exc))
                return
            break
        # Checked and stored a moment later, with any other job finishing meanwhile, while
        # this worker already sends its next request.
        self._finished.append(_Finished(job, host, pair, sources, result.completion_tokens or 0))
        if self._commit_handle is None:
            self._commit_handle = asyncio.get_running_loop().call_later(COMMIT_DELAY_S, self._commit_finished)

    def _commit_finished(self, *, in_thread: bool | None = None) -> None:
        """Check and store the waiting pairs, in batches of at most COMMIT_BATCH_MAX."""
        self._commit_handle = None
        in_thread = self.store_in_thread if in_thread is None else in_thread
        while self._finished:
            batch, self._finished = self._finished[:COMMIT_BATCH_MAX], self._finished[COMMIT_BATCH_MAX:]
            checker = self._checker.result()
            if checker is not None:
                quality = self.store.settings.quality
                for item in batch:
                    item.pair.warnings = list(checker(item.pair, item.sources, quality))
            if in_thread:
                task = asyncio.get_running_loop().create_task(self._store_batch_in_thread(batch))
                self._commits.add(task)
                task.add_done_callback(self._commits.discard)
                continue
            try:
                stored = self._store_batch(batch)
            except PairForgeError as exc:
                self._batch_not_stored(batch, exc)
                continue
            self._record(batch, stored)

    async def _store_batch_in_thread(self, batch: list[_Finished]) -> None:
        try:
            stored = await asyncio.to_thread(self._store_batch, batch)
        except PairForgeError as exc:
            self._batch_not_stored(batch, exc)
            return
        self._record(batch, stored)

    def _store_batch(self, batch: list[_Finished]) -> list[list[Pair]]:
        # One transaction: each pair commits with its job's done state, and all of them at once.
        with self.store.transaction():
            return [self.store.complete_job(item.job.id or 0, [item.pair]) for item in batch]

    def _batch_not_stored(self, batch: list[_Finished], exc: PairForgeError) -> None:
        # The store refused the write (disk full, locked file): nothing can be saved, so stop.
        with contextlib.suppress(PairForgeError), self.store.transaction():
            for item in batch:
                self.store.release_job(item.job.id or 0)
        for _ in batch:
            self._move("running", "queued")
        if self._summary.stopped_reason is None:
            self._summary.stopped_reason = self._summary.last_error = str(exc)
        self._stopping.set()
        self._cancel_busy()

    def _record(self, batch: list[_Finished], stored: list[list[Pair]]) -> None:
        summary = self._summary
        for item, added in zip(batch, stored, strict=True):
            if not added:
                continue  # cancelled meanwhile: nothing stored, nothing counted
            job_id = item.job.id
            self._move("running", "done")
            summary.jobs_done += 1
            summary.pairs_created += len(added)
            summary.completion_tokens += item.completion_tokens
            for pair in added:
                self._emit(QueueEvent("pair_created", job_id=job_id, host=item.host, pair=pair))
            self._emit(QueueEvent("job_done", job_id=job_id, host=item.host, progress=self._progress()))

    @staticmethod
    def _build(builder: PairBuilder, job: Job, output_model: Any, result: ChatResult) -> Pair:
        if result.truncated:
            raise InvalidModelOutputError(
                "The model's answer was cut off at its token limit: raise generation.num_predict "
                "or ask for shorter answers."
            )
        output = parse_structured(result.content, output_model, done_reason=result.done_reason)
        return builder.build(job, output, result)

    async def _fail(self, job_id: int, host: str, error: str) -> None:
        await self._store_call(lambda: self.store.fail_job(job_id, error, retry=False))
        self._move("running", "failed")
        self._summary.jobs_failed += 1
        self._summary.last_error = error
        self._emit(QueueEvent("job_failed", job_id=job_id, host=host, error=error, progress=self._progress()))

    def _stop_run(self, reason: str) -> None:
        if self._summary.stopped_reason is None:
            self._summary.stopped_reason = reason
            self._summary.last_error = reason
        self._stopping.set()
        self._cancel_busy_except_current()

    def _cancel_busy_except_current(self) -> None:
        current = asyncio.current_task()
        for task in list(self._busy):
            if task is not current:
                task.cancel()

    def _host_down(self, host: str, error: str) -> None:
        self._down_hosts.add(host)
        self._release_claimed(host)
        self._unreachable = error
        self._summary.last_error = error
        if all((b.host or b.name) in self._down_hosts for b in self.backends):
            self._summary.stopped_reason = error
            self._stopping.set()


__all__ = ["GenerationQueue", "QueueEvent", "QueueProgress", "RunSummary"]
