"""The Eval section with Pilot: runs listed, base vs tuned, filters, the jump to pairs, targeted jobs, a run from the app.

The models under test are played by tests/fake_ollama.py's ``eval_responder`` over real HTTP
(no real Ollama can run here): "mimic" recites the corpus, "assistant" behaves.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import DataTable, Input, Select, Static

from engine.evaluate import run_eval
from engine.generate.backends import make_backend
from engine.store import Store
from tests.fake_ollama import FakeOllama, eval_responder
from tests.test_tui import settle
from tests.test_tui_projects import build_review_project
from tui.app import PairForgeApp
from tui.panes.eval import EvalPane
from tui.panes.review import ReviewPane

MIMIC, ASSISTANT, GENERATOR = "mimic:latest", "assistant:latest", "qwen2.5:7b"


def build_split_project(root: Path) -> list[str]:
    """The review project, every third pair in validation; returns its chunk texts (the stand-in's corpus).

    Its pairs are near duplicates of each other, so the real split would keep them in one
    group on one side: the sides are set directly.
    """
    build_review_project(root)
    with Store.open(root) as store:
        store.set_splits({i: "validation" if i % 3 == 0 else "train" for i in store.pair_ids()})
        return [c.text for c in store.list_chunks()]


def store_eval(root: Path, url: str) -> None:
    """Evaluate the assistant against the mimic on the project at ``root``, served at ``url``, and point it there."""
    with Store.open(root) as store:
        store.change_settings({"generation": {"backend": "ollama", "hosts": [url], "model": GENERATOR}})

        async def go() -> None:
            backends = [make_backend("ollama", m, url) for m in (ASSISTANT, MIMIC, GENERATOR, GENERATOR)]
            try:
                await run_eval(
                    store, model=ASSISTANT, backends=backends[:1], baseline=MIMIC, baseline_backends=backends[1:2],
                    paraphrase_backends=backends[2:3], judge=backends[3], concurrency=2,
                )
            finally:
                for backend in backends:
                    await backend.aclose()

        asyncio.run(go())


def build_eval_project(root: Path) -> Path:
    """The split review project with an eval of the assistant against the mimic stored."""
    texts = build_split_project(root)
    with FakeOllama([MIMIC, ASSISTANT, GENERATOR], responder=eval_responder(texts)) as server:
        store_eval(root, server.url)
    return root


def shown_text(widget: Static) -> str:
    """What a Static shows, as plain text (its content rendered by Rich)."""
    from rich.console import Console

    console = Console(width=160, color_system=None)
    with console.capture() as captured:
        console.print(widget.content)
    return captured.get()


async def _open_eval(app: PairForgeApp, pilot) -> EvalPane:  # type: ignore[no-untyped-def]
    await settle(app, pilot)
    await pilot.press("f8")
    await settle(app, pilot)
    return app.screen.query_one(EvalPane)


async def test_eval_section_shows_both_models_and_filters(tmp_path: Path) -> None:
    root = await asyncio.to_thread(build_eval_project, tmp_path / "proj")
    app = PairForgeApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await _open_eval(app, pilot)
        metrics = pane.query_one("#eval-metrics", Static)
        shown = shown_text(metrics)
        assert f"tuned: {ASSISTANT}" in shown and f"base: {MIMIC}" in shown and "refusal recall" in shown
        table = pane.query_one("#eval-probes", DataTable)
        everything = table.row_count
        assert everything > 20
        # Failing only (of the tuned model): fewer rows, every one failing.
        pane.query_one("#eval-filter", Select).value = "failing"
        await settle(app, pilot)
        failing = table.row_count
        assert 0 < failing < everything
        # Out-of-corpus probes: the mimic answered them, the assistant declined.
        pane.query_one("#eval-filter", Select).value = "kind:out_of_corpus"
        await settle(app, pilot)
        assert table.row_count >= 10
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        assert all(str(row[3]) == "wrongly answered" for row in rows)
        # (The project's own refusal pairs in validation ask about Tidewater itself: the assistant answers those.)
        assert sum(str(row[2]) == "pass" for row in rows) >= 10
        # A search narrows the list to questions holding the words.
        pane.query_one("#eval-filter", Select).value = "all"
        pane.query_one("#eval-search", Input).value = "set it up"
        await settle(app, pilot)
        assert table.row_count == 1
        detail = shown_text(pane.query_one("#eval-detail", Static))
        assert "How do I set it up?" in detail and "Which part do you mean?" in detail


async def test_a_failing_probe_leads_to_its_pairs_and_to_targeted_jobs(tmp_path: Path) -> None:
    root = await asyncio.to_thread(build_eval_project, tmp_path / "proj")
    with Store.open(root) as store:
        mimic_run = next(r["id"] for r in store.evals.runs() if r["params"]["model"] == MIMIC)
    app = PairForgeApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        pane = await _open_eval(app, pilot)
        # Show the mimic's run: every in-corpus probe failed there.
        select = pane.query_one("#eval-run", Select)
        select.value = mimic_run
        pane.query_one("#eval-filter", Select).value = "kind:validation"
        await settle(app, pilot)
        table = pane.query_one("#eval-probes", DataTable)
        table.focus()
        await pilot.press("p")
        await settle(app, pilot)
        review = app.screen.query_one(ReviewPane)
        assert app.screen.query_one("#sections").current == "review"
        with Store.open(root) as store:
            shown = set(review.query_one("#pair-list").ids)  # type: ignore[attr-defined]
            assert shown and all(store.get_pair(i).split != "validation" for i in shown)
        await pilot.press("f8")
        await settle(app, pilot)
        pane.query_one("#eval-probes", DataTable).focus()
        await pilot.press("m")
        await settle(app, pilot)
        with Store.open(root) as store:
            generate_runs = [r for r in store.list_runs() if r["task"] == "generate"]
            assert generate_runs and generate_runs[-1]["queued"] >= 2


async def test_an_eval_started_from_the_app_is_stored_and_shown(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    texts = build_split_project(root)
    with FakeOllama([MIMIC, ASSISTANT, GENERATOR], responder=eval_responder(texts)) as server:
        with Store.open(root) as store:
            store.change_settings({"generation": {"backend": "ollama", "hosts": [server.url], "model": GENERATOR}})
        app = PairForgeApp(root)
        async with app.run_test(size=(120, 40)) as pilot:
            pane = await _open_eval(app, pilot)
            pane.query_one("#eval-model", Input).value = MIMIC
            pane.query_one("#eval-baseline", Input).value = ASSISTANT
            pane.query_one("#eval-probes", DataTable).focus()
            await pilot.press("ctrl+r")
            for _ in range(400):
                if not pane.eval_running:
                    break
                await pilot.pause(0.05)
            await settle(app, pilot)
            assert not pane.eval_running, shown_text(pane.query_one("#eval-status", Static))
            assert "finished" in shown_text(pane.query_one("#eval-status", Static))
            assert pane.query_one("#eval-probes", DataTable).row_count > 20
    with Store.open(root) as store:
        runs = store.evals.runs()
        assert [r["params"]["model"] for r in runs] == [ASSISTANT, MIMIC]
        assert all(r["answered"] == r["jobs"] for r in runs)
