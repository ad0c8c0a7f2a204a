"""Every worker failure, expected or not, reaches the Log section and a notification."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.widgets import Input, Log, Static

import tui
from engine.errors import PairForgeError
from engine.store import Store
from tests.test_tui import settle
from tui.app import PairForgeApp
from tui.worker_errors import ReportsWorkerFailures

SIZE = (120, 40)


class RecordingApp(PairForgeApp):
    """The app, keeping every notification it shows."""

    def __init__(self, project: Path) -> None:
        super().__init__(project)
        self.notified: list[tuple[str, str, str]] = []

    def notify(self, message: str, *, title: str = "", severity: Any = "information", **kwargs: Any) -> None:
        self.notified.append((message, title, severity))
        super().notify(message, title=title, severity=severity, **kwargs)

    def errors(self) -> list[str]:
        return [message for message, _, severity in self.notified if severity == "error"]


def log_text(app: PairForgeApp) -> str:
    return "\n".join(app.screen.query_one("#log-view", Log).lines)


async def test_an_unexpected_failure_in_a_panes_worker_is_notified_and_logged(
    tmp_path: Path, sample_docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the import (not a PairForgeError) is shown, logged with its traceback, and the pane recovers."""
    import engine.ingest

    def broken_import(*_: object, **__: object) -> None:
        raise RuntimeError("the loader tripped")

    monkeypatch.setattr(engine.ingest, "import_paths", broken_import)
    root = tmp_path / "proj"
    Store.init(root).close()
    app = RecordingApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.screen.query_one("#import-path", Input).value = str(sample_docs)
        await pilot.press("enter")
        await settle(app, pilot, 0.1)
        errors = app.errors()
        assert len(errors) == 1
        assert "RuntimeError" in errors[0] and "the loader tripped" in errors[0]
        assert "import" in [title for _, title, severity in app.notified if severity == "error"]
        # The import does not stay "in progress": its result line says it stopped.
        assert "unexpected error" in str(app.screen.query_one("#import-result", Static).render())
        await pilot.press("6")
        logged = log_text(app)
        assert "the loader tripped" in logged
        assert "broken_import" in logged  # the traceback's last frame, to report the bug with


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (PairForgeError("The project database is locked; close the other PairForge and retry."),
         "The project database is locked; close the other PairForge and retry."),
        (KeyError("refusal"), "quality stopped on an unexpected KeyError: 'refusal'."),
    ],
    ids=["engine-error", "bug"],
)
async def test_a_failure_in_the_apps_own_worker_is_notified_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, shown: str
) -> None:
    """An engine error is shown as its own sentence without a traceback; anything else as a bug, with one."""
    import tui.app

    def failing(*_: object, **__: object) -> None:
        raise error

    monkeypatch.setattr(tui.app, "figures_from_store", failing)
    root = tmp_path / "proj"
    Store.init(root).close()
    app = RecordingApp(root)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot, 0.1)
        errors = app.errors()
        assert len(errors) == 1 and errors[0].startswith(shown)
        await pilot.press("6")
        logged = log_text(app)
        assert shown in logged
        assert ("Traceback" in logged) is not isinstance(error, PairForgeError)


def _runs_workers(cls: type) -> bool:
    """Whether ``cls`` itself starts workers (a ``@work`` method or a ``run_worker`` call)."""
    try:
        tree = ast.parse(inspect.getsource(cls).lstrip())
    except (OSError, TypeError):
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Name) and target.id == "work":
                    return True
        if isinstance(node, ast.Attribute) and node.attr == "run_worker":
            return True
    return False


def test_every_node_that_runs_workers_passes_their_failures_up() -> None:
    """Worker.StateChanged does not bubble: a node running workers without the mixin would lose failures."""
    runners: list[type] = []
    for info in pkgutil.walk_packages(tui.__path__, "tui."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and _runs_workers(cls):
                runners.append(cls)
    assert {c.__name__ for c in runners} >= {"DocumentsPane", "GeneratePane", "ExportPane", "ReviewPane", "PairForgeApp"}
    missing = [c.__name__ for c in runners if not issubclass(c, App | ReportsWorkerFailures)]
    assert missing == []
