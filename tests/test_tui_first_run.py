"""First steps in the app: a new project opens on Documents, a guide follows the flow, section keys work everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import ContentSwitcher, DataTable, Input
from textual.widgets._footer import FooterKey

from engine.store import Store
from tests.test_tui import settle
from tests.test_tui_projects import build_review_project
from tui.app import PairForgeApp
from tui.dialogs import ConfirmScreen
from tui.widgets.flow_guide import FlowGuide, FlowState
from tui.widgets.key_footer import KeyFooter, footer_key_width

SECTION_KEYS = {"1": "documents", "2": "generate", "3": "review", "4": "export", "5": "settings", "6": "log"}


def section(app: PairForgeApp) -> str | None:
    return app.screen.query_one("#sections", ContentSwitcher).current


def guide_text(app: PairForgeApp) -> str:
    guide = app.screen.query_one(FlowGuide)
    return str(guide.render()) if guide.display else ""


async def test_first_run_create_import_then_section_keys_from_every_section(tmp_path: Path, sample_docs: Path) -> None:
    folder = tmp_path / "fresh"
    app = PairForgeApp(folder)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await settle(app, pilot)

        # A new project opens on Documents, the path box ready, the guide on its first step.
        path_box = app.screen.query_one("#import-path", Input)
        assert section(app) == "documents" and app.focused is path_box
        assert "Import › Generate › Review › Export" in guide_text(app)
        assert "type a path, Enter imports" in guide_text(app)

        await pilot.press(*str(sample_docs))
        await pilot.press("enter")
        await settle(app, pilot, 0.2)
        await settle(app, pilot, 0.6)  # the guide re-reads the project after a short quiet spell
        assert app.screen.query_one("#documents-table", DataTable).row_count >= 8
        # The path box gave the keyboard back: the guide points at the next step and its key.
        assert app.focused is not path_box
        assert "✓ Import" in guide_text(app) and "press 2 to generate pairs" in guide_text(app)

        for key in "234561":
            await pilot.press(key)
            await settle(app, pilot)
            assert section(app) == SECTION_KEYS[key], key
            assert not isinstance(app.focused, Input), (key, app.focused)
        assert path_box.value == str(sample_docs)  # no digit was typed into it
        assert "press 2 to generate pairs" in guide_text(app)
        await pilot.press("2")
        await settle(app, pilot)
        assert "plan a run, then start it" in guide_text(app)


async def test_a_project_with_documents_but_no_pairs_opens_on_its_documents(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    Store.init(root).close()
    (tmp_path / "notes.md").write_text("# Notes\n\nTidewater retries a failed job three times.\n", encoding="utf-8")
    app = PairForgeApp(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        app.screen.query_one("#import-path", Input).value = str(tmp_path / "notes.md")
        await pilot.press("enter")
        await settle(app, pilot, 0.2)
    app = PairForgeApp(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        assert section(app) == "documents"
        assert app.focused is app.screen.query_one("#documents-table", DataTable)
        await pilot.press("3")
        await settle(app, pilot)
        assert section(app) == "review"


async def test_the_guide_follows_review_and_goes_after_the_first_export(tmp_path: Path) -> None:
    root = build_review_project(tmp_path / "proj")
    app = PairForgeApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        assert section(app) == "review"  # a project with pairs opens where they are reviewed
        assert "✓ Generate › Review" in guide_text(app) and "accept or reject each pair" in guide_text(app)
        await pilot.press("a")
        await settle(app, pilot, 0.6)
        assert "✓ Review › Export" in guide_text(app) and "press 4 to export the dataset" in guide_text(app)
        await pilot.press("4")
        await settle(app, pilot)
        await pilot.press("ctrl+r")
        await settle(app, pilot, 0.6)
        assert (root / "export").is_dir()
        assert guide_text(app) == ""
    app = PairForgeApp(root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot, 0.2)
        assert guide_text(app) == ""


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_footer_shows_only_whole_bindings(tmp_path: Path, size: tuple[int, int]) -> None:
    root = build_review_project(tmp_path / "proj")
    app = PairForgeApp(root)
    async with app.run_test(size=size) as pilot:
        await settle(app, pilot)
        for key in ("f3", "f2", "f4", "f5", "f6", "f7"):
            await pilot.press(key)
            await settle(app, pilot)
            footer = app.screen.query_one(KeyFooter)
            keys = list(footer.query(FooterKey))
            palette = next(k for k in keys if k.has_class("-command-palette"))
            assert any(k.action == "help" for k in keys), key
            for shown in keys:
                # Drawn whole: as wide as its text and clear of the palette key on the right.
                assert shown.region.width == footer_key_width(shown), (key, shown.description)
                assert shown is palette or shown.region.right <= palette.region.x, (key, shown.description)
            if key == "f4" and size[0] == 80:
                shown_bindings = {k.description for k in keys}
                assert "Accept" in shown_bindings and "Sample" not in shown_bindings  # dropped whole, not cut


def test_flow_state_names_the_first_step_not_done() -> None:
    def state(**counts: int) -> FlowState:
        values = {"documents": 0, "chunks": 0, "pairs": 0, "generated": 0, "reviewed": 0, "exported": 0} | counts
        return FlowState(**{k: (bool(v) if k == "exported" else v) for k, v in values.items()})  # type: ignore[arg-type]

    assert state().next_step == "import"
    assert state(documents=3, chunks=20).next_step == "generate"
    # Pairs imported from a dataset are not generated ones, unless there is nothing to generate from.
    assert state(documents=4, chunks=20, pairs=16).next_step == "generate"
    assert state(documents=1, pairs=16).next_step == "review"
    assert state(documents=3, chunks=20, pairs=40, generated=40).next_step == "review"
    assert state(documents=3, chunks=20, pairs=40, generated=40, reviewed=1).next_step == "export"
    assert state(documents=3, chunks=20, pairs=40, generated=40, exported=1).next_step is None


@pytest.mark.parametrize(
    ("section_key", "box", "typed", "action_key"),
    [
        ("2", "#gen-target", "40", "ctrl+r"),
        ("4", "#exp-kinds", "instruction", "ctrl+r"),
        ("5", "#set-model", "qwen3:4b", "ctrl+s"),
    ],
    ids=["generate", "export", "settings"],
)
async def test_a_text_box_gives_the_keys_back_after_its_action(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, section_key: str, box: str, typed: str, action_key: str
) -> None:
    """After Start, Export or Save from a text box, the digit keys switch sections again instead of typing."""
    from tui.panes.generate import GeneratePane

    # The run itself needs a model server; what matters here is where the keyboard goes once it starts.
    def no_run(self: GeneratePane, run_id: int | None) -> None:
        self._queue = None

    monkeypatch.setattr(GeneratePane, "run_queue", no_run)
    root = build_review_project(tmp_path / "proj")
    app = PairForgeApp(root)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(app, pilot)
        await pilot.press(section_key)
        await settle(app, pilot)
        text_box = app.screen.query_one(box, Input)
        text_box.focus()
        text_box.value = ""
        await pilot.press(*typed)
        await pilot.press(action_key)
        await settle(app, pilot)
        assert not isinstance(app.focused, Input), app.focused
        await pilot.press("3")
        await settle(app, pilot)
        assert section(app) == "review"
        assert text_box.value == typed  # the digit went to the section key, not into the box
