"""SVG snapshots of every screen at 80x24 and 120x40, in two themes, on a fixed project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.widgets import Input

from engine.store import Store
from tests.test_tui import quality_report_shown, settle
from tests.test_tui_projects import build_review_project
from tui.app import PairForgeApp

os.environ["TEXTUAL_ANIMATIONS"] = "none"

# Screen name -> keys that open it from the start (Review).
SCREENS = {
    "review": [],
    "documents": ["f2"],
    "generate": ["f3"],
    "export": ["f5"],
    "settings": ["f6"],
    "log": ["f7"],
    "eval": ["f8"],
    "help": ["f1"],
}
# Every screen at both sizes in the dark and the light theme.
CASES = [
    (screen, size, theme)
    for screen in SCREENS
    for theme in ("pairforge-dark", "pairforge-light")
    for size in ((80, 24), (120, 40))
]


@pytest.mark.parametrize(
    ("screen", "size", "theme"), CASES, ids=[f"{c[0]}-{c[1][0]}x{c[1][1]}-{c[2]}" for c in CASES]
)
def test_screen_snapshot(snap_compare, tmp_path: Path, screen: str, size: tuple[int, int], theme: str) -> None:  # type: ignore[no-untyped-def]
    root = build_review_project(tmp_path / "proj")
    with Store.open(root) as store:
        store.change_settings({"tui": {"theme": theme}})
    app = PairForgeApp(root)

    async def open_screen(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(app, pilot)
        # The panel first shows quick counts, then the full report: picture the settled state.
        await quality_report_shown(app, pilot)
        await settle(app, pilot)
        for key in SCREENS[screen]:
            await pilot.press(key)
        # A blinking cursor would make the picture depend on timing.
        for box in app.screen.query(Input):
            box.cursor_blink = False
        await settle(app, pilot)

    assert snap_compare(app, terminal_size=size, run_before=open_screen)


def test_first_run_snapshot(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A new project at 80x24: Documents, the path box focused, the guide on its first step."""
    root = tmp_path / "proj"
    Store.init(root, name="first-run").close()
    app = PairForgeApp(root)

    async def opened(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(app, pilot)
        await quality_report_shown(app, pilot)
        for box in app.screen.query(Input):
            box.cursor_blink = False
        await settle(app, pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=opened)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_eval_snapshot(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    """Eval with a stored run of a well-behaved model against a mimic: figures side by side, probes, a detail."""
    from tests.test_tui_eval import build_eval_project

    root = build_eval_project(tmp_path / "proj")
    app = PairForgeApp(root)

    async def opened(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(app, pilot)
        await quality_report_shown(app, pilot)
        await settle(app, pilot)
        await pilot.press("f8")
        for box in app.screen.query(Input):
            box.cursor_blink = False
        await settle(app, pilot)

    assert snap_compare(app, terminal_size=size, run_before=opened)


def test_copied_span_snapshot(snap_compare, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Review of a pair that copies a sentence of its source: the copied run marked in the answer and the source."""
    from engine.models import Chunk, Document, Pair
    from engine.quality import recheck

    source = (
        "Tidewater keeps a job's payload for seven days. When a job fails, the worker retries it three times with "
        "exponential backoff, starting at two seconds and doubling the wait each time. Operators requeue dead jobs by hand."
    )
    root = tmp_path / "proj"
    with Store.init(root, name="copied-span") as store:
        store.save_document(
            Document(path="worker.md", format="markdown", sha256="1" * 64, size=len(source), title="Worker guide"),
            [Chunk(ordinal=0, text=source, start=0, end=len(source), heading_path=["Worker", "Retries"])],
        )
        chunk_id = store.list_chunks()[0].id
        store.add_pairs([Pair.simple(
            "How does the worker deal with a job that fails?",
            "It does not give up at once: the worker retries it three times with exponential backoff, starting at "
            "two seconds and doubling the wait each time. Past that, the job waits for an operator.",
            sources=[chunk_id],
        )])
        recheck(store)
        assert store.get_pairs(store.pair_ids())[0].warnings[0].spans
    app = PairForgeApp(root)

    async def opened(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(app, pilot)
        await quality_report_shown(app, pilot)
        await settle(app, pilot)

    assert snap_compare(app, terminal_size=(120, 40), run_before=opened)
