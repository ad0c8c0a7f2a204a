"""End-to-end tests of the app with Pilot, against the real engine and store."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from textual.binding import Binding
from textual.color import Color
from textual.widgets import ContentSwitcher, DataTable, Input, Static
from textual.worker import WorkerState

from engine.models import Pair, PairKind, PairStatus
from engine.settings import load_settings
from engine.store import PairFilter, Store
from tests.test_tui_projects import HOSTILE_INSTRUCTION, build_review_project
from tui.app import PairForgeApp
from tui.dialogs import BulkActionScreen, ConfirmScreen
from tui.keys import all_keys
from tui.panes.review import ReviewPane
from tui.screens.help import HelpScreen
from tui.widgets.pair_list import PairList
from tui.widgets.quality_panel import QualityPanel
from tui.widgets.text_pane import TextPane

SIZE = (120, 40)
APP_WORKER_GROUPS = {"live-report", "quality", "deep-checks", "near-duplicates", "import", "export", "generation", "models", "flow-guide"}


async def settle(app: PairForgeApp, pilot, delay: float = 0.0) -> None:  # type: ignore[no-untyped-def]
    """Let workers finish and messages be handled."""
    await pilot.pause(delay)
    # Only the app's own workers: the directory tree keeps a loader worker alive for good,
    # and a cancelled worker that never started is never "complete".
    for _ in range(400):
        busy = [w for w in app.workers if w.group in APP_WORKER_GROUPS and not w.is_cancelled
                and w.state in (WorkerState.PENDING, WorkerState.RUNNING)]
        waiting = [p for p in app.screen.query(ReviewPane) if p.looking_up_duplicates]
        if not busy and not waiting:
            break
        await pilot.pause(0.025)
    await pilot.pause()


async def quality_report_shown(app: PairForgeApp, pilot) -> None:  # type: ignore[no-untyped-def]
    """Wait until the quality panel shows the full quality report (not the quick counts) and its cross-pair checks."""
    panel = app.screen.query_one(QualityPanel)
    for _ in range(400):
        figures = panel.figures
        if figures is not None and figures.source == "quality" and figures.deep.state in ("done", "too-big", "failed"):
            return
        await pilot.pause(0.025)
    raise AssertionError("the quality report never reached the panel")


def review(app: PairForgeApp) -> ReviewPane:
    return app.screen.query_one(ReviewPane)


def statuses(root: Path) -> dict[int, str]:
    with Store.open(root) as store:
        return {p.id or 0: str(p.status) for p in store.iter_pairs()}


@pytest.fixture
def review_project(tmp_path: Path) -> Path:
    return build_review_project(tmp_path / "proj")


async def test_text_from_pairs_is_never_markup_or_control_codes(review_project: Path) -> None:
    """A pair holding Rich markup and an ANSI escape shows both literally, minus the escape."""
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        pane = app.screen.query_one("#pair-text", TextPane)
        shown = pane.text
        at = shown.plain.index("[bold red]x[/]")
        # No style came from the text: the only spans are the pane's own headings and meta line.
        assert not [span for span in shown.spans if span.start <= at < span.end]
        assert "\x1b" not in shown.plain
        drawn = "".join(pane.render_line(y).text for y in range(pane.size.height))
        assert "[bold red]x[/]" in drawn and "\x1b" not in drawn
        line = app.screen.query_one(PairList).render_line(0)
        assert "[bold red]x[/]" in line.text and "\x1b" not in line.text
        assert HOSTILE_INSTRUCTION.split("\x1b")[0] in shown.plain


async def test_review_keys_save_at_once_and_undo_redo(review_project: Path) -> None:
    """a, r, d, u, U, j/k change the store immediately; undo and redo walk the history."""
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        lst = app.screen.query_one(PairList)
        first, second, third = lst.ids[:3]
        await pilot.press("a")  # accept #1, cursor moves to #2
        await pilot.press("r")  # reject #2
        assert statuses(review_project)[first] == "accepted"
        assert statuses(review_project)[second] == "rejected"
        assert lst.current_id == third
        await pilot.press("k", "j", "d")
        assert third not in statuses(review_project)
        await pilot.press("u")
        assert third in statuses(review_project)
        await pilot.press("u")
        assert statuses(review_project)[second] == "pending"
        await pilot.press("U")
        assert statuses(review_project)[second] == "rejected"


async def test_movement_keys_move_the_cursor_and_the_detail_follows(review_project: Path) -> None:
    """Arrows, page keys, home/end and g/G move the cursor (the list must not just scroll)."""
    app = PairForgeApp(review_project)
    async with app.run_test(size=(120, 20)) as pilot:
        await settle(app, pilot)
        lst = app.screen.query_one(PairList)
        detail = review(app).detail
        last = len(lst.ids) - 1
        page = lst.page_size
        assert 1 < page < last
        expected = [("down", 1), ("j", 2), ("up", 1), ("k", 0), ("pagedown", page), ("pagedown", 2 * page),
                    ("pageup", page), ("end", last), ("home", 0), ("G", last), ("g", 0)]
        for key, index in expected:
            await pilot.press(key)
            assert (key, lst.cursor) == (key, index)
            assert detail.pair_id == lst.ids[index]
        await pilot.press("end")
        assert lst.scroll_offset.y + lst.size.height > last  # the last row is on screen


async def test_undo_works_across_a_restart(review_project: Path) -> None:
    """Accept in one session, quit, reopen, press u: the pair is pending again."""
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        pair_id = app.screen.query_one(PairList).current_id
        await pilot.press("a")
    assert statuses(review_project)[pair_id] == "accepted"
    reopened = PairForgeApp(review_project)
    async with reopened.run_test(size=SIZE) as pilot:
        await settle(reopened, pilot)
        await pilot.press("u")
        await pilot.pause()
    assert statuses(review_project)[pair_id] == "pending"


async def test_edit_in_place_saves_an_undoable_revision(review_project: Path) -> None:
    """e opens editors; ctrl+s saves through the store; u restores the old text."""
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        pair_id = app.screen.query_one(PairList).current_id
        await pilot.press("e")
        editor = app.screen.query_one("#response-editor")
        assert app.focused is editor
        editor.load_text("A rewritten answer about Tidewater retries that is long enough.")  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        await settle(app, pilot)
        with Store.open(review_project) as store:
            assert store.get_pair(pair_id).response.startswith("A rewritten answer")
        assert isinstance(app.focused, PairList)
        await pilot.press("u")
        with Store.open(review_project) as store:
            assert store.get_pair(pair_id).response.startswith("Tidewater retries")


async def test_while_editing_tab_moves_between_fields_and_review_keys_do_nothing(review_project: Path) -> None:
    """Tab cycles the two editors; focus cannot wander off an edit, so letters are text, never review keys."""
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        lst = app.screen.query_one(PairList)
        pair_id, before = lst.current_id, statuses(review_project)
        await pilot.press("e")
        instruction, response = app.screen.query_one("#instruction-editor"), app.screen.query_one("#response-editor")
        assert app.focused is response
        await pilot.press("tab")
        assert app.focused is instruction
        await pilot.press("shift+tab")
        assert app.focused is response
        lst.focus()  # focus may not leave an edit: it comes back to the editor
        await pilot.pause()
        assert app.focused is response
        await pilot.press("a", "r", "d", "j", "b")
        await settle(app, pilot)
        assert statuses(review_project) == before
        assert "ardjb" in response.text  # type: ignore[attr-defined]
        assert lst.current_id == pair_id
        assert not isinstance(app.screen, BulkActionScreen)
        await pilot.press("escape")
        await pilot.press("a")
        assert statuses(review_project)[pair_id] == "accepted"


async def test_edit_in_external_editor(review_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """E suspends the app and runs $EDITOR on the pair; the edited file is saved back.

    The editor is a small shell script (no interactive editor can run in a test).
    """
    script = tmp_path / "fake-editor.sh"
    script.write_text("#!/bin/sh\nsed -i 's/three times/five times/' \"$1\"\n")
    script.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(script))
    monkeypatch.delenv("VISUAL", raising=False)
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        pair_id = app.screen.query_one(PairList).current_id
        await pilot.press("E")
        await settle(app, pilot)
    with Store.open(review_project) as store:
        assert "five times" in store.get_pair(pair_id).response


async def test_marks_and_bulk_actions_with_confirmation(review_project: Path) -> None:
    """space marks; b asks; a applies to the marks only. Without marks, b acts on the whole filter."""
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        lst = app.screen.query_one(PairList)
        ids = lst.ids[:3]
        await pilot.press("space", "space", "space", "b")
        assert isinstance(app.screen, BulkActionScreen)
        await pilot.press("a")
        await settle(app, pilot)
        now = statuses(review_project)
        assert [now[i] for i in ids] == ["accepted"] * 3
        assert list(now.values()).count("accepted") == 3
        # Whole filter: the refusals, rejected in one step, undone in one step.
        review(app).show_filter(PairFilter(kind="refusal"))
        await pilot.pause()
        await pilot.press("b")
        await pilot.press("r")
        await settle(app, pilot)
        with Store.open(review_project) as store:
            assert store.count_pairs(PairFilter(kind="refusal", status="rejected")) == 4
        await pilot.press("u")
        with Store.open(review_project) as store:
            assert store.count_pairs(PairFilter(kind="refusal", status="rejected")) == 0
        await pilot.press("b", "escape")
        assert not isinstance(app.screen, BulkActionScreen)


async def test_warning_navigation_search_filters_and_sample(review_project: Path) -> None:
    """n/N jump between warned pairs; / searches; f filters by kind; s shows 20 pairs; c clears."""
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        lst = app.screen.query_one(PairList)
        with Store.open(review_project) as store:
            warned = store.pair_ids(PairFilter(warning="any"))
        await pilot.press("n")
        assert lst.current_id == warned[0]
        await pilot.press("n")
        assert lst.current_id == warned[1]
        await pilot.press("N")
        assert lst.current_id == warned[0]
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"case 1", "enter")
        await settle(app, pilot)
        assert lst.pair_filter.search == "case 1"
        assert len(lst.ids) == 11  # case 1 and case 10-19
        assert isinstance(app.focused, PairList)
        await pilot.press("c")
        review(app).show_filter(PairFilter(kind="multi_hop"))
        await pilot.pause()
        assert len(lst.ids) == 6
        await pilot.press("s")
        await settle(app, pilot)
        assert lst.pair_filter.ids is not None and len(lst.ids) == 20
        # Reviewing the sample walks through it: each key acts on the next pair.
        sample = list(lst.ids)
        await pilot.press("a", "r", "a")
        now = statuses(review_project)
        assert [now[i] for i in sample[:3]] == ["accepted", "rejected", "accepted"]
        assert lst.current_id == sample[3]
        review(app).show_filter(PairFilter(status="pending"))
        await pilot.pause()
        first_pending = lst.current_id
        await pilot.press("a")
        assert lst.current_id != first_pending and first_pending not in lst.ids
        await pilot.press("c")
        assert len(lst.ids) == 30


async def test_regenerate_queues_a_job_for_the_pairs_chunks(review_project: Path) -> None:
    """R writes a queued generation job grounded on the same chunks."""
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        lst = app.screen.query_one(PairList)
        await pilot.press("j")
        pair_id = lst.current_id
        await pilot.press("R")
    with Store.open(review_project) as store:
        jobs = store.list_jobs(status="queued")
        assert len(jobs) == 1
        assert jobs[0].chunk_ids == store.get_pair(pair_id).sources
        assert jobs[0].params["replaces"] == pair_id


async def test_quality_panel_updates_live_and_jumps_to_pairs(review_project: Path) -> None:
    """Pairs written from another thread change the panel; a line opens Review on its pairs."""
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, 0.6)
        panel = app.screen.query_one(QualityPanel)
        lines = panel.query_one("#quality-lines")
        # The first report is built in a worker; on a busy machine it can land after the settle.
        for _ in range(100):
            if "gauge:refusals" in {o.id for o in lines.options}:  # type: ignore[attr-defined]
                break
            await pilot.pause(0.05)
        before = str(lines.get_option("gauge:refusals").prompt)  # type: ignore[attr-defined]
        assert "4/60" in before
        store = app.store
        assert store is not None
        writer = threading.Thread(target=store.add_pairs, args=([
            Pair.simple(f"What is the weather on Mars, day {i}?", "I can only answer about Tidewater; the weather is not in its docs.",
                        kind=PairKind.REFUSAL) for i in range(3)
        ],))
        writer.start()
        writer.join()
        # The panel refreshes on a timer: give a busy machine up to 10 s.
        for _ in range(200):
            after = str(lines.get_option("gauge:refusals").prompt)  # type: ignore[attr-defined]
            if "4/60" not in after:
                break
            await pilot.pause(0.05)
        assert "7/60" in after
        await pilot.press("ctrl+o")
        lines.highlighted = lines.get_option_index("warning:mimicry")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await pilot.pause()
        lst = app.screen.query_one(PairList)
        assert lst.pair_filter.warning == "mimicry"
        assert len(lst.ids) == 8
        assert isinstance(app.focused, PairList)


async def test_quality_panel_collapses_at_80_columns(review_project: Path) -> None:
    """At 80x24 the panel starts hidden; ctrl+b shows it."""
    app = PairForgeApp(review_project)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        panel = app.screen.query_one(QualityPanel)
        assert not panel.display
        await pilot.press("ctrl+b")
        assert panel.display


async def test_the_three_thresholds_stay_on_screen_at_80_columns(review_project: Path) -> None:
    """With the panel collapsed, one line shows pairs, refusals and multi-hop against their targets."""
    from tui.widgets.quality_strip import QualityStrip

    app = PairForgeApp(review_project)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await quality_report_shown(app, pilot)
        await settle(app, pilot)
        strip = app.screen.query_one(QualityStrip)
        panel = app.screen.query_one(QualityPanel)
        assert strip.display and not panel.display
        assert strip.region.width == 80 and strip.region.height == 1
        gauges = panel.figures.gauges if panel.figures is not None else []
        assert [g.label for g in gauges] == ["pairs", "refusals", "multi-hop"]
        drawn = "".join(segment.text for segment in strip.render_line(0))
        assert drawn.startswith("^b pairs")  # the key that opens the panel, first so it is never cut off
        for gauge in gauges:
            assert f"{gauge.label} {gauge.value}/{gauge.target}" in drawn
        # Each count in its status colour (a missing one in the theme's error colour), its word too.
        error = Color.parse(app.current_theme.error or "red").rgb
        missing = next(g for g in gauges if g.status == "missing")
        figures_at = drawn.index(f"{missing.value}/{missing.target}")
        x = 0
        for segment in strip.render_line(0):
            if x <= figures_at < x + len(segment.text):
                assert segment.style is not None and segment.style.color is not None
                triplet = segment.style.color.triplet
                # The theme variable may be blended by a shade: close to the error colour, not exact.
                assert triplet is not None and all(abs(a - b) <= 3 for a, b in zip(triplet, error, strict=True))
                break
            x += len(segment.text)
        else:
            raise AssertionError("no segment holds the missing count")
        # The panel is one key away, and the strip gives way to it.
        await pilot.press("ctrl+b")
        assert panel.display and not strip.display
        await pilot.press("ctrl+b")
        assert strip.display
    wide = PairForgeApp(review_project)
    async with wide.run_test(size=SIZE) as pilot:
        await settle(wide, pilot)
        assert not wide.screen.query_one(QualityStrip).display


async def test_import_sample_docs_from_the_documents_screen(tmp_path: Path, sample_docs: Path) -> None:
    """Type a path, Enter imports in a worker; documents appear with counts; failures are listed."""
    root = tmp_path / "proj"
    Store.init(root).close()
    app = PairForgeApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("1")
        path_box = app.screen.query_one("#import-path", Input)
        assert app.focused is path_box
        path_box.value = str(sample_docs)
        await pilot.press("enter")
        await settle(app, pilot, 0.2)
        table = app.screen.query_one("#documents-table", DataTable)
        assert table.row_count >= 8
        result = app.screen.query_one("#import-result", Static).render()
        assert "Imported" in str(result)
        await settle(app, pilot, 0.6)
        corpus = str(app.screen.query_one("#quality-lines").get_option("corpus").prompt)  # type: ignore[attr-defined]
        assert "pairs" in corpus
        # Preview a chunk with its heading path.
        table.focus()
        await pilot.press("down")
        chunks = app.screen.query_one("#chunks-table", DataTable)
        assert chunks.row_count > 0
    with Store.open(root) as store:
        assert len(store.list_documents()) == table.row_count
        assert store.count_pairs() > 0  # the sample's legacy dataset file brings pairs


async def test_opening_a_folder_without_a_project_offers_to_create_one(tmp_path: Path) -> None:
    """The modal asks; y creates the project and opens it."""
    folder = tmp_path / "fresh"
    app = PairForgeApp(folder)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(app, pilot)
        assert (folder / "pairforge.toml").exists()
        assert app.screen.query_one(PairList).ids == []


async def test_declining_to_create_a_project_exits(tmp_path: Path) -> None:
    app = PairForgeApp(tmp_path / "none")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
    assert not (tmp_path / "none" / "pairforge.toml").exists()


async def test_settings_are_validated_and_saved(review_project: Path) -> None:
    """A bad threshold is named with its fix; a good one lands in pairforge.toml and the panel."""
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        app.screen.query_one("#set-min-pairs", Input).value = "0"
        await pilot.press("ctrl+s")
        result = str(app.screen.query_one("#set-result", Static).render())
        assert "min_pairs" in result and "fix" in result
        assert load_settings(review_project).quality.min_pairs == 1000
        app.screen.query_one("#set-min-pairs", Input).value = "40"
        app.screen.query_one("#set-keymap").load_text("accept = y")  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")
        saved = load_settings(review_project)
        assert saved.quality.min_pairs == 40
        assert saved.tui.keymap == {"accept": "y"}
        # The new key works at once.
        await pilot.press("3")
        pair_id = app.screen.query_one(PairList).current_id
        await pilot.press("y")
        assert statuses(review_project)[pair_id] == "accepted"


async def test_settings_save_only_what_was_changed_in_the_form(review_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Values shown from the environment are marked and stay out of pairforge.toml; the edited one is saved."""
    import tomllib

    monkeypatch.setenv("PAIRFORGE_GENERATION__MODEL", "model-from-env")
    before = tomllib.loads((review_project / "pairforge.toml").read_text())
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        assert app.screen.query_one("#set-model", Input).value == "model-from-env"
        assert "PAIRFORGE_GENERATION__MODEL" in str(app.screen.query_one("#set-result", Static).render())
        app.screen.query_one("#set-min-pairs", Input).value = "40"
        await pilot.press("ctrl+s")
        assert "quality.min_pairs" in str(app.screen.query_one("#set-result", Static).render())
    after = tomllib.loads((review_project / "pairforge.toml").read_text())
    before["quality"]["min_pairs"] = 40
    assert after == before


