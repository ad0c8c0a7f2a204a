"""The app's quality model: when the cross-pair checks run on their own, and what they show when they do not."""

from __future__ import annotations

from engine.models import Pair
from engine.quality import LiveReport
from engine.store import Store
from tui.quality_figures import DeepFigures
from tui.quality_model import QualityModel


def _model(project: Store, pairs: int, *, auto_max_pairs: int) -> QualityModel:
    project.add_pairs([Pair.simple(f"Question {i} about queues?", f"Answer {i} about how queues retry.") for i in range(pairs)])
    model = QualityModel(auto_max_pairs=auto_max_pairs, quiet_s=5.0)
    model.report_built(LiveReport.build(project), now=100.0)
    return model


def test_checks_are_due_once_the_report_is_built_and_again_when_writes_pause(project: Store) -> None:
    model = _model(project, 3, auto_max_pairs=10)
    assert model.take_due(100.0) and not model.take_due(100.0)  # taking it clears it
    model.pairs_changed(now=200.0)
    assert not model.take_due(204.0)
    assert model.take_due(205.0)


def test_nothing_is_due_while_the_checks_run(project: Store) -> None:
    model = _model(project, 3, auto_max_pairs=10)
    model.set_deep(DeepFigures("running", pairs=3))
    assert model.next_deep(forced=True) is None
    assert not model.take_due(100.0)


def test_a_large_project_checks_only_when_asked_and_marks_old_results(project: Store) -> None:
    model = _model(project, 12, auto_max_pairs=10)
    assert model.take_due(100.0)
    assert not model.near_duplicates_available()
    assert model.next_deep(forced=False) == DeepFigures("too-big", pairs=12)
    assert model.next_deep(forced=True) == DeepFigures("running", pairs=12)
    model.set_deep(DeepFigures("done", pairs=12))
    shown = model.next_deep(forced=False)
    assert shown is not None and shown.state == "done" and shown.stale
    model.set_deep(shown)
    model.pairs_changed(now=200.0)
    assert not model.take_due(1_000.0)  # stale results wait to be asked for again
