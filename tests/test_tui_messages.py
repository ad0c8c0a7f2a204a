"""Messages panes post carry the pane as their ``control``, so ``@on(Message, "#id")`` selects them."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import on
from textual.widgets import Input

from engine.errors import PairForgeError
from engine.store import Store
from tests.test_tui import settle
from tui.app import PairForgeApp
from tui.messages import EngineFailed, PairsChanged, PaneMessage
from tui.panes import DocumentsPane

SIZE = (120, 40)


class SelectingApp(PairForgeApp):
    """The app with two extra handlers that match by where a failure came from."""

    def __init__(self, project: Path) -> None:
        super().__init__(project)
        self.from_documents: list[EngineFailed] = []
        self.from_review: list[EngineFailed] = []

    @on(EngineFailed, "#documents")
    def _documents_failed(self, message: EngineFailed) -> None:
        self.from_documents.append(message)

    @on(EngineFailed, "#review")
    def _review_failed(self, message: EngineFailed) -> None:
        self.from_review.append(message)


async def test_a_failure_from_a_panes_worker_thread_is_matched_by_the_panes_id(
    tmp_path: Path, sample_docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import fails on the Documents pane's worker thread (the engine's import is replaced by
    one that raises, the only way to make a real folder fail on cue; routing is what is tested)."""
    import engine.ingest

    def failing_import(*_: object, **__: object) -> None:
        raise PairForgeError("The project database is locked; close the other PairForge and retry.")

    monkeypatch.setattr(engine.ingest, "import_paths", failing_import)
    root = tmp_path / "proj"
    Store.init(root).close()
    app = SelectingApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        documents = app.screen.query_one(DocumentsPane)
        assert documents.id == "documents"
        app.screen.query_one("#import-path", Input).value = str(sample_docs)
        await pilot.press("enter")
        await settle(app, pilot, 0.1)
        assert [m.where for m in app.from_documents] == ["import"]
        assert app.from_documents[0].control is documents
        assert app.from_review == []


def test_messages_the_app_posts_name_no_control() -> None:
    """Made outside any widget's handler or worker (as the App's store listener does), there is no control."""
    assert EngineFailed("x").control is None
    assert not isinstance(PairsChanged([1]), PaneMessage)
