"""Eval runs: one job per probe and model; the eval handler asks the model, scores the answer and stores it.

An eval run is a row of ``runs`` with task ``eval`` and its model in the params; its jobs go
through the same :class:`engine.jobs.JobRunner` as generation, so a run has progress and ETA,
hosts and their concurrency, retries, and leases: a run whose process died is resumed by the
next ``pairforge eval`` where it stopped. Each job asks the model the probe's question as a
user would (the export's system prompt first, when the project sets one), asks the judge how
well the answer agrees with the reference when the probe has one, then stores the answer,
its measures and its failures and marks the job done in one transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from engine.errors import InvalidModelOutputError, PairForgeError
from engine.evaluate.answers import AnswerScorer
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
from engine.models import Job, PairKind
from engine.quality.split import VALIDATION as SPLIT_VALIDATION
from engine.store.evals import AMBIGUOUS, OUT_OF_CORPUS, Probe, ProbeAnswer

if TYPE_CHECKING:
    from engine.store import Store

EVAL_TASK = "eval"
# A run stops when this many probes fail before any answer is stored.
GIVE_UP_AFTER = 5


def _job_kind(probe: Probe) -> PairKind:
    if probe.kind == OUT_OF_CORPUS:
        return PairKind.REFUSAL
    if probe.kind == AMBIGUOUS:
        return PairKind.CLARIFICATION
    return PairKind.INSTRUCTION


def trained_on(store: Store, topic: str) -> bool:
    """Whether a pair outside the validation split asks about ``topic`` (so a probe on it was trained on)."""
    needle = "%" + topic.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = store.db.read(
        "SELECT 1 FROM pairs WHERE COALESCE(split, '') != ? AND instruction LIKE ? ESCAPE '\\' LIMIT 1",
        (SPLIT_VALIDATION, needle),
    )
    return bool(rows)


def current_probes(store: Store) -> list[Probe]:
    """The stored probes still fit to ask, none of them trained on.

    Left out: a probe from a pair that a later split moved into training, and an
    out-of-corpus probe whose topic a training pair has come to ask about since.
    """
    in_validation = {
        r["id"] for r in store.db.read("SELECT id FROM pairs WHERE split = ?", (SPLIT_VALIDATION,))
    }
    return [
        p for p in store.evals.probes()
        if (p.pair_id is None or p.pair_id in in_validation) and not (p.topic and trained_on(store, p.topic))
    ]


def plan_eval(store: Store, model: str, *, role: str = "tuned", params: dict[str, Any] | None = None) -> int:
    """Queue an eval run of ``model`` with one job per current probe; returns its run id.

    ``role`` says what the model is in the comparison ("tuned" or "baseline"); ``params``
    (backend, the run it is compared with) are kept on the run. Raises PairForgeError when
    no probe is stored (run :func:`engine.evaluate.build_probes` first).
    """
    probes = current_probes(store)
    if not probes:
        raise PairForgeError("There are no eval probes: run `pairforge eval` to build them from the validation split.")
    jobs = [
        Job(task=EVAL_TASK, kind=_job_kind(p), chunk_ids=list(p.chunk_ids), params={"probe_id": p.id})
        for p in probes
    ]
    run_params = {"model": model, "role": role, **(params or {})}
    run_id, count = store.jobs.create_run(EVAL_TASK, run_params, jobs)
    store.log("eval", "planned", count, f"queued {count} probe(s) for {model} ({role})", {"run_id": run_id, **run_params})
    return run_id


class AgreementOutput(BaseModel):
    """The judge's verdict on one answer against the reference answer."""

    score: int = Field(ge=0, le=10)
    reason: str


AGREEMENT_SYSTEM = (
    "You compare a model's answer with a reference answer to the same question. Score 0-10 how well "
    "the model's answer states the same facts as the reference: 10 when every fact agrees, 5 when half "
    "of them are there or one is wrong, 0 when it contradicts the reference, declines or says nothing."
)


def agreement_messages(question: str, reference: str, answer: str) -> list[dict[str, str]]:
    """The judge prompt scoring ``answer`` against ``reference``."""
    return [
        {"role": "system", "content": AGREEMENT_SYSTEM},
        {"role": "user", "content": (
            f"Question:\n{question}\n\nReference answer:\n{reference}\n\nModel's answer:\n{answer}\n\n"
            'Reply as JSON {"score": 0-10, "reason": "one sentence"}.'
        )},
    ]


@dataclass
class EvalWork:
    """A prepared eval job: the probe and the question as the model is asked it."""

    job: Job
    probe: Probe
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class EvalReply:
    """What one try got: the model's answer, scored (with the judge's agreement when the probe has a reference)."""

    answer: ProbeAnswer


