"""What the judge's scores are used for: the low-score warning, the distribution, curation, agreement."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.models import PairStatus, PairWarning, Severity
from engine.store import Store

__all__ = [
    "JUDGE_WARNING",
    "MIN_AGREEMENT_DECISIONS",
    "AgreementReport",
    "CurationPlan",
    "ScoreDistribution",
    "agreement_report",
    "apply_curation",
    "apply_threshold",
    "cohen_kappa",
    "judge_warning",
    "plan_curation",
    "score_distribution",
]

# The check id of the low-score warning; quality rechecks emit it from ``pair.score`` too.
JUDGE_WARNING = "judge_low_score"
MIN_AGREEMENT_DECISIONS = 20


def judge_warning(score: float | None, threshold: float, reason: str = "") -> PairWarning | None:
    """The ``judge_low_score`` warning for a pair scored ``score``, or None when it passes (or is unscored)."""
    if score is None or score >= threshold:
        return None
    why = f" ({reason.strip()[:200]})" if reason.strip() else ""
    return PairWarning(
        check=JUDGE_WARNING,
        severity=Severity.WARNING,
        reason=f"The judge scored this pair {score:.1f}/10, below the threshold of {threshold:g}{why}: "
        "edit it, or reject it with `pairforge curate`.",
    )


def apply_threshold(store: Store, threshold: float) -> tuple[int, int]:
    """Bring every pair's ``judge_low_score`` warning in line with its score and ``threshold``.

    Other warnings are kept. Returns (pairs now flagged, pairs whose warning was removed).
    """
    verdicts = store.verdicts.get()
    updates: dict[int, list[PairWarning]] = {}
    flagged = cleared = 0
    for pair in store.iter_pairs():
        assert pair.id is not None
        had = next((w for w in pair.warnings if w.check == JUDGE_WARNING), None)
        verdict = verdicts.get(pair.id)
        want = judge_warning(pair.score, threshold, verdict.reason if verdict else "")
        if want is not None:
            flagged += 1
        if had == want:
            continue
        if want is None:
            cleared += 1
        others = [w for w in pair.warnings if w.check != JUDGE_WARNING]
        updates[pair.id] = others + ([want] if want else [])
    if updates:
        store.set_warnings(updates)
    return flagged, cleared


@dataclass
class ScoreDistribution:
    """How the judge scored the dataset: counts per whole score, summary figures, the threshold."""

    threshold: float
    scored: int = 0
    unscored: int = 0
    below_threshold: int = 0
    mean: float | None = None
    median: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    histogram: dict[int, int] = field(default_factory=lambda: {i: 0 for i in range(1, 11)})

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


def score_distribution(store: Store, threshold: float) -> ScoreDistribution:
    """Count the pairs per whole score (1-10; 0-1 counts as 1, 10 as 10) and summarise the scores."""
    dist = ScoreDistribution(threshold=threshold)
    scores: list[float] = []
    for row in store.pair_rows(store.pair_ids()):
        score = row["score"]
        if score is None:
            dist.unscored += 1
            continue
        scores.append(float(score))
        dist.histogram[min(max(int(score), 1), 10)] += 1
        if score < threshold:
            dist.below_threshold += 1
    if scores:
        dist.scored = len(scores)
        dist.mean = round(statistics.fmean(scores), 2)
        dist.median = round(statistics.median(scores), 2)
        dist.minimum, dist.maximum = min(scores), max(scores)
    return dist


@dataclass
class CurationPlan:
    """What ``pairforge curate`` would do: the pairs to reject and those it leaves alone."""

    min_score: float
    reject: list[tuple[int, float]] = field(default_factory=list)  # (pair id, score)
    kept_accepted: int = 0  # below the bar, but a person accepted them
    already_rejected: int = 0
    unscored: int = 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {
            "min_score": self.min_score,
            "reject": [{"pair_id": i, "score": s} for i, s in self.reject],
            "kept_accepted": self.kept_accepted,
            "already_rejected": self.already_rejected,
            "unscored": self.unscored,
        }


def plan_curation(store: Store, min_score: float) -> CurationPlan:
    """The pending pairs scored below ``min_score``; accepted pairs are a person's decision and stay."""
    if not 0 <= min_score <= 10:
        raise ValueError(f"The minimum score {min_score:g} is outside 0-10: pick a score between 0 and 10.")
    plan = CurationPlan(min_score=min_score)
    for row in store.pair_rows(store.pair_ids()):
        score = row["score"]
        if score is None:
            plan.unscored += 1
        elif score < min_score:
            if row["status"] == PairStatus.ACCEPTED:
                plan.kept_accepted += 1
            elif row["status"] == PairStatus.REJECTED:
                plan.already_rejected += 1
            else:
                plan.reject.append((row["id"], float(score)))
    return plan


