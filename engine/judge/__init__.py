"""The local judge: score every pair with a model against a versioned rubric, and curate by score."""

from __future__ import annotations

from engine.judge.config import JudgeConfig, make_judge_backends, resolve_judge_config
from engine.judge.handler import GIVE_UP_AFTER, JUDGE_TASK, JudgeHandler, judge_runner, plan_judging
from engine.judge.policy import complete_judge_job, judge_candidates
from engine.judge.prompts import build_judge_messages
from engine.judge.rubric import (
    RUBRIC,
    RUBRIC_VERSION,
    Criterion,
    JudgeVerdictOutput,
    RefusalVerdictOutput,
    Rubric,
    compute_total,
    criteria_for,
    verdict_model_for,
)
from engine.judge.scoring import (
    JUDGE_WARNING,
    MIN_AGREEMENT_DECISIONS,
    AgreementReport,
    CurationPlan,
    ScoreDistribution,
    agreement_report,
    apply_curation,
    apply_threshold,
    cohen_kappa,
    judge_warning,
    plan_curation,
    score_distribution,
)

__all__ = [
    "GIVE_UP_AFTER",
    "JUDGE_TASK",
    "JUDGE_WARNING",
    "MIN_AGREEMENT_DECISIONS",
    "RUBRIC",
    "RUBRIC_VERSION",
    "AgreementReport",
    "Criterion",
    "CurationPlan",
    "JudgeConfig",
    "JudgeHandler",
    "JudgeVerdictOutput",
    "RefusalVerdictOutput",
    "Rubric",
    "ScoreDistribution",
    "agreement_report",
    "apply_curation",
    "apply_threshold",
    "build_judge_messages",
    "cohen_kappa",
    "complete_judge_job",
    "compute_total",
    "criteria_for",
    "judge_candidates",
    "judge_runner",
    "judge_warning",
    "make_judge_backends",
    "plan_curation",
    "plan_judging",
    "resolve_judge_config",
    "score_distribution",
    "verdict_model_for",
]
