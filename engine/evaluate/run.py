"""One eval of a model against its base, end to end: probes, paraphrases, then each model's run.

The CLI (``pairforge eval``) and the app's Eval section both call :func:`run_eval`. Every
step that asks a model goes through the one job runner, so an interrupted eval resumes:
paraphrase jobs left queued are done first, and a model's unfinished run is continued
instead of planned again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.evaluate.handler import EVAL_TASK, eval_runner, plan_eval
from engine.evaluate.probes import (
    PARAPHRASE_TASK,
    ParaphraseHandler,
    ProbeSet,
    build_probes,
    plan_paraphrases,
)
from engine.jobs import JobEvent, JobRunner, JobSummary, RetryPolicy

if TYPE_CHECKING:
    from engine.generate.backends import ChatBackend
    from engine.settings import ProjectSettings
    from engine.store import Store

# (step, event): step is "paraphrase", "tuned" or "baseline".
EvalEventCallback = Callable[[str, JobEvent], None]
RunnerHook = Callable[[JobRunner], None]


@dataclass
class EvalOutcome:
    """What an eval did: the probes, the runs of the tuned model and its base, and notes."""

    probes: ProbeSet
    tuned_run: int
    baseline_run: int | None
    summaries: dict[str, JobSummary] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def stopped_reason(self) -> str | None:
        """Why a model's run stopped before its end, if one did."""
        for step in ("tuned", "baseline"):
            summary = self.summaries.get(step)
            if summary is not None and summary.stopped_reason:
                return summary.stopped_reason
        return None


@dataclass
class EvalBackends:
    """The backends an eval talks to: the tuned model's, the baseline's, the paraphrase writer's and the judge."""

    model: list[ChatBackend]
    baseline: list[ChatBackend]
    paraphrase: list[ChatBackend]
    judge: ChatBackend | None
    concurrency: int | str

    def all(self) -> list[ChatBackend]:
        """Every backend, to close them when the eval ends."""
        return [*self.model, *self.baseline, *self.paraphrase, *([self.judge] if self.judge else [])]


def eval_backends(
    settings: ProjectSettings,
    *,
    model: str,
    baseline: str | None = None,
    backend: str | None = None,
    hosts: Sequence[str] | None = None,
    concurrency: int | str | None = None,
    paraphrase_model: str | None = None,
    paraphrase: bool = True,
    judge_model: str | None = None,
    judge: bool = True,
) -> EvalBackends:
    """Backends for an eval from the project's settings and the overrides (nothing connects yet).

    Both models are served by ``backend`` on ``hosts`` (default: the generation settings); the
    paraphrases are written by ``paraphrase_model`` (default: the generation model) there too;
    the judge is resolved as ``pairforge judge`` resolves it. Raises ValueError for an unknown
    backend kind.
    """
    from engine.generate.hosts import backends_from_settings
    from engine.judge import make_judge_backends, resolve_judge_config

    per_host = concurrency or settings.generation.concurrency
    chosen = list(hosts) if hosts else None

    def served(name: str | None) -> list[ChatBackend]:
        return backends_from_settings(settings, backend=backend, model=name, hosts=chosen, concurrency=per_host)

    judges = make_judge_backends(resolve_judge_config(settings, backend=backend, model=judge_model, hosts=chosen)) if judge else []
    return EvalBackends(
        model=served(model), baseline=served(baseline) if baseline else [],
        paraphrase=served(paraphrase_model) if paraphrase else [], judge=judges[0] if judges else None,
        concurrency=per_host,
    )


def pending_eval_run(store: Store, model: str, role: str) -> dict[str, Any] | None:
    """The newest eval run of ``model`` in ``role`` that still has queued or running jobs, or None."""
    for run in reversed(store.list_runs()):
        params = run["params"]
        if (run["task"] == EVAL_TASK and params.get("model") == model and params.get("role") == role
                and (run["queued"] or 0) + (run["running"] or 0) > 0):
            return run
    return None


async def run_eval(
    store: Store,
    *,
    model: str,
    backends: Sequence[ChatBackend],
    baseline: str | None = None,
    baseline_backends: Sequence[ChatBackend] = (),
    paraphrase_backends: Sequence[ChatBackend] = (),
    judge: ChatBackend | None = None,
    concurrency: int | str = 2,
    params: dict[str, Any] | None = None,
    on_event: EvalEventCallback | None = None,
    on_runner: RunnerHook | None = None,
) -> EvalOutcome:
    """Evaluate ``model`` (served by ``backends``) and, when given, ``baseline``; returns what was done.

    Probes missing from the project are built first; with ``paraphrase_backends`` (the
    generation model) each validation question not yet paraphrased is. A paraphrase run
    that cannot finish is a note, not a failure: the eval goes on with the probes it has.
    ``on_runner`` receives each runner before it starts (to pause or cancel it).
    Raises PairForgeError when there is nothing to evaluate on.
    """
    probes = build_probes(store)
    outcome_notes: list[str] = []
    summaries: dict[str, JobSummary] = {}

    def forward(step: str) -> Callable[[JobEvent], None] | None:
        return None if on_event is None else (lambda event: on_event(step, event))

    async def go(step: str, runner: JobRunner, run_id: int | None) -> JobSummary:
        if on_runner is not None:
            on_runner(runner)
        summary = await runner.run(run_id, forward(step))
        summaries[step] = summary
        return summary

    if paraphrase_backends:
        plan_paraphrases(store)
        if store.job_counts(task=PARAPHRASE_TASK).get("queued", 0) or store.job_counts(task=PARAPHRASE_TASK).get("running", 0):
            runner = JobRunner(
                store, paraphrase_backends, ParaphraseHandler(store), concurrency_per_host=concurrency,
                retry=RetryPolicy(max_attempts=3, backoff_s=0.5), check_backends=True,
            )
            summary = await go("paraphrase", runner, None)
            if summary.stopped_reason:
                outcome_notes.append(f"Paraphrasing stopped: {summary.stopped_reason} The eval used the probes it had.")
            elif summary.failed:
                outcome_notes.append(f"{summary.failed} question(s) got no paraphrase that kept their meaning.")
        probes = ProbeSet(added=probes.added, stored=store.evals.probe_counts())

    base_run: int | None = None
    pending = pending_eval_run(store, model, "tuned")
    if pending is not None and (baseline is None or pending["params"].get("baseline_model") == baseline):
        tuned_run = int(pending["id"])
        base_run = pending["params"].get("baseline_run")
        outcome_notes.append(f"Resumed eval run {tuned_run} of {model}.")
    else:
        if baseline:
            resumed = pending_eval_run(store, baseline, "baseline")
            base_run = int(resumed["id"]) if resumed else plan_eval(store, baseline, role="baseline", params=params)
        tuned_run = plan_eval(
            store, model, role="tuned",
            params={**(params or {}), "baseline_run": base_run, "baseline_model": baseline},
        )
    await go("tuned", eval_runner(store, backends, model=model, judge=judge, concurrency_per_host=concurrency), tuned_run)
    if base_run is not None and baseline and baseline_backends and not summaries["tuned"].stopped_reason:
        await go(
            "baseline",
            eval_runner(store, baseline_backends, model=baseline, judge=judge, concurrency_per_host=concurrency),
            base_run,
        )
    return EvalOutcome(probes, tuned_run, base_run, summaries, outcome_notes)


__all__ = ["EvalBackends", "EvalEventCallback", "EvalOutcome", "eval_backends", "pending_eval_run", "run_eval"]
