"""The engine is a plain library: importing it never pulls in Textual or the app."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "module", ["engine", "engine.cli", "engine.store", "engine.models", "engine.ingest", "engine.quality",
               "engine.jobs", "engine.generate.handler", "engine.export"],
)
def test_engine_import_does_not_load_textual(module: str) -> None:
    code = (
        f"import sys, {module}; "
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith(('textual.', 'tui')));"
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{module} imported {result.stdout.strip()}"


def test_the_app_does_load_textual() -> None:
    """The check above can fail: the app module itself does bring Textual in."""
    code = "import sys, tui.app; print('textual' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "True", result.stderr


def test_import_linter_contracts_pass() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is not installed in this environment"
    result = subprocess.run([lint_imports], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _guarded_own_imports(source: str) -> list[int]:
    """Lines of ``try: import engine/tui ... except ImportError`` blocks in ``source``."""
    import ast

    found: list[int] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Try):
            continue
        caught = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
        if not caught & {"ImportError", "ModuleNotFoundError"}:
            continue
        for stmt in node.body:
            names = [a.name for a in stmt.names] if isinstance(stmt, ast.Import) else (
                [stmt.module or ""] if isinstance(stmt, ast.ImportFrom) else [])
            if any(name.split(".")[0] in {"engine", "tui"} for name in names):
                found.append(node.lineno)
    return found


def test_guard_finder_sees_a_guard() -> None:
    assert _guarded_own_imports("try:\n    from engine.quality import CHECKS\nexcept ImportError:\n    pass\n") == [1]
    assert _guarded_own_imports("try:\n    import xllamacpp\nexcept ImportError:\n    pass\n") == []


def test_the_app_never_hides_a_broken_module_of_its_own() -> None:
    """A bug in PairForge's own modules is a traceback, never 'not available in this installation'."""
    guarded = {
        str(path.relative_to(ROOT)): lines
        for path in sorted((ROOT / "tui").rglob("*.py"))
        if (lines := _guarded_own_imports(path.read_text(encoding="utf-8")))
    }
    assert guarded == {}
