"""Evaluation of a fine-tuned model against its base: probes, the eval handler, the report, targeted jobs.

``build_probes`` keeps the probes in the project; ``run_eval`` asks them of a model and its
base through the one job runner; ``comparison`` and ``write_report`` report the figures side
by side; ``generate_more_like`` turns failing probes into a targeted generation run.
"""

from __future__ import annotations

from engine.evaluate.answers import (
    FAILURE_KINDS,
    FAILURE_TITLES,
    AnswerScorer,
    asks_to_clarify,
    declines,
)
from engine.evaluate.failures import (
    failing_probes,
    generate_more_like,
    plan_more_like,
    teaching_pairs,
)
from engine.evaluate.handler import EVAL_TASK, EvalHandler, current_probes, eval_runner, plan_eval
from engine.evaluate.probes import (
    PARAPHRASE_TASK,
    ParaphraseHandler,
    ProbeSet,
    build_probes,
    keeps_meaning,
    plan_paraphrases,
)
from engine.evaluate.report import (
    METRIC_ROWS,
    REPORT_FILE,
    RunMetrics,
    comparison,
    eval_runs,
    latest_comparison,
    metric_table,
    render_markdown,
    run_metrics,
    verdict_line,
    write_report,
)
from engine.evaluate.run import EvalBackends, EvalOutcome, eval_backends, pending_eval_run, run_eval

__all__ = [
    "EVAL_TASK",
    "FAILURE_KINDS",
    "FAILURE_TITLES",
    "METRIC_ROWS",
    "PARAPHRASE_TASK",
    "REPORT_FILE",
    "AnswerScorer",
    "EvalBackends",
    "EvalHandler",
    "EvalOutcome",
    "ParaphraseHandler",
    "ProbeSet",
    "RunMetrics",
    "asks_to_clarify",
    "build_probes",
    "comparison",
    "current_probes",
    "declines",
    "eval_backends",
    "eval_runner",
    "eval_runs",
    "failing_probes",
    "generate_more_like",
    "keeps_meaning",
    "latest_comparison",
    "metric_table",
    "pending_eval_run",
    "plan_eval",
    "plan_more_like",
    "plan_paraphrases",
    "render_markdown",
    "run_eval",
    "run_metrics",
    "teaching_pairs",
    "verdict_line",
    "write_report",
]
