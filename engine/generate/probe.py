"""The pre-flight probe: one real job per pair kind before a run starts.

The commonest failed run "completes" with nothing: a model that cannot follow
the answer schema, a prompt longer than the model's context, answers that fail
the error-severity checks. The queue would find out after every job had been
tried ``max_attempts`` times. The probe sends the first queued job of each kind
the run plans, all at once, and checks each answer exactly as the queue would
(parse, validate, build the pair, run the per-pair checks). A kind whose job
fails as many tries as the queue would give it stops the run with one sentence
naming the kind, the reason and the fix; a pair that passes is stored as that
job's result, so the probe costs the run nothing.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from engine.errors import (
    BackendError,
    BackendUnreachableError,
    InvalidModelOutputError,
    PairForgeError,
)
from engine.generate.backends import ChatBackend, ChatOptions, ChatResult
from engine.generate.builders import GenerationContext, PreparedRequest, builder_for, parse_answer
from engine.jobs import JobSummary
from engine.models import Job, JobStatus
from engine.store import Store

__all__ = ["PreflightError", "ProbeReport", "ProbeResult", "count_probe_in", "probe_run"]

SKIP_HINT = "pass --no-probe to generate anyway"


class PreflightError(PairForgeError):
    """A pair kind the run plans failed the pre-flight probe; nothing was queued to a model."""


@dataclass(frozen=True)
class ProbeResult:
    """How one pair kind did in the probe."""

    kind: str
    ok: bool
    seconds: float
    reason: str | None = None
    fix: str | None = None


@dataclass(frozen=True)
class ProbeReport:
    """The probe's result for every kind a run plans."""

    results: tuple[ProbeResult, ...]

    @property
    def ok(self) -> bool:
        """True when every kind gave a valid pair that passes the error-severity checks."""
        return all(r.ok for r in self.results)

    @property
    def kept(self) -> int:
        """Pairs the probe stored as their jobs' results (one per kind that passed)."""
        return sum(1 for r in self.results if r.ok)

    @property
    def message(self) -> str:
        """One sentence: every kind passed, or the first that failed with its reason and fix."""
        failed = [r for r in self.results if not r.ok]
        if not failed:
            kinds = ", ".join(f"{r.kind} {r.seconds:.1f} s" for r in self.results)
            return f"Pre-flight probe passed for every pair kind ({kinds}); its {self.kept} pair(s) are kept."
        first = failed[0]
        others = f" ({len(failed) - 1} other kind(s) failed too)" if len(failed) > 1 else ""
        return (
            f"The pre-flight probe stopped the run: {first.kind} pairs fail because {first.reason}"
            f"{others}; fix: {first.fix}, or {SKIP_HINT}."
        )


def count_probe_in(summary: JobSummary, report: ProbeReport | None) -> JobSummary:
    """``summary`` of the run that followed the probe, with the probe's pairs counted in."""
    if report is not None and report.kept:
        summary.pairs += report.kept
        summary.done += report.kept
        summary.message = f"{summary.message.rstrip('.')} (plus {report.kept} from the pre-flight probe)."
    return summary


def probe_jobs(store: Store, run_id: int | None) -> list[Job]:
    """The first queued (or left running) job of each pair kind in run ``run_id`` (None: any run)."""
    first: dict[str, Job] = {}
    for status in (JobStatus.QUEUED, JobStatus.RUNNING):
        for job in store.list_jobs(status=status.value, run_id=run_id):
            first.setdefault(str(job.kind), job)
    return list(first.values())


