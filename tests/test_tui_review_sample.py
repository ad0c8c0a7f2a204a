"""The review sample's keys with Pilot: s shows the stored sample, p/x mark pass/fail, S draws a new one; the panel shows the verdict."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Label
from textual.widgets.option_list import OptionDoesNotExist

from engine.store import Store
from tests.test_tui import SIZE, settle
from tests.test_tui_projects import build_review_project
from tui.app import PairForgeApp
from tui.panes.review import ReviewPane
from tui.widgets.pair_list import PairList
from tui.widgets.quality_panel import QualityPanel


@pytest.fixture
def review_project(tmp_path: Path) -> Path:
    return build_review_project(tmp_path / "proj")


async def _panel_review_line(app: PairForgeApp, pilot, wanted: str) -> str:  # type: ignore[no-untyped-def]
    """The panel's review line once it says ``wanted`` (it refreshes on a timer: up to 10 s on a busy machine)."""
    lines = app.screen.query_one(QualityPanel).query_one("#quality-lines")
    text = ""
    for _ in range(200):
        try:
            text = str(lines.get_option("review").prompt)  # type: ignore[attr-defined]
        except OptionDoesNotExist:  # the line is not drawn yet
            text = ""
        if wanted in text:
            return text
        await pilot.pause(0.05)
    raise AssertionError(f"the panel's review line never said {wanted!r}; it says {text!r}")


def _title(app: PairForgeApp) -> str:
    return str(app.screen.query_one("#review-title", Label).render())


async def test_sample_keys_mark_the_verdict_and_it_survives_a_restart(review_project: Path) -> None:
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await _panel_review_line(app, pilot, "Review sample: none drawn yet (s in Review).")
        await pilot.press("s")
        await settle(app, pilot)
        lst = app.screen.query_one(PairList)
        sample = list(lst.ids)
        assert len(sample) == 20 and "review sample" in _title(app) and "0 of 20 reviewed, 0 failed: 20 to go" in _title(app)
        await pilot.press(*["p"] * 18, "x", "x")  # each mark moves on to the next pair
        assert "20 of 20 reviewed, 2 failed: ready" in _title(app)
        await _panel_review_line(app, pilot, "Review sample: 20 of 20 reviewed, 2 failed: ready")
        await pilot.press("x")  # the same key again clears the last pair's verdict
        assert "19 of 20 reviewed, 1 failed: 1 to go" in _title(app)
        await pilot.press("x", "home", "x")
        assert lst.current_id == sample[1]
        assert "20 of 20 reviewed, 3 failed: not ready (more than 2 failed)" in _title(app)
        await _panel_review_line(app, pilot, "3 failed: not ready (more than 2 failed)")
        await pilot.press("c")
        outside = next(i for i in lst.ids if i not in sample)
        app.screen.query_one(ReviewPane).go_to_pair(outside)
        await pilot.press("p")  # a pair outside the sample: a warning, nothing marked
        await pilot.pause()
        assert lst.current_id == outside
    with Store.open(review_project) as store:
        stored = store.review_samples.current()
        assert stored is not None and [v for _, v in stored.pairs].count("fail") == 3
        assert all(v is not None for _, v in stored.pairs) and outside not in dict(stored.pairs)

    again = PairForgeApp(review_project)
    async with again.run_test(size=SIZE) as pilot:
        await settle(again, pilot)
        await _panel_review_line(again, pilot, "20 of 20 reviewed, 3 failed: not ready")
        await pilot.press("s")
        await settle(again, pilot)
        lst = again.screen.query_one(PairList)
        assert list(lst.ids) == sample  # the same sample, not a new draw
        assert "not ready" in _title(again)
        await pilot.press("S")
        await settle(again, pilot)
        assert "0 of 20 reviewed, 0 failed: 20 to go" in _title(again)
        await _panel_review_line(again, pilot, "Review sample: 0 of 20 reviewed, 0 failed: 20 to go")
        # Enter on the panel's line opens the (new) sample.
        await pilot.press("c", "ctrl+o")
        lines = again.screen.query_one(QualityPanel).query_one("#quality-lines")
        lines.highlighted = lines.get_option_index("review")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await pilot.pause()
        assert lst.pair_filter.ids is not None and len(lst.ids) == 20
    with Store.open(review_project) as store:
        entries = store.log_tail(step="review")
        assert [e.action for e in entries] == ["sample", "sample"]
        assert "the previous one stood at 20 of 20 reviewed, 3 failed" in entries[-1].message
