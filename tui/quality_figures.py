"""The figures the quality panel shows, from the engine's live report or, until it runs, the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.store import PairFilter, Store

if TYPE_CHECKING:
    from engine.quality import DatasetReport
    from engine.quality.review import ReviewVerdict

# The guide's pairs-per-corpus-size table, used only when the quality engine is absent.
_CORPUS_TARGETS = ((5, "500-1000"), (20, "1000-2000"), (50, "2000-5000"))


@dataclass(frozen=True)
class GaugeFigure:
    """One threshold: how far the dataset is from its target."""

    key: str
    label: str
    value: int
    target: int
    status: str  # ok | warning | missing
    message: str
    pair_filter: PairFilter


@dataclass
class DeepFigures:
    """The checks that compare pairs with each other: contradictions and near-duplicate groups."""

    state: str = "waiting"  # waiting | running | done | too-big | failed
    contradictions: list[tuple[int, int]] = field(default_factory=list)
    groups: int = 0
    pairs: int = 0
    duplicate_ids: set[int] = field(default_factory=set)  # every pair in a near-duplicate group
    stale: bool = False  # done, but pairs changed since (on a project too big to recheck by itself)


@dataclass(frozen=True)
class DiversityFigure:
    """The diversity check: one summary line, then each warning with the pairs it is about."""

    status: str  # ok | warning | too few
    summary: str
    warnings: tuple[tuple[str, PairFilter], ...] = ()
    pair_filter: PairFilter = field(default_factory=PairFilter)


@dataclass(frozen=True)
class ReviewFigure:
    """The review sample's verdict: "n of 20 reviewed, k failed: ready" and the pairs of the sample."""

    status: str  # ready | not ready | in progress | no sample
    message: str
    pair_filter: PairFilter | None = None


def review_figure(verdict: ReviewVerdict) -> ReviewFigure:
    """The panel's line for a review verdict."""
    if verdict.sample_id is None:
        return ReviewFigure(verdict.status, "Review sample: none drawn yet (s in Review).")
    return ReviewFigure(verdict.status, f"Review sample: {verdict.message}", PairFilter(ids=verdict.pair_ids))


@dataclass
class PanelFigures:
    """Everything the quality panel draws."""

    gauges: list[GaugeFigure] = field(default_factory=list)
    corpus_line: str = ""
    composition: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str, int]] = field(default_factory=list)  # check, title, count
    consistency: list[str] = field(default_factory=list)
    diversity: DiversityFigure | None = None
    review: ReviewFigure | None = None
    deep: DeepFigures = field(default_factory=DeepFigures)
    source: str = "store"


def _status(value: int, target: int) -> str:
    if value >= target:
        return "ok"
    return "warning" if value >= target / 2 else "missing"


def _check_titles() -> dict[str, str]:
    # Imported here: the quality package loads its detectors, which the first paint does not need.
    from engine.quality import CHECKS

    return {check_id: info.title for check_id, info in CHECKS.items()}


_GAUGE_FILTERS = {
    "total": PairFilter(),
    "pairs": PairFilter(),
    "min_pairs": PairFilter(),
    "refusals": PairFilter(kind="refusal"),
    "min_refusals": PairFilter(kind="refusal"),
    "refusal": PairFilter(kind="refusal"),
    "multi_hop": PairFilter(kind="multi_hop"),
    "min_multi_hop": PairFilter(kind="multi_hop"),
}


def figures_from_report(report: DatasetReport, store: Store) -> PanelFigures:
    """Turn a snapshot of the engine's live report into panel figures."""
    figures = PanelFigures(source="quality")
    corpus: list[str] = []
    for threshold in report.thresholds:
        name, message = threshold.name, threshold.message
        if name in _GAUGE_FILTERS:
            figures.gauges.append(
                GaugeFigure(name, name.replace("min_", "").replace("_", "-"), threshold.value, threshold.target,
                            threshold.status, message, _GAUGE_FILTERS[name])
            )
        elif "corpus" in name:
            corpus.append(message or f"{name}: {threshold.value} of {threshold.target}")
        elif threshold.status != "ok":
            figures.composition.append(message or f"{name}: {threshold.value} (target {threshold.target})")
    figures.corpus_line = " ".join(corpus)
    figures.composition.extend(report.composition_warnings)
    figures.consistency = list(report.consistency_warnings)
    figures.diversity = _diversity_figure(report)
    figures.review = review_figure(report.review)
    titles = _check_titles()
    counts = report.warning_counts or store.warning_counts()
    figures.warnings = [(c, titles.get(c, c), n) for c, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    return figures


def _diversity_figure(report: DatasetReport) -> DiversityFigure | None:
    diversity = report.diversity
    if not diversity.instructions:
        return None
    groups = {(g.kind, g.mode): g for g in diversity.groups}
    top = max(diversity.groups, key=lambda g: (g.share, g.pairs), default=None)
    summary = (f"Diversity: opener {top.share:.0%}, distinct-2 {diversity.distinct_2_rarefied:.2f}, "
               f"length spread {diversity.length_cv:.2f}") if top else "Diversity: no openers yet"
    warnings: list[tuple[str, PairFilter]] = []
    for text in diversity.warnings:
        # A warning about one kind and mode leads to its pairs; the distinct-2 one to every pair.
        target = next((PairFilter(kind=k, mode=m) for (k, m) in groups if f" {k} " in text and f"mode {m}" in text),
                      PairFilter())
        warnings.append((text, target))
    where = PairFilter(kind=top.kind, mode=top.mode) if top else PairFilter()
    return DiversityFigure(diversity.status, summary, tuple(warnings), where)


def figures_from_store(store: Store) -> PanelFigures:
    """Panel figures computed from store counts (used while the quality engine is unavailable)."""
    q = store.settings.quality
    kinds = store.pair_counts("kind")
    rejected = store.count_pairs(PairFilter(status="rejected"))
    total = sum(kinds.values()) - rejected
    figures = PanelFigures(source="store")
    for key, label, value, target, flt in (
        ("min_pairs", "pairs", total, q.min_pairs, PairFilter()),
        ("min_refusals", "refusals", kinds.get("refusal", 0), q.min_refusals, PairFilter(kind="refusal")),
        ("min_multi_hop", "multi-hop", kinds.get("multi_hop", 0), q.min_multi_hop, PairFilter(kind="multi_hop")),
    ):
        status = _status(value, target)
        message = "" if status == "ok" else f"{target - value} more {label} needed"
        figures.gauges.append(GaugeFigure(key, label, value, target, status, message, flt))
    n_docs = len(store.list_documents())
    wanted = next((text for limit, text in _CORPUS_TARGETS if n_docs <= limit), "5000+")
    figures.corpus_line = f"{n_docs} document(s): aim for {wanted} pairs"
    if total:
        for kind, n in kinds.items():
            if n / max(sum(kinds.values()), 1) > q.max_category_share and sum(kinds.values()) >= 10:
                figures.composition.append(f"{kind} is {n * 100 // sum(kinds.values())}% of pairs (max {q.max_category_share:.0%})")
    titles = _check_titles()
    figures.warnings = [(c, titles.get(c, c), n) for c, n in store.warning_counts().items()]
    from engine.quality.review import review_verdict  # with the checks above: after the first paint

    figures.review = review_figure(review_verdict(store))
    return figures


__all__ = ["DeepFigures", "DiversityFigure", "GaugeFigure", "PanelFigures", "ReviewFigure", "figures_from_report", "figures_from_store", "review_figure"]
