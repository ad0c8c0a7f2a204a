"""Repair runs: plan one job per flagged pair; the repair handler asks the model to fix one pair per job.

Repair jobs live in the same persistent ``jobs`` table as generation and judge jobs
(``task = "repair"``, ``pair_id`` set) and run through the same :class:`engine.jobs.JobRunner`
and the generation backends, so a run survives a crash and resumes where it stopped.

Each job: load the pair and its sources, check it afresh, send it with the warnings a rewrite
can fix and one instruction per check, validate the answer, check the repaired pair with every
check, and keep it only when it clears every flagged problem it was sent and brings no new one. A kept repair
is stored as a new revision of the pair (one undo step per pair) together with the job's done
state; a dry run stores nothing but the job's state and reports what would change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.errors import InvalidModelOutputError, NotFoundError, PairForgeError
from engine.generate.backends import ChatBackend, ChatOptions, parse_structured, schema_for
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
from engine.quality import TokenCounter, check_pair, recheck
from engine.repair.policy import (
    FAILED,
    REPAIRED,
    UNCHANGED,
    Assessment,
    assess_repair,
    repair_candidates,
    repair_targets,
    resolve_checks,
    with_text,
)
from engine.repair.prompts import REPAIR_PROMPT_VERSION, RepairedPair, build_repair_messages
from engine.store import PairFilter, Store

REPAIR_TASK = "repair"
# A run stops when this many pairs get no valid answer from the model before any repair succeeds.
GIVE_UP_AFTER = 5
_SCHEMA = schema_for(RepairedPair)


class RepairRejectedError(PairForgeError):
    """The model's repair was worse than the original (it brought new problems); the original is kept."""


def plan_repair(
    store: Store,
    *,
    checks: Sequence[str] | None = None,
    flt: PairFilter | None = None,
    ids: Sequence[int] | None = None,
    params: dict[str, Any] | None = None,
) -> int | None:
    """Queue a repair run with one job per pair carrying one of ``checks``; returns its run id, or None if none do.

    ``checks`` defaults to every check a rewrite can fix; ``flt`` and ``ids`` narrow the pairs.
    Pairs already queued for repair are never planned twice. Raises ConfigError for a check id
    that is unknown or cannot be repaired.
    """
    wanted = resolve_checks(checks)
    candidates = repair_candidates(store, wanted, flt, ids)
    if not candidates:
        return None
    jobs = [
        Job(task=REPAIR_TASK, pair_id=pair_id, kind=PairKind(kind), mode=mode, params={"checks": list(wanted)})
        for pair_id, kind, mode in candidates
    ]
    run_params = {"checks": list(wanted), "prompt_version": REPAIR_PROMPT_VERSION, **(params or {})}
    run_id, count = store.jobs.create_run(REPAIR_TASK, run_params, jobs)
    store.log("repair", "planned", count, f"queued {count} flagged pair(s) for repair", {"run_id": run_id, **run_params})
    return run_id


@dataclass(frozen=True)
class RepairOutcome:
    """What a repair job did to one pair: repaired, unchanged or failed, why, and the text before and after."""

    pair_id: int
    outcome: str
    reason: str
    before: tuple[str, str]
    """The original (instruction, response)."""
    after: tuple[str, str] | None = None
    """The model's (instruction, response), also when it was not kept."""
    cleared: tuple[str, ...] = ()
    remaining: tuple[str, ...] = ()
    introduced: tuple[str, ...] = ()
    applied: bool = False
    """Whether the repair was stored (False in a dry run)."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {
            "pair_id": self.pair_id, "outcome": self.outcome, "reason": self.reason, "applied": self.applied,
            "before": {"instruction": self.before[0], "response": self.before[1]},
            "after": {"instruction": self.after[0], "response": self.after[1]} if self.after else None,
            "cleared": list(self.cleared), "remaining": list(self.remaining), "introduced": list(self.introduced),
        }


@dataclass
class RepairWork:
    """A prepared repair job: the pair, its sources, its fresh warnings, those to fix and the prompt."""

    job: Job
    pair: Pair
    sources: list[Chunk]
    before: list[PairWarning]
    targets: list[PairWarning]
    messages: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Proposal:
    """The model's repaired pair (with its warnings) and how it compares with the original."""

    candidate: Pair
    assessment: Assessment