async def test_starting_generation_saves_only_the_server_fields_changed(review_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Generate form shows the model from the environment; starting saves the edited workers, not that model."""
    import tomllib

    from tui.panes.generate import GeneratePane

    monkeypatch.setenv("PAIRFORGE_GENERATION__MODEL", "model-from-env")
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        pane = app.screen.query_one(GeneratePane)
        assert pane.query_one("#gen-model", Input).value == "model-from-env"
        pane.query_one("#gen-concurrency", Input).value = "3"
        pane._save_settings(pane._form())
    generation = tomllib.loads((review_project / "pairforge.toml").read_text())["generation"]
    assert generation["concurrency"] == 3 and generation["model"] == "qwen2.5:7b-instruct"


async def test_the_model_field_follows_the_backend(review_project: Path) -> None:
    """With the embedded backend the field holds its GGUF or built-in model, never a server's model name.

    The demo project runs llamacpp with the default server model name left in generation.model; shown
    in the field and passed on, it made Start fail with "The GGUF file qwen2.5:7b-instruct does not exist".
    """
    import tomllib

    from textual.widgets import Select

    from engine.generate.hosts import backends_from_settings
    from tui.panes.generate import GeneratePane

    with Store.open(review_project) as store:
        store.change_settings({"generation": {"backend": "llamacpp"}})
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("2")
        pane = app.screen.query_one(GeneratePane)
        model = pane.query_one("#gen-model", Input)
        assert model.value == "" and "smollm2" in model.placeholder
        form = pane._form()
        (backend,) = backends_from_settings(pane.store.settings, backend=form["backend"], model=form["model"] or None)
        assert backend.name == "llamacpp"  # the default built-in model, resolved without error
        model.value = "gemma3"
        pane.query_one("#gen-backend", Select).value = "ollama"
        await pilot.pause()
        assert model.value == "qwen2.5:7b-instruct"  # the server's model comes back
        pane.query_one("#gen-backend", Select).value = "llamacpp"
        await pilot.pause()
        assert model.value == "gemma3"  # and the embedded one is kept
        pane._save_settings(pane._form())
    generation = tomllib.loads((review_project / "pairforge.toml").read_text())["generation"]
    assert generation["model_path"] == "gemma3" and generation.get("model", "qwen2.5:7b-instruct") == "qwen2.5:7b-instruct"


async def test_keymap_from_pairforge_toml_remaps_bindings(review_project: Path) -> None:
    with Store.open(review_project) as store:
        store.change_settings({"tui": {"keymap": {"reject": "x"}}})
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        pair_id = app.screen.query_one(PairList).current_id
        await pilot.press("x")
    assert statuses(review_project)[pair_id] == "rejected"


async def test_theme_switch_is_remembered(review_project: Path) -> None:
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.theme == "pairforge-dark"
        app.theme = "high-contrast"
        await pilot.pause()
    assert load_settings(review_project).tui.theme == "high-contrast"
    again = PairForgeApp(review_project)
    async with again.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert again.theme == "high-contrast"


async def test_help_lists_every_binding(review_project: Path) -> None:
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        table_text = app.screen.key_table  # type: ignore[attr-defined]
        from rich.console import Console

        console = Console(width=200, record=True)
        console.print(table_text)
        rendered = console.export_text()
        for entry in all_keys(PairForgeApp):
            assert entry.tooltip in rendered and entry.binding_id in rendered
        assert "question_mark" not in rendered and "slash" not in rendered
        assert "?" in rendered and "pgdn" in rendered
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


def test_section_keys_help_and_palette_come_from_each_sections_declaration() -> None:
    """Each pane declares its section; the keys, the help table and the palette scopes are read from that."""
    from tui.screens.workspace import SECTION_PANES, WorkspaceScreen

    shows = {b.id: b for b in WorkspaceScreen.BINDINGS if isinstance(b, Binding) and (b.id or "").startswith("show_")}
    assert list(shows) == [f"show_{pane.SECTION.name}" for pane in SECTION_PANES]
    for n, pane in enumerate(SECTION_PANES, 1):
        binding = shows[f"show_{pane.SECTION.name}"]
        assert (binding.key, binding.description, binding.tooltip) == (f"{n},f{n + 1}", pane.SECTION.label, pane.SECTION.tooltip)
    entries = all_keys(PairForgeApp)
    by_owner = {entry.owner: entry.where for entry in entries}
    for pane in SECTION_PANES:
        if pane.BINDINGS:
            assert by_owner[pane] == pane.SECTION.title
    assert {"Review: editing", "Review: filters", "Review: bulk"} <= set(by_owner.values())


def test_every_binding_has_an_id_description_and_tooltip() -> None:
    ids = [entry.binding_id for entry in all_keys(PairForgeApp)]
    assert len(ids) == len(set(ids)), "binding ids must be unique so the keymap can address each"
    for entry in all_keys(PairForgeApp):
        assert entry.description and entry.tooltip, entry.binding_id
    assert {"accept", "reject", "edit", "edit_external", "delete", "undo", "redo", "mark", "bulk",
            "next_warning", "previous_warning", "search", "regenerate", "sample", "filters"} <= set(ids)


async def test_command_palette_offers_actions_by_name(review_project: Path) -> None:
    """The palette finds 'Review: Accept' and running it accepts the current pair."""
    from tui.commands import PairForgeCommands

    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        provider = PairForgeCommands(app.screen)
        names = [name for name, _, _ in provider._commands()]
        assert "Review: Accept" in names and "Theme: tidewater" in names
        assert "Export: Export" in names and "Generate: Start" in names
        pair_id = app.screen.query_one(PairList).current_id
        callback = dict((n, c) for n, _, c in provider._commands())["Review: Accept"]
        await callback()
        await pilot.pause()
        # An action of a section not built yet: the palette shows the section, then runs it there.
        tree_callback = dict((n, c) for n, _, c in provider._commands())["Documents: Tree"]
        await tree_callback()
        await pilot.pause()
        assert app.screen.query_one("#sections", ContentSwitcher).current == "documents"
        assert app.screen.query_one("#import-tree").display
        # Dialog and filter-bar keys act only while those are open: listed in help, not offered by name.
        assert not [n for n in names if n.startswith(("Review: bulk", "Review: filters"))]
    assert statuses(review_project)[pair_id] == str(PairStatus.ACCEPTED)


async def test_large_project_builds_its_duplicate_index_only_when_asked(review_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over the size limit, no filter (however narrow) starts the index over every pair; D does."""
    import tui.app as app_module
    from tui.widgets.near_duplicates import NearDuplicateList

    monkeypatch.setattr(app_module, "DEEP_AUTO_MAX_PAIRS", 10)
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await quality_report_shown(app, pilot)
        await settle(app, pilot)
        pane = review(app)
        near = app.screen.query_one(NearDuplicateList)
        assert "Press D" in near.text.plain
        pane.show_filter(PairFilter(warning="mimicry"))  # 8 pairs listed, 30 in the project
        await settle(app, pilot)
        await pilot.press("j")
        await settle(app, pilot)
        assert not app.quality.report.index_ready
        assert "Press D" in near.text.plain
        await pilot.press("D")
        await settle(app, pilot)
        assert app.quality.report.index_ready
        assert "Press D" not in near.text.plain
        assert "Indexing" not in near.text.plain


async def test_panel_shows_contradictions_and_jumps_to_them(review_project: Path) -> None:
    """A question answered two different ways appears as a contradiction; Enter lists both pairs.

    One pair with a system prompt among many without also shows as a consistency warning.
    """
    with Store.open(review_project) as store:
        twin = store.add_pairs([Pair.simple(
            "How does Tidewater handle case 5 of retries?",
            "It does not retry at all: case 5 jobs are dropped and logged to the dead-letter table.",
        )])[0].id
        store.add_pairs([Pair.simple("Where are queues declared?", "In tidewater.toml under [queues].", system="Be brief.")])
        original = next(p.id for p in store.iter_pairs() if p.instruction == "How does Tidewater handle case 5 of retries?" and p.id != twin)
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await quality_report_shown(app, pilot)
        panel = app.screen.query_one(QualityPanel)
        assert panel.figures is not None and panel.figures.deep.state == "done"
        assert (original, twin) in panel.figures.deep.contradictions
        lines = panel.query_one("#quality-lines")
        assert "system prompt" in str(lines.get_option("consistency:0").prompt)  # type: ignore[attr-defined]
        await pilot.press("ctrl+o")
        lines.highlighted = lines.get_option_index("deep:contradictions")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await settle(app, pilot)
        lst = app.screen.query_one(PairList)
        assert {original, twin} <= set(lst.ids)
        assert set(lst.ids) == {i for pair in panel.figures.deep.contradictions for i in pair}


async def test_filter_bar_lists_pairs_with_near_duplicates(review_project: Path) -> None:
    """Choosing "has near duplicates" in the filter bar lists every pair of a near-duplicate group."""
    from textual.widgets import Select

    from tui.widgets.filter_bar import NEAR_DUPLICATE_CHECK, FilterBar

    with Store.open(review_project) as store:  # "case 3" reworded, with a slip; cases 3 and 4 are different questions
        store.add_pairs([Pair.simple("What's the way Tidewater handles case 3 of retires?", "Three tries, with backoff between them.")])
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await quality_report_shown(app, pilot)
        groups = app.quality.deep.duplicate_ids
        assert groups
        await pilot.press("f")
        app.screen.query_one(FilterBar).query_one("#f-warning", Select).value = NEAR_DUPLICATE_CHECK
        await settle(app, pilot)
        assert set(app.screen.query_one(PairList).ids) == groups


async def test_large_projects_check_contradictions_when_asked(review_project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over the size limit the panel offers the check instead of running it; ctrl+k runs it.

    Later writes keep the results on screen, marked as older than the data, until asked again.
    """
    import tui.app as app_module

    monkeypatch.setattr(app_module, "DEEP_AUTO_MAX_PAIRS", 10)
    monkeypatch.setattr(app_module, "DEEP_QUIET_S", 0.2)
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        panel = app.screen.query_one(QualityPanel)
        for _ in range(400):
            if panel.figures is not None and panel.figures.deep.state != "waiting":
                break
            await pilot.pause(0.025)
        assert panel.figures is not None and panel.figures.deep.state == "too-big"
        assert "not checked automatically on 30 pairs" in str(panel.query_one("#quality-lines").get_option("deep:run").prompt)  # type: ignore[attr-defined]
        await pilot.press("ctrl+k")
        await settle(app, pilot)
        assert panel.figures.deep.state == "done" and not panel.figures.deep.stale
        store = app.store
        assert store is not None
        writer = threading.Thread(target=store.add_pairs, args=([Pair.simple("A new question about queues?", "A new answer.")],))
        writer.start()
        writer.join()
        for _ in range(200):
            if panel.figures.deep.stale:
                break
            await pilot.pause(0.05)
        assert panel.figures.deep.state == "done" and panel.figures.deep.stale
        assert "before the latest changes" in str(panel.query_one("#quality-lines").get_option("deep:run").prompt)  # type: ignore[attr-defined]
        await pilot.press("ctrl+k")
        await settle(app, pilot)
        assert panel.figures.deep.state == "done" and not panel.figures.deep.stale


async def test_streamed_answer_follows_one_job_when_several_stream(review_project: Path) -> None:
    """Tokens of two concurrent jobs never interleave on screen: the pane follows the job started last."""
    from tui.messages import GenerationText
    from tui.panes.generate import GeneratePane

    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("f3")
        pane = app.screen.query_one(GeneratePane)
        for job_id, text in ((1, ""), (1, "Tidewater "), (2, ""), (1, "retries"), (2, "Queues are "), (1, " jobs."), (2, "declared.")):
            pane.post_message(GenerationText(job_id, text))
        await pilot.pause()
        shown = app.screen.query_one("#gen-stream", Static)
        assert str(shown.render()) == "Queues are declared."
        assert "job 2" in str(app.screen.query_one("#gen-stream-title", Static).render())


async def test_list_follows_pairs_added_edited_and_deleted_elsewhere(review_project: Path) -> None:
    """Writes from other threads (generation, another view) show up in the list without losing the cursor."""
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        lst = app.screen.query_one(PairList)
        store = app.store
        assert store is not None
        await pilot.press("j", "j")
        here = lst.current_id

        def elsewhere(fn, *args):  # type: ignore[no-untyped-def]
            thread = threading.Thread(target=fn, args=args)
            thread.start()
            thread.join()

        elsewhere(store.add_pairs, [Pair.simple(f"New question {i} about Tidewater queues?", "A new answer.") for i in range(2)])
        elsewhere(store.add_pairs, [Pair.simple("One more question about Tidewater workers?", "Another answer.")])
        await settle(app, pilot, 0.1)
        assert lst.ids == store.pair_ids()
        assert len(lst.ids) == 33 and lst.current_id == here
        victim = lst.ids[5]
        elsewhere(store.delete_pairs, [victim])
        await settle(app, pilot, 0.1)
        assert victim not in lst.ids and lst.ids == store.pair_ids()
        elsewhere(store.undo)
        await settle(app, pilot, 0.1)
        assert victim in lst.ids and lst.ids == store.pair_ids()
        assert lst.current_id == here


@pytest.mark.parametrize("theme", ["pairforge-dark", "pairforge-light", "high-contrast", "tidewater"])
async def test_secondary_text_is_readable_in_every_theme(review_project: Path, theme: str) -> None:
    """Muted and heading text in the detail pane stand out from its background in each bundled theme."""
    from textual.color import Color

    with Store.open(review_project) as store:
        store.change_settings({"tui": {"theme": theme}})
    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.theme == theme
        pane = app.screen.query_one("#pair-text", TextPane)
        _, background = pane.background_colors
        for style in (pane.muted_style, pane.heading_style):
            assert style.color is not None
            color = Color.from_rich_color(style.color)
            assert abs(color.brightness - background.brightness) > 0.25, (theme, color.hex, background.hex)


async def test_panel_keeps_the_highlighted_line_when_lines_are_added_above(review_project: Path) -> None:
    """A refresh that adds a line above the highlighted one keeps the same line highlighted, so Enter opens what was chosen."""
    from tui.quality_figures import PanelFigures

    app = PairForgeApp(review_project)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        panel = app.screen.query_one(QualityPanel)
        lines = panel.query_one("#quality-lines")
        panel.show(PanelFigures(warnings=[("mimicry", "Copies its source", 8), ("too_short", "Too short", 2)]))
        lines.highlighted = lines.get_option_index("warning:too_short")  # type: ignore[attr-defined]
        panel.show(PanelFigures(composition=["A new composition warning."], warnings=[("mimicry", "Copies its source", 8), ("too_short", "Too short", 2)]))
        assert lines.get_option_at_index(lines.highlighted).id == "warning:too_short"  # type: ignore[attr-defined]
