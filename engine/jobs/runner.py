"""One job runner for every long-running kind (generate, judge, repair, eval), the work passed in.

Each backend (one per host) gets as many async workers as its concurrency limit allows:
a fixed number, or ``"auto"``, found per host while the run goes
(:mod:`engine.jobs.concurrency`) and remembered in the project. A worker takes a job, lets the handler prepare it and try it against its host, then goes straight on to
its next job while the finished one waits a moment to be stored: jobs finishing close
together are stored in one transaction, each with its done state, so a crash loses or
doubles nothing. Jobs are claimed for a host several at a time (one transaction hands
every idle worker its next job).

Every job the run holds carries a lease that the run renews while it works; a job whose
lease ran out, or whose process is known to be gone, is queued again by the next run
(:meth:`engine.store.Store.requeue_interrupted`), whatever pid it recorded.

Malformed or truncated answers are asked for again at once (the server is healthy, only
that answer was bad, so waiting would just leave a slot idle); transient server errors
are retried with exponential backoff. Both stop at ``RetryPolicy.max_attempts``; a job
that still fails keeps its reason. A host that stays unreachable is dropped and its jobs
go back to the queue. An error no retry can fix (the model is not pulled) stops the run
with that one sentence, leaving the remaining jobs queued.

Control calls (:meth:`JobRunner.pause`, :meth:`JobRunner.resume`,
:meth:`JobRunner.cancel`) may come from any thread; they are carried out on the run's
event loop, where every other step runs, so the run's state has one owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import (
    BackendError,
    BackendServerError,
    BackendTimeoutError,
    BackendUnreachableError,
    InvalidModelOutputError,
    PairForgeError,
)
from engine.jobs.concurrency import (
    AUTO,
    AUTO_CEILING,
    AutoConcurrency,
    ConcurrencySetting,
    FixedConcurrency,
    make_limit,
    remember_concurrency,
    remembered_concurrency,
)
from engine.jobs.events import JobEvent, JobFailure, JobProgress, JobSummary
from engine.jobs.handler import Finished, JobHandler, JobResult, TokenSink
from engine.models import Job
from engine.store import JOB_LEASE_S

if TYPE_CHECKING:
    from engine.generate.backends import ChatBackend, ChatOptions, ChatResult, TokenCallback
    from engine.store import Store

# Streamed text is handed on at most this often per job, so a UI is never flooded.
TOKEN_EVENT_INTERVAL_S = 0.05

# At most this many finished jobs share one store transaction.
COMMIT_BATCH_MAX = 64

# A finished job is stored this long after its answer arrived: by then its worker's next
# request is on the wire, and jobs finishing meanwhile share the transaction.
COMMIT_DELAY_S = 0.005

EventCallback = Callable[[JobEvent], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How often a job is tried and how long a worker waits between tries."""

    max_attempts: int = 4
    backoff_s: float = 0.5
    backoff_max_s: float = 8.0

    def delay_s(self, attempt: int, error: BackendError) -> float:
        """Seconds to wait after failed try number ``attempt``: none after a bad answer, doubling after a server error."""
        if isinstance(error, InvalidModelOutputError):
            return 0.0
        return min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))


