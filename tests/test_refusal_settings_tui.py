"""The coverage refusal answers name, edited in the app's Settings: saved to pairforge.toml and used."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.generate.builders import GenerationContext
from engine.store import Store
from tests.test_refusal_topics import import_manual


@pytest.fixture
def manual(project: Store, tmp_path: Path) -> Store:
    return import_manual(project, tmp_path / "libffi")


async def test_the_coverage_edited_in_settings_is_saved_and_used(manual: Store) -> None:
    """The Settings form shows the built coverage as the default; an edit lands in pairforge.toml and in the answers."""
    from textual.widgets import Input

    from engine.settings import load_settings
    from tests.test_tui import settle
    from tui.app import PairForgeApp

    app = PairForgeApp(manual.root)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        box = app.screen.query_one("#set-coverage", Input)
        assert box.value == "" and "memory usage" in box.placeholder and "Index" not in box.placeholder
        box.value = "calling C functions at run time; closures; describing struct layouts; variadic calls"
        await pilot.press("ctrl+s")
        await settle(app, pilot)
    assert load_settings(manual.root).generation.coverage == [
        "calling C functions at run time", "closures", "describing struct layouts", "variadic calls"
    ]
    reopened = Store.open(manual.root)
    try:
        assert GenerationContext.load(reopened).coverage[0] == "calling C functions at run time"
    finally:
        reopened.close()