class RepairHandler(JobHandler[RepairWork, Proposal | None]):
    """Repair one flagged pair per job; store the repair as a revision when it is better (and ``apply``)."""

    task = REPAIR_TASK

    def __init__(self, store: Store, *, options: ChatOptions | None = None, apply: bool = True) -> None:
        super().__init__(store)
        settings = store.settings.generation
        self.options = options or ChatOptions(
            temperature=settings.temperature.get("repair", 0.3), num_ctx=settings.num_ctx,
            num_predict=settings.num_predict, seed=settings.seed, keep_alive=settings.keep_alive,
            timeout_s=settings.timeout_s,
        )
        self.apply = apply
        #: Every finished job's outcome, in the order they finished.
        self.outcomes: list[RepairOutcome] = []
        self._rejected: dict[int, RepairOutcome] = {}
        self._model_failures = 0
        self._counter: TokenCounter | None = None

    def start(self) -> None:
        """Load the token counter the checks use."""
        self._counter = TokenCounter.from_settings(self.store.settings.quality)

    def _check(self, pair: Pair, sources: Sequence[Chunk]) -> list[PairWarning]:
        return check_pair(pair, sources, self.store.settings.quality, token_counter=self._counter)

    def prepare(self, job: Job) -> RepairWork:
        """Load the pair and its sources, check it afresh and build the prompt; raises PairForgeError if it is gone."""
        assert job.pair_id is not None
        try:
            pair = self.store.pairs.get(job.pair_id)
        except NotFoundError as exc:
            raise PairForgeError("The pair was deleted before it was repaired.") from exc
        sources = self.store.get_chunks(pair.sources) if pair.sources else []
        fresh = self._check(pair, sources)
        # A pair without sources can carry a copy of the imported documents, which recheck finds
        # over the whole corpus, not check_pair: keep that warning in view.
        corpus_copy = [w for w in pair.warnings if w.check == "mimicry" and not pair.sources]
        before = [*fresh, *[w for w in corpus_copy if w.check not in {f.check for f in fresh}]]
        checks = job.params.get("checks") or resolve_checks(None)
        targets = repair_targets(before, checks)
        messages = build_repair_messages(pair, sources, targets) if targets else []
        return RepairWork(job, pair, sources, before, targets, messages)

    async def attempt(
        self, work: RepairWork, backend: ChatBackend, attempt: int, on_token: TokenSink | None
    ) -> Answer[Proposal | None]:
        """Ask for the repair and check it; a repair that brings new problems raises RepairRejectedError."""
        if not work.targets:
            return Answer(None)  # fixed meanwhile (an edit, a changed setting): nothing to ask
        result = await backend.chat(work.messages, _SCHEMA, self.options, on_token)
        if result.truncated:
            raise InvalidModelOutputError(
                "The model's repair was cut off at its token limit: raise generation.num_predict."
            )
        output = parse_structured(result.content, RepairedPair, done_reason=result.done_reason)
        candidate = with_text(work.pair, output.question, output.answer)
        after = self._check(candidate, work.sources)
        assessment = assess_repair(work.pair, work.before, candidate, after, work.targets)
        if assessment.outcome == FAILED:
            self._rejected[work.job.id or 0] = self._outcome(work.pair, assessment, candidate)
            raise RepairRejectedError(assessment.reason)
        return Answer(Proposal(candidate.model_copy(update={"warnings": after}), assessment), result.completion_tokens or 0)

    @staticmethod
    def _outcome(pair: Pair, assessment: Assessment, candidate: Pair | None, *, applied: bool = False) -> RepairOutcome:
        return RepairOutcome(
            pair_id=pair.id or 0, outcome=assessment.outcome, reason=assessment.reason,
            before=(pair.instruction, pair.response),
            after=(candidate.instruction, candidate.response) if candidate is not None else None,
            cleared=assessment.cleared, remaining=assessment.remaining, introduced=assessment.introduced,
            applied=applied,
        )

    def commit(self, batch: Sequence[Finished[RepairWork, Proposal | None]]) -> list[JobResult | None]:
        """Store each kept repair as a revision and mark its job done, all in one transaction; then re-check them."""
        results: list[JobResult | None] = []
        outcomes: list[RepairOutcome] = []
        stored: list[int] = []
        with self.store.transaction():
            for item in batch:
                job_id, pair, proposal = item.job.id or 0, item.work.pair, item.answer.value
                if self.store.jobs.status(job_id) != "running":
                    results.append(None)  # cancelled meanwhile
                    continue
                if proposal is None:
                    outcome = self._outcome(pair, Assessment(UNCHANGED, "No longer flagged for a check to repair."), None)
                elif proposal.assessment.outcome == REPAIRED and self.apply:
                    current = self.store.pairs.find(pair.id or 0)
                    if current is None or current.content_hash() != pair.content_hash():
                        outcome = self._outcome(pair, Assessment(
                            UNCHANGED, "The pair was edited or deleted while it was repaired; it was left as it is now."
                        ), proposal.candidate)
                    else:
                        # The text is the repair's; the status and the rest are the pair's as it is now.
                        candidate = proposal.candidate
                        repaired = with_text(current, candidate.instruction, candidate.response)
                        self.store.pairs.update(repaired.model_copy(update={"warnings": candidate.warnings}), action="repair")
                        stored.append(pair.id or 0)
                        outcome = self._outcome(pair, proposal.assessment, proposal.candidate, applied=True)
                else:
                    outcome = self._outcome(pair, proposal.assessment, proposal.candidate)
                self.store.jobs.mark_done(job_id, [pair.id or 0] if outcome.applied else [])
                outcomes.append(outcome)
                results.append(JobResult(pair_id=pair.id))
        self.outcomes.extend(outcomes)
        if stored:
            # Checks that look beyond the pair (copies of imported documents) run on the stored revision too.
            recheck(self.store, stored)
        return results

    def fail(self, job: Job, reason: str) -> None:
        """Fail the job and keep its outcome; the pair is left as it was."""
        super().fail(job, reason)
        rejected = self._rejected.pop(job.id or 0, None)
        if rejected is not None:
            self.outcomes.append(rejected)
            return
        self._model_failures += 1
        pair = self.store.pairs.find(job.pair_id or 0)
        before = (pair.instruction, pair.response) if pair is not None else ("", "")
        self.outcomes.append(RepairOutcome(pair_id=job.pair_id or 0, outcome=FAILED, reason=reason, before=before))

    def failure_reason(self, error: str, attempts: int) -> str:
        """The reason kept on a repair job whose every try failed."""
        return f"The model gave no valid repair after {attempts} attempt(s): {error}; the original was kept."

    give_up_after = GIVE_UP_AFTER

    def failures_so_far(self, summary: JobSummary) -> int:
        """Only the model's failures count: a repair rejected by the checks is a valid answer."""
        return self._model_failures

    def give_up_message(self, failed: int, error: str) -> str:
        """A model that cannot give one valid repair: what to choose instead."""
        return (
            f"The model gave no valid repair for the first {failed} pairs ({error}); "
            "choose a larger model or one that supports structured output with --model, then run "
            "`pairforge repair` again."
        )

    def counts(self) -> dict[str, int]:
        """Outcomes so far: repaired, unchanged and failed pairs (a dry run's repairs count as repaired)."""
        found = dict.fromkeys((REPAIRED, UNCHANGED, FAILED), 0)
        for outcome in self.outcomes:
            found[outcome.outcome] += 1
        return found

    def describe(self, summary: JobSummary) -> str:
        """How many pairs were repaired, left unchanged and failed."""
        c = self.counts()
        verb = "repaired" if self.apply else "would repair"
        text = f"{verb} {c[REPAIRED]} pair(s), {c[UNCHANGED]} unchanged, {c[FAILED]} failed"
        if summary.stopped_reason:
            return f"{text}; stopped: {summary.stopped_reason}"
        return text + (", cancelled" if summary.cancelled else "")

    def finished(self, summary: JobSummary) -> None:
        """Log the run when it did anything."""
        if self.outcomes:
            self.store.log(
                "repair", "repaired" if self.apply else "dry_run", self.counts()[REPAIRED], summary.message,
                {"run_ids": summary.run_ids, **self.counts(), "applied": self.apply},
            )


def repair_runner(
    store: Store,
    backends: Sequence[ChatBackend],
    *,
    apply: bool = True,
    options: ChatOptions | None = None,
    concurrency_per_host: int | str | None = None,
    max_attempts: int | None = None,
    backoff_s: float = 0.5,
    backoff_max_s: float = 8.0,
    **runner_options: Any,
) -> JobRunner:
    """A :class:`~engine.jobs.JobRunner` for repair jobs on the generation backends; its handler keeps the outcomes.

    ``concurrency_per_host`` and ``max_attempts`` default to the project's generation settings.
    """
    settings = store.settings.generation
    handler = RepairHandler(store, options=options, apply=apply)
    retry = RetryPolicy(
        max_attempts=max(1, max_attempts or settings.max_attempts), backoff_s=backoff_s, backoff_max_s=backoff_max_s
    )
    return JobRunner(
        store, backends, handler, concurrency_per_host=concurrency_per_host or settings.concurrency, retry=retry,
        **runner_options,
    )


__all__ = [
    "GIVE_UP_AFTER",
    "REPAIR_TASK",
    "Proposal",
    "RepairHandler",
    "RepairOutcome",
    "RepairRejectedError",
    "RepairWork",
    "plan_repair",
    "repair_runner",
]