class JobRunner:
    """Run the queued jobs of one kind (``handler.task``) against one or more backends (hosts)."""

    def __init__(
        self,
        store: Store,
        backends: Sequence[ChatBackend],
        handler: JobHandler[Any, Any],
        *,
        concurrency_per_host: int | str = 2,
        retry: RetryPolicy | None = None,
        stream_tokens: bool = False,
        check_backends: bool = False,
        lease_s: float = JOB_LEASE_S,
    ) -> None:
        """Prepare a runner; nothing runs until :meth:`run`.

        ``concurrency_per_host`` is the number of requests each host gets at once, or
        ``"auto"``: found per host from the value the project remembers (else a small
        start), never above an embedded backend's ``slots``, and remembered again.

        ``stream_tokens`` streams answers and emits coalesced token events.
        ``check_backends`` asks every host first whether it serves the model: a host that
        does not is skipped when there are others, else the run stops with its error.
        ``lease_s`` is how long a claimed job stays this run's without renewal; the run
        renews its jobs' leases every third of it.
        """
        if not backends:
            raise ValueError("A job run needs at least one backend.")
        self.store = store
        self.backends = list(backends)
        self.handler = handler
        if isinstance(concurrency_per_host, str) and concurrency_per_host != AUTO:
            raise ValueError(f"Concurrency {concurrency_per_host!r} is neither a number nor {AUTO!r}.")
        self.concurrency: ConcurrencySetting = (
            "auto" if concurrency_per_host == AUTO else max(1, int(concurrency_per_host))
        )
        self.retry = retry or RetryPolicy()
        self.stream_tokens = stream_tokens
        self.check_backends = check_backends
        self.lease_s = lease_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._resume = asyncio.Event()
        self._resume.set()
        self._stopping = False
        self._cancelled = False
        self._drop_queued = False
        self._on_event: EventCallback | None = None
        self._busy: set[asyncio.Task[None]] = set()
        self._claimed: dict[str, deque[Job]] = {}
        self._limits: dict[str, FixedConcurrency | AutoConcurrency] = {}
        self._workers: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._remembered: dict[str, int | None] = {}

    def limit_of(self, host: str) -> int | None:
        """Requests the run keeps in flight on ``host`` now (None for a host it does not use)."""
        limit = self._limits.get(host)
        return limit.limit if limit is not None else None

    # ------------------------------------------------------------------ control (any thread)

    @property
    def paused(self) -> bool:
        """True while the run is paused."""
        return not self._resume.is_set()

    def pause(self) -> None:
        """Stop taking new jobs; jobs in flight finish and are stored, nothing else stays claimed."""
        self._on_loop(self._pause_now)

    def resume(self) -> None:
        """Take jobs again after :meth:`pause`."""
        self._on_loop(self._resume_now)

    def cancel(self, *, drop_queued: bool = False) -> None:
        """Stop now: requests in flight are abandoned and their jobs queued again.

        With ``drop_queued`` the run's remaining jobs are cancelled too; otherwise they
        stay queued for a later run.
        """
        self._drop_queued = self._drop_queued or drop_queued
        self._on_loop(self._cancel_now)

    def _on_loop(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the run's event loop (now, when called there or before a run)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            action()
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            action()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the run is over
                loop.call_soon_threadsafe(action)

    def _pause_now(self) -> None:
        if not self.paused and not self._stopping:
            self._resume.clear()
            # Jobs claimed ahead go back to the queue while nothing is being asked.
            self._release_claimed()
            for limit in self._limits.values():
                limit.interrupt()  # a pause is no measure of the host
            self._emit("paused")

    def _resume_now(self) -> None:
        if self.paused:
            self._resume.set()
            for limit in self._limits.values():
                limit.interrupt()
            self._emit("resumed")

    def _cancel_now(self) -> None:
        self._cancelled = self._stopping = True
        self._resume.set()  # paused workers wake up to see the stop
        self._release_claimed()
        self._cancel_busy()

    def _cancel_busy(self, *, but: asyncio.Task[Any] | None = None) -> None:
        for task in list(self._busy):
            if task is not but:
                task.cancel()

    # ------------------------------------------------------------------ running

    async def run(self, run_id: int | None = None, on_event: EventCallback | None = None) -> JobSummary:
        """Work through the queued jobs of the handler's task (of ``run_id``, or of every run) until none is left.

        Returns a JobSummary; expected failures never raise, they end up in the summary
        (see :meth:`JobSummary.raise_for_stop`).
        """
        self._loop = asyncio.get_running_loop()
        self._on_event = on_event
        # Bound to this run's loop: a runner may be run again under another loop.
        self._resume = asyncio.Event()
        self._resume.set()
        self._stopping = self._cancelled = False
        self._crash: BaseException | None = None
        self._run_id = run_id
        self._started = time.perf_counter()
        task = self.handler.task
        self._summary = JobSummary(task=task, run_id=run_id)
        self._down: set[str] = set()
        self._unreachable: BackendError | None = None
        self._in_flight = 0
        self._held: set[int] = set()
        self._finished: list[Finished[Any, Any]] = []
        self._commit_handle: asyncio.TimerHandle | None = None
        self.store.requeue_interrupted()
        self._counts = self.store.job_counts(run_id, task=task)
        self._to_do = self._counts.get("queued", 0)
        self._run_ids = {
            int(r["id"]) for r in self.store.list_runs()
            if r["task"] == task and (r["queued"] or 0) > 0 and run_id in (None, r["id"])
        } | ({run_id} if run_id is not None else set())
        self._summary.run_ids = sorted(self._run_ids)
        backends = self.backends
        self._emit("started")
        if self._to_do and self.check_backends:
            backends = await self._usable_backends()
        self._claimed = {self._host(b): deque() for b in backends}
        self._limits = {self._host(b): self._limit_for(b) for b in backends}
        self._workers = dict.fromkeys(self._limits, 0)
        self._tasks = set()
        self._dry: set[str] = set()
        renewal: asyncio.Task[None] | None = None
        try:
            if self._to_do and backends:
                self.handler.start()
                renewal = asyncio.create_task(self._renew_leases(), name=f"{task}-leases")
                for backend in backends:
                    self._spawn_workers(backend)
                # Workers come and go with each host's limit: wait until none is left.
                while pending := {t for t in self._tasks if not t.done()}:
                    await asyncio.wait(pending)
        except asyncio.CancelledError:
            # The caller's task was cancelled: stop the workers and let their jobs be queued again.
            self._cancel_now()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            raise
        finally:
            if renewal is not None:
                renewal.cancel()
            self._drain()
            self._remember_limits()
            self._finish()
        if self._crash is not None:
            raise self._crash
        return self._summary

    @staticmethod
    def _host(backend: ChatBackend) -> str:
        return backend.host or backend.name

    def _limit_for(self, backend: ChatBackend) -> FixedConcurrency | AutoConcurrency:
        """The host's limit: the number given, or auto from what the project remembers for it."""
        host = self._host(backend)
        # An embedded server decodes at most its slots at once: more would only wait in it.
        slots = getattr(backend, "slots", None)
        ceiling = slots if isinstance(slots, int) and slots > 0 else AUTO_CEILING
        remembered = remembered_concurrency(self.store, host) if self.concurrency == AUTO else None
        self._remembered[host] = remembered
        return make_limit(self.concurrency, remembered=remembered, ceiling=ceiling)

    def _spawn_workers(self, backend: ChatBackend) -> None:
        """Start workers on ``backend``'s host until as many run as its limit allows."""
        host = self._host(backend)
        # A host whose worker found the queue empty gets no new ones: they would only find it empty too.
        while self._workers[host] < self._limits[host].limit and not self._stopping and host not in self._dry:
            self._workers[host] += 1
            worker = asyncio.create_task(self._worker(backend), name=f"{self.handler.task}-{host}-{self._workers[host]}")
            self._tasks.add(worker)

    def _remember_limits(self) -> None:
        """Keep the concurrency found for each auto host in the project, when it changed."""
        for host, limit in self._limits.items():
            found = limit.found
            if found is not None and found != self._remembered.get(host):
                with contextlib.suppress(PairForgeError):  # a busy file: the next run finds it again
                    remember_concurrency(self.store, host, found)
                    self._remembered[host] = found

    async def _usable_backends(self) -> list[ChatBackend]:
        """The backends whose server answers and has the model; the run stops with the first error if none does."""
        usable: list[ChatBackend] = []
        first_error: BackendError | None = None
        for backend in self.backends:
            try:
                await backend.check()
            except BackendError as exc:
                first_error = first_error or exc
                if len(self.backends) > 1:
                    # With one host the stop says it all; with several the run goes on without this one.
                    self._emit("host_down", host=self._host(backend), error=str(exc))
                continue
            usable.append(backend)
        if not usable and first_error is not None:
            self._stop(first_error)
        return usable

    async def _renew_leases(self) -> None:
        """Renew the lease of every job this run holds, a few times per lease, until the run ends."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            if self._held:
                with contextlib.suppress(PairForgeError):  # a busy file: the next renewal comes well before expiry
                    self.store.renew_leases(sorted(self._held), self.lease_s)

    def _drain(self) -> None:
        """Store every finished job still waiting and give claimed, unstarted jobs back to the queue."""
        if self._commit_handle is not None:
            self._commit_handle.cancel()
        self._commit_finished()
        self._release_claimed()

    def _finish(self) -> None:
        summary = self._summary
        if self._drop_queued:
            for run_id in sorted(self._run_ids):
                self.store.cancel_jobs(run_id)
        summary.elapsed_s = time.perf_counter() - self._started
        summary.queued = self.store.job_counts(self._run_id, task=self.handler.task).get("queued", 0)
        summary.cancelled = self._cancelled and summary.stopped_reason is None
        if summary.stopped_reason is None and self._unreachable is not None and summary.queued:
            # Some host went down and jobs are left: say so, the run did not finish.
            summary.stopped_reason = str(self._unreachable)
            summary.error = self._unreachable
        summary.message = self.handler.describe(summary)
        self.handler.finished(summary)
        kind = "stopped" if summary.stopped_reason else "cancelled" if summary.cancelled else "finished"
        self._emit(kind, error=summary.stopped_reason)

    def _emit(self, kind: str, **fields: Any) -> None:
        if self._on_event is not None:
            self._on_event(JobEvent(kind, self._progress(), **fields))

    def _progress(self) -> JobProgress:
        elapsed = max(time.perf_counter() - self._started, 1e-6)
        s = self._summary
        finished = s.done + s.failed
        rate = finished / elapsed
        return JobProgress(
            counts=dict(self._counts),
            total=self._to_do,
            done=s.done,
            failed=s.failed,
            in_flight=self._in_flight,
            pairs=s.pairs,
            elapsed_s=elapsed,
            pairs_per_min=s.pairs / elapsed * 60,
            tokens_per_s=s.completion_tokens / elapsed,
            eta_s=(max(self._to_do - finished, 0) / rate) if rate > 0 else None,
        )

    def _move(self, before: str, after: str, n: int = 1) -> None:
        self._counts[before] = max(self._counts.get(before, 0) - n, 0)
        self._counts[after] = self._counts.get(after, 0) + n

    async def _worker(self, backend: ChatBackend) -> None:
        host = self._host(backend)
        try:
            await self._work(backend, host)
        finally:
            self._workers[host] -= 1

    async def _work(self, backend: ChatBackend, host: str) -> None:
        limit = self._limits[host]
        while not self._stopping:
            if self.paused:
                await self._resume.wait()
                continue
            if host in self._down:
                return
            if self._workers[host] > limit.limit:
                return  # the host's limit went down: one worker fewer
            self._spawn_workers(backend)  # or up: more workers
            job = self._next_job(host)
            if job is None:
                self._dry.add(host)
                limit.interrupt()  # the queue ran dry: the tail of a run is no measure of the host
                return
            task = asyncio.current_task()
            assert task is not None
            self._busy.add(task)
            self._in_flight += 1
            try:
                await self._process(backend, host, job)
            except asyncio.CancelledError:
                # Abandoned (cancel, a stop, or the caller's task cancelled): the job goes back untouched.
                self._release([job])
                if not self._stopping:
                    raise
                return
            except BaseException as exc:
                # A bug, not an expected failure: stop everything and let run() raise it.
                self._release([job])
                self._crash = self._crash or exc
                self._stopping = True
                self._cancel_busy(but=task)
                return
            finally:
                self._in_flight -= 1
                self._busy.discard(task)

    def _next_job(self, host: str) -> Job | None:
        """The host's next claimed job; claims a batch (one per worker) when none is left."""
        claimed = self._claimed[host]
        if not claimed and not self._stopping:
            jobs = self._claim(host, self._limits[host].limit)
            claimed.extend(jobs)
            self._move("queued", "running", len(jobs))
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
                job = self.store.claim_job(
                    host, run_id=self._run_id, task=self.handler.task, lease_s=self.lease_s
                )
                if job is None:
                    break
                jobs.append(job)
        for job in jobs:
            self._held.add(job.id or 0)
            if job.run_id is not None:
                self._run_ids.add(job.run_id)
        return jobs

    def _release(self, jobs: Sequence[Job]) -> None:
        """Put running jobs back in the queue untouched, in one transaction."""
        if not jobs:
            return
        with contextlib.suppress(PairForgeError), self.store.transaction():
            for job in jobs:
                self.store.release_job(job.id or 0)
        for job in jobs:
            self._held.discard(job.id or 0)
        self._move("running", "queued", len(jobs))

    def _release_claimed(self, host: str | None = None) -> None:
        """Put jobs claimed ahead but not started (of ``host``, or all) back in the queue."""
        jobs: list[Job] = []
        for h, claimed in self._claimed.items():
            if host is None or h == host:
                jobs.extend(claimed)
                claimed.clear()
        self._release(jobs)

    def _token_sink(self, job: Job, host: str) -> TokenSink | None:
        if not (self.stream_tokens and self._on_event is not None):
            return None
        buffer: list[str] = []
        last = [0.0]

        def on_token(piece: str) -> None:
            buffer.append(piece)
            now = time.monotonic()
            if now - last[0] >= TOKEN_EVENT_INTERVAL_S:
                last[0] = now
                self._emit("token", job_id=job.id, host=host, text="".join(buffer))
                buffer.clear()

        return on_token

    async def _process(self, backend: ChatBackend, host: str, job: Job) -> None:
        self._emit("job_started", job_id=job.id, host=host, pair_id=job.pair_id)
        try:
            work = self.handler.prepare(job)
        except PairForgeError as exc:
            self._fail(job, host, str(exc), str(exc))
            return
        attempts = self.retry.max_attempts
        limit = self._limits[host]
        for attempt in range(1, attempts + 1):
            try:
                answer = await self._attempt(limit, work, backend, attempt, self._token_sink(job, host))
            except BackendError as exc:
                if not exc.retryable:
                    self._release([job])
                    self._stop(exc)
                    return
                name = type(exc).__name__
                self._summary.errors[name] = self._summary.errors.get(name, 0) + 1
                if attempt < attempts:
                    self._emit("retry", job_id=job.id, host=host, pair_id=job.pair_id, error=str(exc))
                    delay = self.retry.delay_s(attempt, exc)
                    if delay > 0:
                        await asyncio.sleep(delay)
                    continue
                if isinstance(exc, BackendUnreachableError):
                    # The host is down, not the job: give the job back and stop using this host.
                    self._release([job])
                    self._host_down(host, exc)
                    return
                self._fail(job, host, self.handler.failure_reason(str(exc), attempts), str(exc))
                return
            except PairForgeError as exc:
                self._fail(job, host, str(exc), str(exc))
                return
            self._finished.append(Finished(job, host, work, answer))
            if self._commit_handle is None:
                self._commit_handle = asyncio.get_running_loop().call_later(COMMIT_DELAY_S, self._commit_finished)
            return

    async def _attempt(
        self, limit: FixedConcurrency | AutoConcurrency, work: Any, backend: ChatBackend, attempt: int,
        on_token: TokenSink | None,
    ) -> Any:
        """One try of the handler; every request it sends is reported to the host's limit (see :class:`MeteredBackend`)."""
        before = limit.limit
        try:
            return await self.handler.attempt(work, MeteredBackend(backend, limit), attempt, on_token)
        finally:
            if limit.limit != before:
                self._emit("concurrency", host=self._host(backend), concurrency=limit.limit)

    def _commit_finished(self) -> None:
        """Store the waiting jobs, in batches of at most COMMIT_BATCH_MAX."""
        self._commit_handle = None
        while self._finished:
            batch, self._finished = self._finished[:COMMIT_BATCH_MAX], self._finished[COMMIT_BATCH_MAX:]
            try:
                results = self.handler.commit(batch)
            except PairForgeError as exc:
                # The store refused the write (disk full, locked file): nothing can be saved, so stop.
                self._release([item.job for item in batch])
                self._stop(exc)
                continue
            except Exception as exc:
                self._release([item.job for item in batch])
                self._crash = self._crash or exc
                self._stopping = True
                self._cancel_busy()
                continue
            self._record(batch, results)

    def _record(self, batch: Sequence[Finished[Any, Any]], results: Sequence[JobResult | None]) -> None:
        summary = self._summary
        for item, result in zip(batch, results, strict=True):
            self._held.discard(item.job.id or 0)
            if result is None:
                continue  # cancelled meanwhile: nothing stored, nothing counted
            self._move("running", "done")
            summary.done += 1
            summary.pairs += result.count
            summary.completion_tokens += item.answer.completion_tokens
            self._emit(
                "job_done", job_id=item.job.id, host=item.host, pair_id=result.pair_id or item.job.pair_id,
                pairs=result.pairs, score=result.score,
            )

    def _fail(self, job: Job, host: str, reason: str, error: str) -> None:
        try:
            self.handler.fail(job, reason)
        except PairForgeError as exc:
            self._release([job])
            self._stop(exc)
            return
        self._held.discard(job.id or 0)
        self._move("running", "failed")
        summary = self._summary
        summary.failed += 1
        summary.last_error = reason
        summary.failures.append(JobFailure(job.id or 0, job.pair_id, error))
        self._emit("job_failed", job_id=job.id, host=host, pair_id=job.pair_id, error=reason)
        stop = self.handler.give_up(summary, error)
        if stop is not None:
            self._stop(stop)

    def _stop(self, error: PairForgeError) -> None:
        """End the run with ``error``: no retry or other job can succeed."""
        summary = self._summary
        if summary.stopped_reason is None:
            summary.stopped_reason = summary.last_error = str(error)
            summary.error = error
        self._stopping = True
        self._resume.set()
        self._release_claimed()
        current = asyncio.current_task() if self._loop is not None and self._loop.is_running() else None
        self._cancel_busy(but=current)

    def _host_down(self, host: str, error: BackendUnreachableError) -> None:
        self._down.add(host)
        self._release_claimed(host)
        self._unreachable = error
        self._summary.last_error = str(error)
        self._emit("host_down", host=host, error=str(error))
        if all(h in self._down for h in self._claimed):
            self._stop(error)


class MeteredBackend:
    """A backend as a handler's attempt sees it: each request it sends is reported to the host's limit.

    The limit measures requests, not jobs: a job may ask more than once (a refusal whose
    proposed topics were all rejected asks again), and counted as one request it would look
    twice as slow, swinging each window's throughput by how many such jobs it held.
    Everything but :meth:`chat` is the backend's own.
    """

    def __init__(self, backend: ChatBackend, limit: FixedConcurrency | AutoConcurrency) -> None:
        self._backend = backend
        self._limit = limit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    async def chat(
        self,
        messages: list[dict[str, str]],
        schema: dict[str, Any] | None,
        options: ChatOptions,
        on_token: TokenCallback | None = None,
    ) -> ChatResult:
        """The backend's answer, its latency (or how it failed) reported to the limit."""
        token = self._limit.started()
        started = time.perf_counter()
        try:
            result = await self._backend.chat(messages, schema, options, on_token)
        except InvalidModelOutputError:
            # A bad answer used a slot as long as a good one: it counts for the host's throughput.
            self._limit.answered(token, time.perf_counter() - started)
            raise
        except BaseException as exc:
            self._limit.failed(token, overloaded=isinstance(exc, (BackendTimeoutError, BackendServerError)))
            raise
        self._limit.answered(token, time.perf_counter() - started)
        return result


__all__ = ["COMMIT_BATCH_MAX", "EventCallback", "JobRunner", "MeteredBackend", "RetryPolicy"]
