"""Judge runs: plan one job per pair that needs a verdict, then work through them concurrently.

Judge jobs live in the same persistent ``jobs`` table as generation jobs (``task = "judge"``,
``pair_id`` set), so a run survives a crash: jobs left running are queued again on the next
start and the run resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.errors import (
    BackendError,
    BackendUnreachableError,
    InvalidModelOutputError,
    NotFoundError,
)
from engine.generate.backends import ChatBackend, ChatOptions, parse_structured, schema_for
from engine.judge.prompts import build_judge_messages
from engine.judge.rubric import RUBRIC, Rubric, compute_total, criteria_for, verdict_model_for
from engine.judge.scoring import JUDGE_WARNING, judge_warning
from engine.models import Job, Pair, PairKind, Verdict
from engine.store import Store

__all__ = ["JUDGE_TASK", "JudgeEvent", "JudgeRunner", "JudgeSummary", "plan_judging"]

JUDGE_TASK = "judge"
# A run stops when this many pairs in a row fail before any verdict succeeds.
GIVE_UP_AFTER = 5


def plan_judging(
    store: Store,
    *,
    only_changed: bool = True,
    rubric: Rubric = RUBRIC,
    params: dict[str, Any] | None = None,
) -> int | None:
    """Queue a judge run with one job per pair that needs a verdict; returns its run id, or None if none do.

    With ``only_changed`` (the default) only pairs that are new, whose content changed since
    their verdict, or whose verdict used another rubric version are planned; otherwise every
    pair is. Pairs already queued for judging are never planned twice.
    """
    candidates = store.judge_candidates(rubric_version=rubric.version, only_changed=only_changed)
    if not candidates:
        return None
    jobs = [
        Job(task=JUDGE_TASK, pair_id=pair_id, kind=PairKind(kind), mode=mode) for pair_id, kind, mode in candidates
    ]
    run_params = {"rubric_version": rubric.version, "only_changed": only_changed, **(params or {})}
    run_id, count = store.create_run(JUDGE_TASK, run_params, jobs)
    store.log(
        "judge",
        "planned",
        count,
        f"queued {count} pair(s) for judging ({'new or edited only' if only_changed else 'all pairs'})",
        {"run_id": run_id, **run_params},
    )
    return run_id


@dataclass(frozen=True)
class JudgeEvent:
    """Progress of a judge run, sent after every change a front end may show.

    ``kind`` is one of: started, verdict, retry, failed, host_down, paused, resumed,
    finished, cancelled.
    """

    kind: str
    done: int
    failed: int
    total: int
    in_flight: int
    pairs_per_min: float
    eta_s: float | None
    pair_id: int | None = None
    score: float | None = None
    host: str | None = None
    message: str = ""


@dataclass
class JudgeSummary:
    """What a judge run did."""

    run_ids: list[int]
    judged: int = 0
    failed: int = 0
    remaining: int = 0  # jobs still queued (paused, interrupted, or a host went down)
    cancelled: bool = False
    elapsed_s: float = 0.0
    failures: list[tuple[int, str]] = field(default_factory=list)  # (pair id, reason)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {
            "run_ids": self.run_ids,
            "judged": self.judged,
            "failed": self.failed,
            "remaining": self.remaining,
            "cancelled": self.cancelled,
            "elapsed_s": round(self.elapsed_s, 3),
            "failures": [{"pair_id": p, "error": e} for p, e in self.failures],
        }


EventCallback = Callable[[JudgeEvent], None]


class _HostDown(Exception):
    """A host stayed unreachable through every attempt; its workers stop."""

    def __init__(self, error: BackendError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Prepared:
    """A claimed job with its pair loaded and its prompt built (``pair`` None: the pair was deleted)."""

    job: Job
    pair: Pair | None = None
    messages: list[dict[str, str]] = field(default_factory=list)


class JudgeRunner:
    """Works through queued judge jobs with ``concurrency_per_host`` requests in flight per backend.

    Each job: load the pair and its sources, ask the judge with the verdict schema, validate
    the answer, recompute the total, then store the verdict, score and warning and mark the
    job done in one transaction. A truncated, non-JSON or off-schema answer, or a transient
    server error, is retried with backoff up to ``max_attempts``; after that the job fails
    with the reason kept and the pair keeps no score. A non-retryable error (model not
    pulled, no structured output) stops the run, leaves the jobs queued and is raised.
    """

    def __init__(
        self,
        store: Store,
        backends: Sequence[ChatBackend],
        *,
        options: ChatOptions | None = None,
        concurrency_per_host: int = 2,
        max_attempts: int = 4,
        threshold: float = 7.0,
        rubric: Rubric = RUBRIC,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        check_backends: bool = True,
    ) -> None:
        if not backends:
            raise ValueError("A judge run needs at least one backend.")
        self.store = store
        self.backends = list(backends)
        self.options = options or ChatOptions(temperature=0.1)
        self.concurrency_per_host = max(1, concurrency_per_host)
        self.max_attempts = max(1, max_attempts)
        self.threshold = threshold
        self.rubric = rubric
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.check_backends = check_backends
        self._resume = asyncio.Event()
        self._resume.set()
        self._cancelled = False
        self._drop_queued = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._fatal: BackendError | None = None
        self._on_event: EventCallback | None = None
        self._titles: list[str] | None = None
        self._reset_counters()

    def _reset_counters(self) -> None:
        self._done = self._failed = self._total = self._in_flight = 0
        # Jobs claimed ahead, so a worker that frees up sends its next request at once
        # instead of waiting on the store; at most one per worker.
        self._ready: deque[_Prepared] = deque()
        self._prefetches: set[asyncio.Task[None]] = set()
        # Verdict writes run beside the next request, so a host never waits on the store.
        self._writes: set[asyncio.Task[None]] = set()
        self._write_error: BaseException | None = None
        self._exhausted = False
        self._ready_limit = 1
        self._started = time.monotonic()
        self._failures: list[tuple[int, str]] = []
        self._run_ids: set[int] = set()

    # ------------------------------------------------------------------ control (any thread)

    @property
    def paused(self) -> bool:
        """True while the run is paused."""
        return not self._resume.is_set()

    def _on_loop(self, action: Callable[[], None]) -> None:
        """Run ``action`` on the run's event loop: control calls may come from a UI thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            action()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            action()
        else:
            loop.call_soon_threadsafe(action)

    def pause(self) -> None:
        """Stop taking new jobs; requests in flight finish and are saved, nothing else stays claimed."""
        self._on_loop(self._pause_now)

    def resume(self) -> None:
        """Take jobs again after :meth:`pause`."""
        self._on_loop(self._resume_now)

    def cancel(self, *, drop_queued: bool = False) -> None:
        """Stop now: requests in flight are abandoned and their jobs queued again.

        With ``drop_queued`` every remaining job of the run is cancelled too; otherwise they
        stay queued for a later run (the same contract as GenerationQueue.cancel).
        """
        self._drop_queued = self._drop_queued or drop_queued
        self._on_loop(self._cancel_now)

    def _pause_now(self) -> None:
        if not self.paused:
            self._resume.clear()
            self._release_ready()
            self._emit("paused")

    def _resume_now(self) -> None:
        if self.paused:
            self._resume.set()
            self._emit("resumed")

    def _cancel_now(self) -> None:
        self._cancelled = True
        self._resume.set()
        self._release_ready()
        for task in getattr(self, "_tasks", []):
            task.cancel()

    # ------------------------------------------------------------------ running

    async def run(self, run_id: int | None = None, on_event: EventCallback | None = None) -> JudgeSummary:
        """Judge every queued judge job (of ``run_id``, or of every judge run); returns a summary.

        Raises the backend's :class:`~engine.errors.BackendError` when no host can serve the
        model, or when an error that retrying cannot fix stops the run (jobs stay queued).
        """
        self._on_event = on_event
        self._reset_counters()
        self._loop = asyncio.get_running_loop()
        # Bound to this run's loop: a runner may be run again under another loop.
        self._resume = asyncio.Event()
        self._resume.set()
        self._cancelled = self._stopping = False
        self._fatal = None
        await asyncio.to_thread(self.store.requeue_interrupted)
        runs = [
            r for r in await asyncio.to_thread(self.store.list_runs)
            if r["task"] == JUDGE_TASK and (run_id is None or r["id"] == run_id)
        ]
        self._run_ids = {r["id"] for r in runs if (r["queued"] or 0) > 0}
        if run_id is not None:
            self._run_ids.add(run_id)
        self._total = sum(int(r["queued"] or 0) for r in runs)
        summary = JudgeSummary(run_ids=sorted(self._run_ids))
        if self._total == 0:
            self._emit("finished")
            return summary
        backends = await self._usable_backends()
        self._emit("started", message=f"{self._total} pair(s) to judge")
        self._ready_limit = len(backends) * self.concurrency_per_host
        self._tasks = [
            asyncio.create_task(self._worker(backend, run_id))
            for backend in backends
            for _ in range(self.concurrency_per_host)
        ]
        try:
            results = await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            self._tasks = []
            # Nothing claimed ahead may stay marked running: it goes back to the queue.
            if self._prefetches:
                await asyncio.gather(*self._prefetches, return_exceptions=True)
            if self._writes:
                await asyncio.gather(*self._writes, return_exceptions=True)
            self._release_ready()
        down = [r.error for r in results if isinstance(r, _HostDown)]
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, (_HostDown, asyncio.CancelledError)):
                raise result
        if self._cancelled and self._drop_queued:
            for rid in self._run_ids:
                await asyncio.to_thread(self.store.cancel_jobs, rid)
        summary.judged, summary.failed, summary.failures = self._done, self._failed, list(self._failures)
        summary.cancelled = self._cancelled
        summary.elapsed_s = time.monotonic() - self._started
        summary.remaining = await asyncio.to_thread(self._queued_count)
        if self._judged_anything():
            self.store.log(
                "judge",
                "judged",
                self._done,
                f"judged {self._done} pair(s), {self._failed} failed"
                + (", cancelled" if self._cancelled else ""),
                {"run_ids": summary.run_ids, "failed": self._failed, "threshold": self.threshold},
            )
        self._emit("cancelled" if self._cancelled else "finished")
        if self._write_error is not None:
            raise self._write_error
        if self._fatal is not None:
            raise self._fatal
        if down and len(down) == len(results):
            raise down[0]
        return summary

    def _judged_anything(self) -> bool:
        return bool(self._done or self._failed)

    def _queued_count(self) -> int:
        return sum(self.store.job_counts(rid)["queued"] for rid in self._run_ids)

    async def _usable_backends(self) -> list[ChatBackend]:
        """The backends whose server answers and has the model; raises the first error if none does."""
        if not self.check_backends:
            return self.backends
        usable: list[ChatBackend] = []
        first_error: BackendError | None = None
        for backend in self.backends:
            try:
                await backend.check()
            except BackendError as exc:
                first_error = first_error or exc
                if len(self.backends) > 1:
                    # With one host the raised error says it all; with several the run goes on without it.
                    self._emit("host_down", host=backend.host, message=str(exc))
                continue
            usable.append(backend)
        if not usable:
            assert first_error is not None
            raise first_error
        return usable

    def _release_ready(self) -> None:
        while self._ready:
            job = self._ready.popleft().job
            assert job.id is not None
            self.store.release_job(job.id)

    def _claim_and_load(self, host: str, run_id: int | None) -> _Prepared | None:
        """Claim the next judge job, load its pair and sources and build the prompt (one thread hop)."""
        job = self.store.claim_job(host, run_id=run_id, task=JUDGE_TASK)
        if job is None:
            return None
        assert job.pair_id is not None
        try:
            pair = self.store.get_pair(job.pair_id)
        except NotFoundError:
            return _Prepared(job)
        chunks = self.store.get_chunks(pair.sources) if pair.sources else []
        if pair.kind is PairKind.REFUSAL and self._titles is None:
            self._titles = [d.title or d.path for d in self.store.list_documents()]
        messages = build_judge_messages(pair, chunks, corpus_titles=self._titles or (), rubric=self.rubric)
        return _Prepared(job, pair, messages)

    async def _prefetch(self, host: str, run_id: int | None) -> None:
        prepared = await asyncio.to_thread(self._claim_and_load, host, run_id)
        if prepared is None:
            self._exhausted = True
        elif self.paused or self._cancelled or self._stopping:
            assert prepared.job.id is not None
            self.store.release_job(prepared.job.id)
        else:
            self._ready.append(prepared)

    def _top_up(self, host: str, run_id: int | None) -> None:
        while not (self._exhausted or self.paused or self._cancelled or self._stopping) and (
            len(self._ready) + len(self._prefetches) < self._ready_limit
        ):
            task = asyncio.create_task(self._prefetch(host, run_id))
            self._prefetches.add(task)
            task.add_done_callback(self._prefetches.discard)

    async def _next_job(self, host: str, run_id: int | None) -> _Prepared | None:
        """A job claimed ahead if one is ready, else one claimed now; None when the queue is empty."""
        while True:
            if self._ready:
                return self._ready.popleft()
            prepared = await asyncio.to_thread(self._claim_and_load, host, run_id)
            if prepared is not None:
                return prepared
            if self._ready:
                continue  # a claim made ahead landed while this one looked
            if not self._prefetches:
                return None
            # Another worker's claim may be about to deliver the last jobs: wait for it.
            await asyncio.wait(set(self._prefetches))

    async def _worker(self, backend: ChatBackend, run_id: int | None) -> None:
        host = backend.host or backend.name
        while not (self._cancelled or self._stopping):
            await self._resume.wait()
            if self._cancelled or self._stopping:
                return
            prepared = await self._next_job(host, run_id)
            if prepared is None:
                return
            job = prepared.job
            assert job.id is not None
            if self.paused or self._cancelled or self._stopping:
                self.store.release_job(job.id)
                continue
            if job.run_id is not None:
                self._run_ids.add(job.run_id)
            self._top_up(host, run_id)
            self._in_flight += 1
            try:
                await self._judge(backend, prepared)
            except _HostDown:
                self.store.release_job(job.id)
                raise
            except BackendError as exc:
                # Retrying cannot help (model not pulled, no structured output): stop the run.
                self.store.release_job(job.id)
                self._fatal = self._fatal or exc
                self._stopping = True
                self._release_ready()
                return
            except asyncio.CancelledError:
                # Put the job back untouched; an explicit cancel then cancels it with the rest.
                self.store.release_job(job.id)
                raise
            finally:
                self._in_flight -= 1

    async def _judge(self, backend: ChatBackend, prepared: _Prepared) -> None:
        job, pair = prepared.job, prepared.pair
        assert job.id is not None and job.pair_id is not None
        if pair is None:
            await asyncio.to_thread(self.store.fail_job, job.id, "The pair was deleted before it was judged.", retry=False)
            return
        model_cls = verdict_model_for(pair.kind, self.rubric)
        criteria = criteria_for(pair.kind, self.rubric)
        schema = schema_for(model_cls)
        last_error: BackendError | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                result = await backend.chat(prepared.messages, schema, self._options_for(attempt))
                output: Any = parse_structured(result.content, model_cls, done_reason=result.done_reason)
            except BackendError as exc:
                if not exc.retryable:
                    raise
                last_error = exc
                if attempt < self.max_attempts:
                    self._emit("retry", pair_id=pair.id, host=backend.host, message=str(exc))
                    if not isinstance(exc, InvalidModelOutputError):
                        # A busy or failing server gets time to recover; a bad answer is simply asked again.
                        await asyncio.sleep(min(self.backoff_s * 2 ** (attempt - 1), self.backoff_max_s))
                continue
            scores = {c.id: float(getattr(output.scores, c.id)) for c in criteria}
            total = compute_total(scores, criteria)
            reason = " ".join(str(output.reason).split())
            verdict = Verdict(
                pair_id=job.pair_id, pair_revision=pair.revision, model=backend.model,
                rubric_version=self.rubric.version, scores=scores, total=total, reason=reason,
            )
            write = asyncio.create_task(self._store_verdict(job.id, verdict, pair, backend.host))
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)
            return
        assert last_error is not None
        if isinstance(last_error, BackendUnreachableError):
            raise _HostDown(last_error)
        await self._record_failure(job, last_error)

    async def _store_verdict(self, job_id: int, verdict: Verdict, pair: Pair, host: str | None) -> None:
        try:
            stored = await asyncio.to_thread(
                self.store.complete_judge_job, job_id, verdict, content_hash=pair.content_hash(),
                warning_check=JUDGE_WARNING, warning=judge_warning(verdict.total, self.threshold, verdict.reason),
            )
        except Exception as exc:  # a store failure (disk full, busy) ends the run with its own sentence
            self._write_error = self._write_error or exc
            self._stopping = True
            return
        if stored:
            self._done += 1
            self._emit("verdict", pair_id=pair.id, score=verdict.total, host=host)

    async def _record_failure(self, job: Job, error: BackendError) -> None:
        assert job.id is not None and job.pair_id is not None
        reason = f"Judging failed after {self.max_attempts} attempt(s): {error}"
        await asyncio.to_thread(self.store.fail_job, job.id, reason, retry=False)
        # A score from before an edit no longer describes the pair: without a verdict it has none.
        await asyncio.to_thread(self._drop_stale_score, job.pair_id)
        self._failed += 1
        self._failures.append((job.pair_id, str(error)))
        self._emit("failed", pair_id=job.pair_id, message=str(error))
        if self._done == 0 and self._failed >= GIVE_UP_AFTER and self._fatal is None:
            # A model that cannot give one valid verdict would only burn through the queue.
            self._fatal = InvalidModelOutputError(
                f"The judge model gave no valid verdict for the first {self._failed} pairs ({error}); "
                "choose a larger model or one that supports structured output with --model, then run "
                "`pairforge judge` again."
            )
            self._stopping = True
            self._release_ready()

    def _drop_stale_score(self, pair_id: int) -> None:
        stale = self.store.judge_candidates(rubric_version=self.rubric.version)
        if any(candidate[0] == pair_id for candidate in stale):
            self.store.set_scores({pair_id: None})

    def _options_for(self, attempt: int) -> ChatOptions:
        """The first try uses the configured low temperature; retries warm up a little so one bad sample is not repeated."""
        if attempt == 1:
            return self.options
        base = self.options
        return ChatOptions(
            temperature=min(base.temperature + 0.2 * (attempt - 1), 1.0),
            num_ctx=base.num_ctx,
            num_predict=base.num_predict,
            seed=None if base.seed is None else base.seed + attempt,
            top_p=base.top_p,
            keep_alive=base.keep_alive,
            timeout_s=base.timeout_s,
        )

    def _emit(self, kind: str, **fields: Any) -> None:
        if self._on_event is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-9)
        finished = self._done + self._failed
        rate = finished / elapsed * 60.0 if finished else 0.0
        remaining = max(self._total - finished, 0)
        eta = remaining / (rate / 60.0) if rate > 0 else None
        self._on_event(
            JudgeEvent(
                kind=kind, done=self._done, failed=self._failed, total=self._total,
                in_flight=self._in_flight, pairs_per_min=rate, eta_s=eta, **fields,
            )
        )