def apply_curation(store: Store, plan: CurationPlan) -> int:
    """Reject the plan's pairs as one undoable step and record it in the pipeline log; returns how many."""
    ids = [pair_id for pair_id, _ in plan.reject]
    changed = store.set_status(ids, PairStatus.REJECTED) if ids else 0
    store.log(
        "judge",
        "curated",
        changed,
        f"rejected {changed} pair(s) with a judge score below {plan.min_score:g} "
        f"(kept {plan.kept_accepted} accepted by a person; {plan.unscored} unscored); undo with `pairforge undo`",
        {"min_score": plan.min_score, "pair_ids": ids},
    )
    return changed


def cohen_kappa(tp: int, fp: int, fn: int, tn: int) -> float | None:
    """Cohen's kappa of two raters' accept/reject decisions; None when chance agreement is total.

    ``tp``: both accept; ``fp``: judge accepts, person rejects; ``fn``: judge rejects,
    person accepts; ``tn``: both reject.
    """
    n = tp + fp + fn + tn
    if n == 0:
        return None
    observed = (tp + tn) / n
    judge_yes, person_yes = (tp + fp) / n, (tp + fn) / n
    expected = judge_yes * person_yes + (1 - judge_yes) * (1 - person_yes)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1 - expected)


@dataclass
class AgreementReport:
    """How often the judge's accept/reject (score >= threshold) matches a person's decisions."""

    threshold: float
    decisions: int  # scored pairs a person accepted or rejected
    needed: int  # more decisions needed before the figures mean anything (0 when enough)
    both_accept: int = 0
    judge_accept_person_reject: int = 0
    judge_reject_person_accept: int = 0
    both_reject: int = 0
    agreement: float | None = None
    kappa: float | None = None

    @property
    def enough(self) -> bool:
        """True when there are enough decisions to report agreement."""
        return self.needed == 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {**asdict(self), "enough": self.enough}


def agreement_report(store: Store, threshold: float, *, minimum: int = MIN_AGREEMENT_DECISIONS) -> AgreementReport:
    """Compare the judge with the person on every scored pair they accepted or rejected."""
    tp = fp = fn = tn = 0
    for row in store.pair_rows(store.pair_ids()):
        if row["score"] is None or row["status"] == PairStatus.PENDING:
            continue
        judge_yes = row["score"] >= threshold
        person_yes = row["status"] == PairStatus.ACCEPTED
        if judge_yes and person_yes:
            tp += 1
        elif judge_yes:
            fp += 1
        elif person_yes:
            fn += 1
        else:
            tn += 1
    n = tp + fp + fn + tn
    report = AgreementReport(threshold=threshold, decisions=n, needed=max(minimum - n, 0))
    report.both_accept, report.judge_accept_person_reject = tp, fp
    report.judge_reject_person_accept, report.both_reject = fn, tn
    if report.enough and n:
        report.agreement = (tp + tn) / n
        report.kappa = cohen_kappa(tp, fp, fn, tn)
    return report