class EvalHandler(JobHandler[EvalWork, EvalReply]):
    """Ask the evaluated model one probe, score the answer and store it with its run."""

    task = EVAL_TASK

    def __init__(
        self,
        store: Store,
        *,
        model: str,
        options: ChatOptions | None = None,
        judge: ChatBackend | None = None,
        judge_options: ChatOptions | None = None,
    ) -> None:
        super().__init__(store)
        self.model = model
        # Deterministic answers: two runs of the same model compare the model, not the sampling.
        self.options = options or ChatOptions(temperature=0.0, seed=0)
        self.judge = judge
        self.judge_options = judge_options or ChatOptions(temperature=0.1)
        self.judge_schema = schema_for(AgreementOutput)
        self.scorer = AnswerScorer(store)
        self.system_prompt = store.settings.export.system_prompt

    def start(self) -> None:
        """Score against the corpus as it is now (its seeds are read here, once, not in the scoring threads)."""
        self.scorer = AnswerScorer(self.store)
        self.scorer.load()

    def prepare(self, job: Job) -> EvalWork:
        """Load the probe and build the question; raises PairForgeError when the probe was deleted."""
        probe = self.store.evals.get_probe(int(job.params.get("probe_id") or 0))
        if probe is None:
            raise PairForgeError("The probe was deleted before it was asked.")
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages.append({"role": "user", "content": probe.question})
        return EvalWork(job, probe, messages)

    async def attempt(
        self, work: EvalWork, backend: ChatBackend, attempt: int, on_token: TokenSink | None
    ) -> Answer[EvalReply]:
        """Ask the model; with a judge and a reference, ask the judge how well the answer agrees."""
        result = await backend.chat(work.messages, None, self.options, on_token)
        answer = result.content.strip()
        if result.done_reason == "length" and not answer:
            raise InvalidModelOutputError("The model's answer was cut off before it said anything.")
        agreement: float | None = None
        if self.judge is not None and work.probe.reference and answer:
            verdict = await self.judge.chat(
                agreement_messages(work.probe.question, work.probe.reference, answer), self.judge_schema,
                self.judge_options,
            )
            agreement = float(parse_structured(verdict.content, AgreementOutput, done_reason=verdict.done_reason).score)
        # The gate's checks are a few milliseconds of Python: scored off the event loop, so the
        # requests of the other workers go out and come back meanwhile.
        scored = await asyncio.to_thread(
            self.scorer.score, work.probe, answer, run_id=work.job.run_id or 0, model=self.model, agreement=agreement
        )
        return Answer(EvalReply(scored), result.completion_tokens or 0)

    def commit(self, batch: Sequence[Finished[EvalWork, EvalReply]]) -> list[JobResult | None]:
        """Store each scored answer and mark its job done, all in one transaction."""
        scored = [item.answer.value.answer for item in batch]
        results: list[JobResult | None] = []
        with self.store.transaction() as conn:
            for item, answer in zip(batch, scored, strict=True):
                row = conn.execute("SELECT status FROM jobs WHERE id = ?", (item.job.id,)).fetchone()
                if row is None or row["status"] != "running":
                    results.append(None)
                    continue
                self.store.evals.complete(conn, answer)
                self.store.jobs.mark_done(item.job.id or 0)
                results.append(JobResult(pair_id=answer.probe_id, score=0.0 if answer.failed else 1.0))
        return results

    def failure_reason(self, error: str, attempts: int) -> str:
        """The reason kept on an eval job whose every try failed."""
        return f"Asking the probe failed after {attempts} attempt(s): {error}"

    give_up_after = GIVE_UP_AFTER

    def give_up_message(self, failed: int, error: str) -> str:
        """A model that cannot answer one probe: which, and what to check."""
        return (
            f"{self.model} gave no usable answer to the first {failed} probes ({error}); "
            "check that it is served and answers chat requests, then run `pairforge eval` again."
        )

    def describe(self, summary: JobSummary) -> str:
        """How many probes were answered and failed."""
        return (
            f"asked {summary.done} probe(s) of {self.model}, {summary.failed} failed"
            + (", cancelled" if summary.cancelled else "")
        )

    def finished(self, summary: JobSummary) -> None:
        """Log the run when it asked anything."""
        if summary.done or summary.failed:
            self.store.log(
                "eval", "evaluated", summary.done, summary.message,
                {"run_ids": summary.run_ids, "failed": summary.failed, "model": self.model},
            )


def eval_runner(
    store: Store,
    backends: Sequence[ChatBackend],
    *,
    model: str,
    judge: ChatBackend | None = None,
    concurrency_per_host: int | str = 2,
    max_attempts: int = 3,
    options: ChatOptions | None = None,
    backoff_s: float = 0.5,
    check_backends: bool = True,
    **runner_options: Any,
) -> JobRunner:
    """A :class:`~engine.jobs.JobRunner` for eval jobs of ``model``; run it with the run's id."""
    handler = EvalHandler(store, model=model, options=options, judge=judge)
    retry = RetryPolicy(max_attempts=max(1, max_attempts), backoff_s=backoff_s)
    return JobRunner(
        store, backends, handler, concurrency_per_host=concurrency_per_host, retry=retry,
        check_backends=check_backends, **runner_options,
    )


def answers_of(store: Store, run_id: int) -> dict[int, ProbeAnswer]:
    """The stored answers of an eval run, by probe id."""
    return store.evals.answers(run_id)


__all__ = [
    "EVAL_TASK",
    "AgreementOutput",
    "EvalHandler",
    "EvalReply",
    "EvalWork",
    "agreement_messages",
    "answers_of",
    "current_probes",
    "eval_runner",
    "plan_eval",
    "trained_on",
]
