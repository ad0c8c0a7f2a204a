"""Judge runs: plan one job per pair that needs a verdict; the judge handler scores one pair per job.

Judge jobs live in the same persistent ``jobs`` table as generation jobs (``task = "judge"``,
``pair_id`` set) and run through the same :class:`engine.jobs.JobRunner`, so a run survives a
crash: jobs whose run stopped are queued again on the next start and the run resumes where it
stopped.

Each job: load the pair and its sources, ask the judge with the verdict schema, validate the
answer, recompute the total, then store the verdict, score and warning and mark the job done
in one transaction. A job whose every try failed keeps its reason and the pair keeps no score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import NotFoundError, PairForgeError
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
from engine.judge.policy import complete_judge_job, judge_candidates
from engine.judge.prompts import build_judge_messages
from engine.judge.rubric import (
    RUBRIC,
    Criterion,
    Rubric,
    compute_total,
    criteria_for,
    verdict_model_for,
)
from engine.judge.scoring import JUDGE_WARNING, judge_warning
from engine.models import Job, Pair, PairKind, Verdict
from engine.store import Store

JUDGE_TASK = "judge"
# A run stops when this many pairs fail before any verdict succeeds.
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
    candidates = judge_candidates(store, rubric_version=rubric.version, only_changed=only_changed)
    if not candidates:
        return None
    jobs = [
        Job(task=JUDGE_TASK, pair_id=pair_id, kind=PairKind(kind), mode=mode) for pair_id, kind, mode in candidates
    ]
    run_params = {"rubric_version": rubric.version, "only_changed": only_changed, **(params or {})}
    run_id, count = store.jobs.create_run(JUDGE_TASK, run_params, jobs)
    store.log(
        "judge",
        "planned",
        count,
        f"queued {count} pair(s) for judging ({'new or edited only' if only_changed else 'all pairs'})",
        {"run_id": run_id, **run_params},
    )
    return run_id


@dataclass
class JudgeWork:
    """A prepared judge job: the pair, its prompt and the verdict schema for its kind."""

    job: Job
    pair: Pair
    messages: list[dict[str, str]]
    model_cls: type[Any]
    criteria: tuple[Criterion, ...]
    schema: dict[str, Any]


class JudgeHandler(JobHandler[JudgeWork, Verdict]):
    """Score one pair per job against the rubric and store the verdict, score and warning."""

    task = JUDGE_TASK

    def __init__(
        self, store: Store, *, options: ChatOptions | None = None, threshold: float = 7.0, rubric: Rubric = RUBRIC
    ) -> None:
        super().__init__(store)
        self.options = options or ChatOptions(temperature=0.1)
        self.threshold = threshold
        self.rubric = rubric
        self._titles: list[str] | None = None

    def start(self) -> None:
        """Forget the corpus titles of an earlier run: documents may have changed since."""
        self._titles = None

    def prepare(self, job: Job) -> JudgeWork:
        """Load the pair and its sources and build the judge prompt; raises PairForgeError if the pair is gone."""
        assert job.pair_id is not None
        try:
            pair = self.store.pairs.get(job.pair_id)
        except NotFoundError as exc:
            raise PairForgeError("The pair was deleted before it was judged.") from exc
        chunks = self.store.documents.get_chunks(pair.sources) if pair.sources else []
        if pair.kind is PairKind.REFUSAL and self._titles is None:
            self._titles = [d.title or d.path for d in self.store.list_documents()]
        messages = build_judge_messages(pair, chunks, corpus_titles=self._titles or (), rubric=self.rubric)
        model_cls = verdict_model_for(pair.kind, self.rubric)
        return JudgeWork(
            job, pair, messages, model_cls, tuple(criteria_for(pair.kind, self.rubric)), schema_for(model_cls)
        )

    async def attempt(
        self, work: JudgeWork, backend: ChatBackend, attempt: int, on_token: TokenSink | None
    ) -> Answer[Verdict]:
        """Ask the judge; the total is recomputed from the criteria, never taken from the model."""
        result = await backend.chat(work.messages, work.schema, self._options_for(attempt), on_token)
        output: Any = parse_structured(result.content, work.model_cls, done_reason=result.done_reason)
        scores = {c.id: float(getattr(output.scores, c.id)) for c in work.criteria}
        verdict = Verdict(
            pair_id=work.pair.id or 0, pair_revision=work.pair.revision, model=backend.model,
            rubric_version=self.rubric.version, scores=scores, total=compute_total(scores, work.criteria),
            reason=" ".join(str(output.reason).split()),
        )
        return Answer(verdict, result.completion_tokens or 0)

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

    def commit(self, batch: Sequence[Finished[JudgeWork, Verdict]]) -> list[JobResult | None]:
        """Store each verdict with its score and warning and mark its job done, all in one transaction."""
        results: list[JobResult | None] = []
        with self.store.transaction():
            for item in batch:
                verdict, pair = item.answer.value, item.work.pair
                stored = complete_judge_job(
                    self.store, item.job.id or 0, verdict, content_hash=pair.content_hash(),
                    warning_check=JUDGE_WARNING, warning=judge_warning(verdict.total, self.threshold, verdict.reason),
                )
                results.append(JobResult(pair_id=pair.id, score=verdict.total) if stored else None)
        return results

    def fail(self, job: Job, reason: str) -> None:
        """Fail the job; a score from before an edit no longer describes the pair, so without a verdict it has none."""
        with self.store.transaction():
            super().fail(job, reason)
            if job.pair_id is not None:
                stale = judge_candidates(self.store, rubric_version=self.rubric.version)
                if any(candidate[0] == job.pair_id for candidate in stale):
                    self.store.pairs.set_scores({job.pair_id: None})

    def failure_reason(self, error: str, attempts: int) -> str:
        """The reason kept on a judge job whose every try failed."""
        return f"Judging failed after {attempts} attempt(s): {error}"

    give_up_after = GIVE_UP_AFTER

    def give_up_message(self, failed: int, error: str) -> str:
        """A model that cannot give one valid verdict: which, and what to choose instead."""
        return (
            f"The judge model gave no valid verdict for the first {failed} pairs ({error}); "
            "choose a larger model or one that supports structured output with --model, then run "
            "`pairforge judge` again."
        )

    def describe(self, summary: JobSummary) -> str:
        """How many pairs were judged and failed."""
        return f"judged {summary.done} pair(s), {summary.failed} failed" + (", cancelled" if summary.cancelled else "")

    def finished(self, summary: JobSummary) -> None:
        """Log the run when it judged anything."""
        if summary.done or summary.failed:
            self.store.log(
                "judge", "judged", summary.done, summary.message,
                {"run_ids": summary.run_ids, "failed": summary.failed, "threshold": self.threshold},
            )


def judge_runner(
    store: Store,
    backends: Sequence[ChatBackend],
    *,
    options: ChatOptions | None = None,
    concurrency_per_host: int | str = 2,
    max_attempts: int = 4,
    threshold: float = 7.0,
    rubric: Rubric = RUBRIC,
    backoff_s: float = 0.5,
    backoff_max_s: float = 8.0,
    check_backends: bool = True,
    **runner_options: Any,
) -> JobRunner:
    """A :class:`~engine.jobs.JobRunner` for judge jobs; by default it first checks every host serves the model."""
    handler = JudgeHandler(store, options=options, threshold=threshold, rubric=rubric)
    retry = RetryPolicy(max_attempts=max(1, max_attempts), backoff_s=backoff_s, backoff_max_s=backoff_max_s)
    return JobRunner(
        store, backends, handler, concurrency_per_host=concurrency_per_host, retry=retry,
        check_backends=check_backends, **runner_options,
    )


__all__ = ["GIVE_UP_AFTER", "JUDGE_TASK", "JudgeHandler", "JudgeWork", "judge_runner", "plan_judging"]
