"""The generation handler: one queued job becomes one grounded, checked pair.

A job is prepared by its kind's pair builder (prompt, schema, sources), tried against a
host (the answer must be whole, valid JSON of the builder's schema), and stored with its
quality warnings together with the job's done state. The run around it (hosts, retries,
pause, cancel, leases) is :class:`engine.jobs.JobRunner`'s.
"""

from __future__ import annotations

import concurrent.futures
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from engine.generate.backends import ChatBackend, ChatOptions, ChatResult
from engine.generate.builders import (
    GenerationContext,
    LogNote,
    PairBuilder,
    PreparedRequest,
    builder_for,
    parse_answer,
)
from engine.generate.prompts import MAX_ASKED_QUESTIONS
from engine.jobs import (
    Answer,
    Finished,
    JobHandler,
    JobResult,
    JobRunner,
    JobSummary,
    RetryPolicy,
    TokenSink,
)
from engine.models import Chunk, Job, Pair, PairKind, PairWarning
from engine.store import Store

GENERATE_TASK = "generate"

QualityChecker = Callable[[Pair, Sequence[Chunk], Any], list[PairWarning]]


def _quality_checker() -> QualityChecker:
    """``engine.quality``'s per-pair checks (imported late: they are a fifth of a second to load)."""
    from engine.quality.checks import check_pair

    return check_pair


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


@dataclass
class GenerationWork:
    """A prepared generation job: its builder, request, sources and sampling options.

    ``notes`` are the builder's decisions of the last attempt, logged with the job's pair.
    """

    job: Job
    builder: PairBuilder
    request: PreparedRequest
    sources: list[Chunk]
    options: ChatOptions
    notes: list[LogNote] = field(default_factory=list)


class GenerationHandler(JobHandler[GenerationWork, Pair]):
    """Generate one pair per job with the job kind's builder, check it and store it."""

    task = GENERATE_TASK

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self._context: GenerationContext | None = None
        self._builders: dict[str, PairBuilder] = {}
        self._checker: concurrent.futures.Future[QualityChecker | None] | None = None

    def start(self) -> None:
        """Load the corpus context the builders share and start loading the quality checks."""
        self._context = GenerationContext.load(self.store)
        self._builders = {}
        self._checker = _load_quality_checker()

    def _builder(self, kind: str) -> PairBuilder:
        builder = self._builders.get(kind)
        if builder is None:
            assert self._context is not None, "start() loads the context first"
            builder = self._builders[kind] = builder_for(self._context, kind)
        return builder

    def prepare(self, job: Job) -> GenerationWork:
        """The job's prompt and sources from its kind's builder; raises PairForgeError when it cannot be built."""
        assert self._context is not None, "start() loads the context first"
        builder = self._builder(str(job.kind))
        # The questions its sources already have, from the store: the model is asked for another.
        asked = [] if job.kind == PairKind.REFUSAL else self.store.pairs.questions_citing(job.chunk_ids, MAX_ASKED_QUESTIONS)
        request = builder.prepare(job, asked)
        settings = self.store.settings.generation
        seed = settings.seed + int(job.params.get("variant", 0)) if settings.seed is not None else None
        options = ChatOptions(
            temperature=request.temperature, num_ctx=settings.num_ctx, num_predict=settings.num_predict, seed=seed,
            keep_alive=settings.keep_alive, timeout_s=settings.timeout_s,
        )
        return GenerationWork(job, builder, request, self._context.chunks_of(job), options)

    async def attempt(
        self, work: GenerationWork, backend: ChatBackend, attempt: int, on_token: TokenSink | None
    ) -> Answer[Pair]:
        """Ask for the pair; a cut-off or off-schema answer raises InvalidModelOutputError (asked again at once).

        The job's builder may send more than one request (a refusal asks again for topics).
        """
        tokens = 0

        async def ask(request: PreparedRequest) -> tuple[BaseModel, ChatResult]:
            nonlocal tokens
            result = await backend.chat(request.messages, request.schema, work.options, on_token)
            tokens += result.completion_tokens or 0
            return parse_answer(request, result), result

        exchange = await work.builder.exchange(work.job, work.request, ask)
        work.notes = exchange.notes
        return Answer(work.builder.build(work.job, exchange.output, exchange.result), tokens)

    def commit(self, batch: Sequence[Finished[GenerationWork, Pair]]) -> list[JobResult | None]:
        """Check every pair, then store each with its job's done state, all in one transaction."""
        checker = self._checker.result() if self._checker is not None else None
        if checker is not None:
            quality = self.store.settings.quality
            for item in batch:
                item.answer.value.warnings = list(checker(item.answer.value, item.work.sources, quality))
        with self.store.transaction():
            stored = [self.store.complete_job(item.job.id or 0, [item.answer.value]) for item in batch]
            for item in batch:
                for note in item.work.notes:
                    self.store.log("generate", note.action, note.count, note.message, note.detail)
        return [JobResult(pairs=tuple(added)) if added else None for added in stored]

    def describe(self, summary: JobSummary) -> str:
        """What the run made, or why it stopped or made nothing, with the command that goes on."""
        made = summary.pairs
        if summary.stopped_reason:
            head = f"Stopped after {made} pair(s): {summary.stopped_reason}"
            return head + (f" {summary.queued} job(s) stay queued." if summary.queued else "")
        if summary.cancelled:
            return (f"Stopped after {made} pair(s); {summary.queued} job(s) stay queued: "
                    "run `pairforge generate` again to resume.")
        if made == 0:
            if summary.failed:
                return f"0 pairs: all {summary.failed} job(s) failed; the last error was: {summary.last_error}"
            return "0 pairs: there were no queued jobs; run `pairforge plan --save` or `pairforge generate` to plan some."
        failed = f", {summary.failed} job(s) failed (last error: {summary.last_error})" if summary.failed else ""
        return f"{made} pair(s) from {summary.done} job(s) in {summary.elapsed_s:.1f} s{failed}."

    def finished(self, summary: JobSummary) -> None:
        """Log the run in the pipeline log."""
        self.store.log(
            "generate", "run", summary.pairs, summary.message,
            {"run_id": summary.run_id, "done": summary.done, "failed": summary.failed, "queued": summary.queued},
        )


def generation_runner(
    store: Store,
    backends: Sequence[ChatBackend],
    *,
    concurrency_per_host: int | str | None = None,
    max_attempts: int | None = None,
    retry_base_s: float = 0.5,
    retry_max_s: float = 8.0,
    stream_tokens: bool = False,
    **runner_options: Any,
) -> JobRunner:
    """A :class:`~engine.jobs.JobRunner` for generation jobs.

    ``concurrency_per_host`` (a number or ``"auto"``) and ``max_attempts`` default to the
    project's generation settings; ``stream_tokens`` streams answers and emits coalesced token events.
    """
    settings = store.settings.generation
    retry = RetryPolicy(
        max_attempts=max_attempts or settings.max_attempts, backoff_s=retry_base_s, backoff_max_s=retry_max_s
    )
    return JobRunner(
        store, backends, GenerationHandler(store), concurrency_per_host=concurrency_per_host or settings.concurrency,
        retry=retry, stream_tokens=stream_tokens, **runner_options,
    )


__all__ = ["GENERATE_TASK", "GenerationHandler", "GenerationWork", "generation_runner"]
