"""The app's main job end to end: import sample_docs, plan, generate against the stand-in
Ollama server over real HTTP, watch the quality panel, review, export."""

from __future__ import annotations

import json
from pathlib import Path

from textual.widgets import Input, Select, Static

from engine.store import PairFilter, Store
from tests.fake_ollama import fake_ollama
from tests.test_tui import settle
from tui.app import PairForgeApp
from tui.dialogs import ConfirmScreen
from tui.panes.review import ReviewPane
from tui.widgets.pair_list import PairList

SIZE = (120, 40)


def panel_line(app: PairForgeApp, option_id: str) -> str:
    return str(app.screen.query_one("#quality-lines").get_option(option_id).prompt)  # type: ignore[attr-defined]


async def wait_until(pilot, condition, seconds: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not reached in time")


async def _fill_generate_form(app: PairForgeApp, pilot, url: str, target: int) -> None:  # type: ignore[no-untyped-def]
    """Open Generate and point it at the stand-in server's model, for ``target`` pairs."""
    await pilot.press("f3")
    app.screen.query_one("#gen-backend", Select).value = "ollama"
    app.screen.query_one("#gen-model", Input).value = "llama3.2:3b"
    app.screen.query_one("#gen-hosts", Input).value = url
    app.screen.query_one("#gen-target", Input).value = str(target)


async def test_import_generate_review_export(tmp_path: Path, sample_docs: Path) -> None:
    root = tmp_path / "proj"
    Store.init(root).close()
    app = PairForgeApp(root)
    with fake_ollama() as server:
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            # Import.
            await pilot.press("f2")
            app.screen.query_one("#import-path", Input).value = str(sample_docs)
            await pilot.press("enter")
            await settle(app, pilot, 0.6)
            store = app.store
            assert store is not None and len(store.list_documents()) >= 8
            before = store.count_pairs()
            pairs_line = panel_line(app, "gauge:pairs")
            # Plan and generate.
            await _fill_generate_form(app, pilot, server.url, 12)
            await pilot.press("ctrl+l")
            await settle(app, pilot)
            assert app.screen.query_one("#gen-models", Select)._options  # type: ignore[attr-defined]
            await pilot.press("ctrl+n")
            plan_text = str(app.screen.query_one("#gen-plan-view", Static).render())
            assert "Plan: 12 pairs" in plan_text
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: app.screen.query_one("#generate")._queue is None and store.job_counts()["done"] > 0)  # type: ignore[attr-defined]
            assert store.count_pairs() > before
            assert "pairs/min" in str(app.screen.query_one("#gen-stats", Static).render())
            await wait_until(pilot, lambda: panel_line(app, "gauge:pairs") != pairs_line, 5)
            # Review the new pairs: accept three from the keyboard.
            await pilot.press("f4")
            app.screen.query_one("#review").show_filter(PairFilter(status="pending"))  # type: ignore[attr-defined]
            await pilot.pause()
            generated = app.screen.query_one(PairList).ids[-12:]
            app.screen.query_one(ReviewPane).go_to_pair(generated[0])
            await pilot.press("a", "a", "a")
            assert store.count_pairs(PairFilter(status="accepted")) == 3
            # Export twice: the second asks before overwriting.
            await pilot.press("f5")
            out = tmp_path / "out"
            app.screen.query_one("#exp-out", Input).value = str(out)
            await pilot.press("ctrl+r")
            await settle(app, pilot, 0.2)
            await wait_until(pilot, lambda: "Wrote" in str(app.screen.query_one("#exp-summary").render()), 10)
            rows = [json.loads(line) for line in next(out.rglob("*.jsonl")).read_text().splitlines()]
            assert rows and "messages" in rows[0]
            assert "README" in str(app.screen.query_one("#exp-card", Static).render()) or (out / "README.md").exists()
            await pilot.press("ctrl+r")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await settle(app, pilot, 0.2)
    assert any(r.path.startswith("/api/chat") for r in server.requests)  # type: ignore[attr-defined]


async def test_a_run_starts_with_the_probe_and_a_model_without_json_stops_there(
    tmp_path: Path, sample_docs: Path
) -> None:
    """The Generate section shows the probe as a run's first step; a model that cannot
    write the answer schema stops it with one sentence, and no job is tried or failed."""
    from engine.ingest import import_paths

    root = tmp_path / "proj"
    store = Store.init(root)
    import_paths(store, [sample_docs])
    store.close()
    app = PairForgeApp(root)
    with fake_ollama() as server:
        server.set_fault("invalid_json")
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            await _fill_generate_form(app, pilot, server.url, 12)
            await pilot.press("ctrl+n")
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: app.screen.query_one("#generate")._queue is None)  # type: ignore[attr-defined]
            await settle(app, pilot)
            messages = [n.message for n in app._notifications]
            stopped = [m for m in messages if m.startswith("The pre-flight probe stopped the run")]
            assert stopped and "not valid JSON" in stopped[0] and "--no-probe" in stopped[0]
            counts = app.store.job_counts() if app.store else {}
            assert counts["failed"] == 0 and counts["done"] == 0 and counts["queued"] == 12


async def test_start_with_nothing_planned_or_queued_plans_from_the_form_first(tmp_path: Path, sample_docs: Path) -> None:
    """Start on a project with nothing queued used to finish at once with "0.0 pairs/min": it plans first now."""
    from engine.ingest import import_paths

    root = tmp_path / "proj"
    store = Store.init(root)
    import_paths(store, [sample_docs])
    store.close()
    app = PairForgeApp(root)
    with fake_ollama() as server:
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            await _fill_generate_form(app, pilot, server.url, 6)
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: app.screen.query_one("#generate")._queue is None and app.store.job_counts()["done"] > 0)  # type: ignore[attr-defined,union-attr]
            assert "Plan: 6 pairs" in str(app.screen.query_one("#gen-plan-view", Static).render())
            assert app.store is not None and app.store.count_pairs() >= 6