async def probe_run(
    store: Store,
    backends: Sequence[ChatBackend],
    run_id: int | None,
    *,
    attempts: int | None = None,
) -> ProbeReport:
    """Send one job per pair kind of run ``run_id`` (None: every queued job), in parallel,
    spread over ``backends``.

    Each job gets ``attempts`` tries (default: ``generation.max_attempts``, as in the
    queue); only a kind whose job failed every try fails. A passing job's pair is
    checked and stored as that job's result; the other jobs stay queued. Returns the
    report. Errors no retry can fix (an unreachable server, a model that is not
    pulled) are raised as they are, as the queue would raise them.
    """
    tries = attempts or store.settings.generation.max_attempts
    if not backends:
        raise ValueError("the probe needs at least one backend")
    jobs = probe_jobs(store, run_id)
    if not jobs:
        return ProbeReport(())
    context = await asyncio.to_thread(GenerationContext.load, store)
    from engine.quality import check_pair

    async def probe(job: Job, backend: ChatBackend) -> ProbeResult:
        started = time.perf_counter()
        kind = str(job.kind)
        reason, fix = "it produced no answer", "use a larger instruction model"
        builder = builder_for(context, kind)
        try:
            request = builder.prepare(job)
        except PairForgeError as exc:
            return ProbeResult(kind, False, 0.0, str(exc).rstrip("."), "re-plan the run")
        settings = store.settings
        options = ChatOptions(
            temperature=request.temperature, num_ctx=settings.generation.num_ctx,
            num_predict=settings.generation.num_predict, seed=settings.generation.seed,
            keep_alive=settings.generation.keep_alive, timeout_s=settings.generation.timeout_s,
        )
        async def ask(sent: PreparedRequest) -> tuple[BaseModel, ChatResult]:
            result = await backend.chat(sent.messages, sent.schema, options)
            return parse_answer(sent, result), result

        for attempt in range(tries):
            try:
                exchange = await builder.exchange(job, request, ask)
                pair = builder.build(job, exchange.output, exchange.result)
            except (InvalidModelOutputError, BackendError) as exc:
                if _fatal(exc):
                    raise
                reason, fix = diagnose(exc)
                if not isinstance(exc, InvalidModelOutputError):
                    # A busy or failing server gets a moment, as the queue's backoff gives it.
                    await asyncio.sleep(min(4.0, 0.25 * 2**attempt))
                continue
            pair.warnings = check_pair(pair, context.chunks_of(job), settings.quality)
            errors = [w for w in pair.warnings if str(w.severity) == "error"]
            if not errors:
                await asyncio.to_thread(store.complete_job, job.id or 0, [pair], queued=True)
                for note in exchange.notes:
                    await asyncio.to_thread(store.log, "generate", note.action, note.count, note.message, note.detail)
                return ProbeResult(kind, True, time.perf_counter() - started)
            reason = f"the pair fails the {errors[0].check} check ({errors[0].reason.rstrip('.')})"
            fix = "use a larger instruction model or change the prompt pack"
        return ProbeResult(kind, False, time.perf_counter() - started, reason, fix)

    results = await asyncio.gather(
        *(probe(job, backends[i % len(backends)]) for i, job in enumerate(jobs))
    )
    return ProbeReport(tuple(results))


def _fatal(exc: BackendError) -> bool:
    """An error that stops the whole run as it is (the server, not the kind, is the problem)."""
    if isinstance(exc, BackendUnreachableError):
        return True
    return not exc.retryable and "context" not in str(exc).lower()


def diagnose(exc: PairForgeError) -> tuple[str, str]:
    """The reason (a clause) and the fix for an answer that failed, from its error."""
    text = str(exc).lower()
    if "context" in text and ("exceed" in text or "fit" in text):
        return (
            "the prompt does not fit the model's context",
            "a larger context (generation.num_ctx) or a shorter chunk size (chunking.size_chars)",
        )
    if "cut off" in text or "token limit" in text:
        return (
            "the answer was cut off at the token limit",
            "raise generation.num_predict or use a shorter chunk size (chunking.size_chars)",
        )
    if "empty answer" in text:
        return "the model returned an empty answer", "use a larger instruction model"
    detail = re.search(r"\(([^()]*)\)", str(exc))
    if "does not match" in text and detail:
        return (
            f"the answers do not match the pair schema ({detail.group(1)})",
            "a model with structured output (Ollama's format, a llama.cpp or vLLM server) "
            "or a larger instruction model",
        )
    if isinstance(exc, InvalidModelOutputError):
        return (
            "the answers are not valid JSON of the pair schema",
            "a model with structured output (Ollama's format, a llama.cpp or vLLM server) "
            "or a larger instruction model",
        )
    return str(exc).rstrip("."), "check the server's log and retry"
