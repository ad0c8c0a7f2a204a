"""What an eval run measured, side by side for the tuned model and its base, as figures and as markdown.

Per run: the verbatim-copy rate (answers the gate's mimicry measure flags, against the
whole corpus) and the mean copied share; the non-answer rate (the gate's ``non_answer``
check) on in-corpus probes; refusal precision (of the declined probes, how many were out of
the corpus) and recall (of the out-of-corpus probes, how many were declined); the
clarification rate on ambiguous probes; agreement with the references scored by the judge
(mean, 0-10) on validation questions and on their paraphrases apart, which shows whether the
model only learnt the training wording; how often each gate check fired on the answers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.evaluate.answers import FAILURE_KINDS, FAILURE_TITLES
from engine.evaluate.handler import EVAL_TASK
from engine.store.evals import (
    AMBIGUOUS,
    IN_CORPUS_KINDS,
    OUT_OF_CORPUS,
    PARAPHRASE,
    VALIDATION,
    Probe,
    ProbeAnswer,
)

if TYPE_CHECKING:
    from engine.store import Store

REPORT_FILE = "EVAL_REPORT.md"


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


@dataclass
class RunMetrics:
    """The figures of one eval run (None where the run had no probe to measure it on)."""

    run_id: int
    model: str
    role: str
    answered: int
    probes: int
    copy_rate: float | None
    mean_copied_share: float | None
    non_answer_rate: float | None
    refusal_precision: float | None
    refusal_recall: float | None
    clarification_rate: float | None
    agreement: float | None
    agreement_paraphrased: float | None
    failed: int
    failures: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)

    @property
    def mimic(self) -> bool:
        """True when the model mostly recites the corpus and rarely declines: it learnt the text, not the task."""
        return (self.copy_rate or 0) >= 0.5 and (self.refusal_recall or 0) < 0.5

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {**self.__dict__, "mimic": self.mimic}


def run_metrics(store: Store, run_id: int, probes: dict[int, Probe] | None = None) -> RunMetrics:
    """The figures of eval run ``run_id`` from its stored answers."""
    run = next((r for r in store.evals.runs() if r["id"] == run_id), None)
    params = run["params"] if run else {}
    probes = probes if probes is not None else {p.id or 0: p for p in store.evals.probes()}
    answers = store.evals.answers(run_id)
    by_kind: dict[str, list[ProbeAnswer]] = {}
    for answer in answers.values():
        probe = probes.get(answer.probe_id)
        if probe is not None:
            by_kind.setdefault(probe.kind, []).append(answer)
    in_corpus = [a for kind in IN_CORPUS_KINDS for a in by_kind.get(kind, [])]
    outside = by_kind.get(OUT_OF_CORPUS, [])
    ambiguous = by_kind.get(AMBIGUOUS, [])
    declined = [a for a in [*in_corpus, *outside] if a.declined]
    flags: Counter[str] = Counter(f["check"] for a in answers.values() for f in a.flags)
    failures: Counter[str] = Counter(kind for a in answers.values() for kind in a.failures)

    def scores(kind: str) -> list[float]:
        return [a.agreement for a in by_kind.get(kind, []) if a.agreement is not None]

    return RunMetrics(
        run_id=run_id, model=str(params.get("model", "")), role=str(params.get("role", "")),
        answered=len(answers), probes=int(run["jobs"]) if run else len(answers),
        copy_rate=_rate(sum(a.copied for a in in_corpus), len(in_corpus)),
        mean_copied_share=_mean([a.copy_share for a in in_corpus]),
        non_answer_rate=_rate(sum("non_answer" in a.failures for a in in_corpus), len(in_corpus)),
        refusal_precision=_rate(sum(1 for a in declined if a in outside), len(declined)),
        refusal_recall=_rate(sum(a.declined for a in outside), len(outside)),
        clarification_rate=_rate(sum(a.clarified for a in ambiguous), len(ambiguous)),
        agreement=_mean(scores(VALIDATION)), agreement_paraphrased=_mean(scores(PARAPHRASE)),
        failed=sum(1 for a in answers.values() if a.failed),
        failures={k: failures[k] for k in FAILURE_KINDS if failures[k]},
        flags=dict(flags.most_common()),
    )


def eval_runs(store: Store) -> list[dict[str, Any]]:
    """Every eval run, newest first, with its model, role and the run it was compared with."""
    return list(reversed(store.evals.runs()))


def latest_comparison(store: Store) -> tuple[int | None, int | None]:
    """(tuned run, baseline run) of the latest eval: the newest tuned run and the run it was compared with."""
    for run in eval_runs(store):
        params = run["params"]
        if params.get("role") == "tuned":
            return run["id"], params.get("baseline_run")
    return None, None


def comparison(store: Store, run_id: int | None = None) -> dict[str, Any]:
    """The tuned run ``run_id`` (default: the latest) and its baseline: metrics side by side and every probe.

    Each probe row has its kind, question, reference and per model the answer, flags and failures.
    """
    tuned_id, base_id = latest_comparison(store) if run_id is None else (run_id, None)
    if run_id is not None:
        run = next((r for r in store.evals.runs() if r["id"] == run_id), None)
        base_id = run["params"].get("baseline_run") if run else None
    probes = {p.id or 0: p for p in store.evals.probes()}
    runs = [r for r in (tuned_id, base_id) if r is not None]
    metrics = [run_metrics(store, r, probes) for r in runs]
    answers = {r: store.evals.answers(r) for r in runs}
    rows = []
    for probe_id in sorted({pid for a in answers.values() for pid in a}):
        probe = probes.get(probe_id)
        if probe is None:
            continue
        rows.append({
            "probe_id": probe_id, "kind": probe.kind, "question": probe.question, "reference": probe.reference,
            "topic": probe.topic, "parent_id": probe.parent_id, "chunk_ids": list(probe.chunk_ids),
            "answers": {
                str(r): {
                    "answer": answers[r][probe_id].answer, "failures": list(answers[r][probe_id].failures),
                    "flags": [f["check"] for f in answers[r][probe_id].flags],
                    "agreement": answers[r][probe_id].agreement,
                }
                for r in runs if probe_id in answers[r]
            },
        })
    return {"runs": [m.as_dict() for m in metrics], "probes": rows}


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}/10"


# (label, attribute, formatter, better when higher)
METRIC_ROWS: tuple[tuple[str, str, Any, bool], ...] = (
    ("verbatim copies", "copy_rate", _pct, False),
    ("copied share (mean)", "mean_copied_share", _pct, False),
    ("non-answers", "non_answer_rate", _pct, False),
    ("refusal precision", "refusal_precision", _pct, True),
    ("refusal recall", "refusal_recall", _pct, True),
    ("clarifies ambiguous", "clarification_rate", _pct, True),
    ("agreement (validation)", "agreement", _score, True),
    ("agreement (paraphrased)", "agreement_paraphrased", _score, True),
)


def metric_table(metrics: list[dict[str, Any]]) -> list[list[str]]:
    """Rows of (metric, one value per run) for a terminal or markdown table."""
    rows = [[label, *(fmt(m[attr]) for m in metrics)] for label, attr, fmt, _ in METRIC_ROWS]
    rows.append(["failed probes", *(f"{m['failed']}/{m['answered']}" for m in metrics)])
    return rows


def verdict_line(metric: dict[str, Any]) -> str:
    """One sentence saying what kind of model the figures describe."""
    if metric["mimic"]:
        return (f"{metric['model']} recites the corpus ({_pct(metric['copy_rate'])} verbatim copies) and declines "
                f"{_pct(metric['refusal_recall'])} of out-of-corpus questions: it learnt the text, not to answer.")
    return (f"{metric['model']} answers in its own words ({_pct(metric['copy_rate'])} verbatim copies) and declines "
            f"{_pct(metric['refusal_recall'])} of out-of-corpus questions.")


def render_markdown(store: Store, report: dict[str, Any]) -> str:
    """The eval report as markdown: figures side by side, then every failing probe with its answer and reference."""
    metrics = report["runs"]
    lines = [f"# Eval report: {store.settings.name}", "",
             f"Written {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by `pairforge eval`.", ""]
    if not metrics:
        return "\n".join([*lines, "No eval run yet.", ""])
    header = ["metric", *(f"{m['model']} ({m['role']}, run {m['run_id']})" for m in metrics)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in metric_table(metrics)]
    lines += ["", *(f"- {verdict_line(m)}" for m in metrics), ""]
    flags = Counter[str]()
    for m in metrics:
        flags.update(m["flags"])
    if flags:
        lines += ["## Gate checks on the answers", "", "| check | " + " | ".join(m["model"] for m in metrics) + " |",
                  "|---|" + "---|" * len(metrics)]
        lines += [f"| {check} | " + " | ".join(str(m["flags"].get(check, 0)) for m in metrics) + " |"
                  for check, _ in flags.most_common()]
        lines.append("")
    lines += ["## Failing probes", ""]
    first = str(metrics[0]["run_id"])
    failing = [row for row in report["probes"] if row["answers"].get(first, {}).get("failures")]
    if not failing:
        lines.append("None.")
    for row in failing[:200]:
        answer = row["answers"][first]
        why = ", ".join(FAILURE_TITLES.get(f, f) for f in answer["failures"])
        lines += [f"### Probe {row['probe_id']} ({row['kind']}): {why}", "", f"**Question:** {row['question']}", "",
                  f"**Answer ({metrics[0]['model']}):** {answer['answer']}", ""]
        if row["reference"]:
            lines += [f"**Reference:** {row['reference']}", ""]
    if len(failing) > 200:
        lines.append(f"... and {len(failing) - 200} more (`pairforge eval --report-only --json`).")
    lines += ["", "Generate targeted pairs for these with `pairforge eval --more-like failing`.", ""]
    return "\n".join(lines)


def report_dir(store: Store) -> Path:
    """Where the markdown report goes: next to the latest export, else in the project folder."""
    for entry in reversed(store.log_tail(200, step="export")):
        out_dir = (entry.detail or {}).get("out_dir")
        if out_dir and Path(out_dir).is_dir():
            return Path(out_dir)
    return store.root


def write_report(store: Store, report: dict[str, Any], path: Path | None = None) -> Path:
    """Write the markdown report (to ``path``, else :data:`REPORT_FILE` in :func:`report_dir`); returns its path."""
    from engine.export.atomic import write_text_atomic

    target = path or report_dir(store) / REPORT_FILE
    write_text_atomic(target, render_markdown(store, report))
    return target


__all__ = [
    "EVAL_TASK",
    "METRIC_ROWS",
    "REPORT_FILE",
    "RunMetrics",
    "comparison",
    "eval_runs",
    "latest_comparison",
    "metric_table",
    "render_markdown",
    "report_dir",
    "run_metrics",
    "verdict_line",
    "write_report",
]
