"""The command line through both entry points: init, import, status, docs, chunks, log, undo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import engine.cli
import tui.cli

ENTRY_POINTS = [pytest.param(engine.cli.main, id="engine"), pytest.param(tui.cli.main, id="tui")]


def _run(main: click.Group, project: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--project", str(project), *args], catch_exceptions=False)
    return result.exit_code, result.output


@pytest.mark.parametrize("main", ENTRY_POINTS)
def test_init_import_status_docs_chunks_log_undo(main: click.Group, tmp_path: Path, sample_docs: Path) -> None:
    project = tmp_path / "proj"
    code, out = _run(main, project, "init", "--json")
    assert code == 0 and json.loads(out)["schema_version"] >= 1

    code, out = _run(main, project, "import", str(sample_docs), "--json")
    assert code == 0, out
    report = json.loads(out)
    assert len(report["imported"]) == 12 and report["pairs_imported"] == 16 and report["ok"]

    code, out = _run(main, project, "status", "--json")
    status = json.loads(out)
    shipped = {p.name for p in sample_docs.iterdir() if not p.name.startswith(".")}
    detail = {Path(d["path"]).name: d for d in status["documents_detail"]}
    assert set(detail) == shipped
    assert all(d["chunks"] > 0 for name, d in detail.items() if name != "legacy-dataset.jsonl")
    assert status["pairs_by_kind"] == {"imported": 16}
    assert status["warnings"] == {} or isinstance(status["warnings"], dict)

    code, out = _run(main, project, "docs", "--json")
    docs = json.loads(out)
    dataset = next(d for d in docs if d["path"].endswith("legacy-dataset.jsonl"))
    assert dataset["pairs"] == 16
    caching = next(d for d in docs if d["path"].endswith("caching.md"))

    code, out = _run(main, project, "chunks", str(caching["id"]), "--json")
    chunks = json.loads(out)
    text = (sample_docs / "caching.md").read_text(encoding="utf-8")
    assert chunks and all(text[c["start"] : c["end"]] == c["text"] for c in chunks)

    code, out = _run(main, project, "log", "--json")
    assert any(e["step"] == "import" and e["action"] == "imported" for e in json.loads(out))

    code, out = _run(main, project, "undo", "--json")
    assert code == 0 and json.loads(out) is None  # imports are not user edits

    code, out = _run(main, project, "import", str(sample_docs))
    assert code == 0 and "unchanged" in out


def _status_project(main: click.Group, args: list[str], env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return str(json.loads(result.output)["project"])


@pytest.mark.parametrize("main", ENTRY_POINTS)
def test_project_and_json_are_accepted_before_and_after_the_command(
    main: click.Group, tmp_path: Path, sample_docs: Path,
) -> None:
    project = tmp_path / "proj"
    code, out = _run(main, project, "init")
    assert code == 0, out
    where = str(project.resolve())

    result = CliRunner().invoke(main, ["import", str(sample_docs), "-p", str(project), "--json"], catch_exceptions=False)
    assert result.exit_code == 0 and len(json.loads(result.output)["imported"]) == 12

    for command in ("status", "docs", "log"):
        before = CliRunner().invoke(main, ["--project", str(project), command, "--json"], catch_exceptions=False)
        after = CliRunner().invoke(main, [command, "--project", str(project), "--json"], catch_exceptions=False)
        json_first = CliRunner().invoke(main, ["--json", command, "-p", str(project)], catch_exceptions=False)
        assert before.exit_code == after.exit_code == json_first.exit_code == 0, (command, after.output)
        assert json.loads(before.output) == json.loads(after.output) == json.loads(json_first.output)
    assert _status_project(main, ["status", "--json", "--project", str(project)]) == where


@pytest.mark.parametrize("main", ENTRY_POINTS)
def test_project_after_the_command_wins(main: click.Group, tmp_path: Path) -> None:
    chosen, other = tmp_path / "chosen", tmp_path / "other"
    for folder in (chosen, other):
        assert _run(main, folder, "init")[0] == 0
    env = {"PAIRFORGE_PROJECT": str(other)}
    assert _status_project(main, ["status", "--json"], env) == str(other.resolve())
    assert _status_project(main, ["status", "--project", str(chosen), "--json"], env) == str(chosen.resolve())
    assert _status_project(main, ["-p", str(other), "status", "-p", str(chosen), "--json"]) == str(chosen.resolve())


@pytest.mark.parametrize("main", ENTRY_POINTS)
def test_every_command_shows_project_and_json_in_its_help(main: click.Group) -> None:
    ctx = click.Context(main)
    names = main.list_commands(ctx)
    assert "status" in names and "import" in names
    for name in names:
        command = main.get_command(ctx, name)
        assert command is not None
        result = CliRunner().invoke(main, [name, "--help"], catch_exceptions=False)
        assert result.exit_code == 0, (name, result.output)
        takes_json = any("--json" in p.opts for p in command.params)
        assert ("--project" in result.output) == (name != "demo"), name
        assert takes_json == ("--json" in result.output), name
    assert "PAIRFORGE_PROJECT" in CliRunner().invoke(main, ["--help"]).output


def test_import_exit_code_only_fails_when_nothing_imported(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    code, out = _run(engine.cli.main, project, "import", str(tmp_path / "missing.md"))
    assert code == 1 and "does not exist" in " ".join(out.split())  # Rich wraps at the terminal width
    good = tmp_path / "good.md"
    good.write_text("# Good\n", encoding="utf-8")
    code, out = _run(engine.cli.main, project, "import", str(tmp_path / "missing.md"), str(good))
    assert code == 0


def test_import_output_escapes_markup_in_file_names(tmp_path: Path) -> None:
    odd = tmp_path / "[bold]odd[red].bin"
    odd.write_bytes(b"\x00\x01")
    code, out = _run(engine.cli.main, tmp_path / "proj", "import", str(odd))
    assert code == 0 and "[bold]odd[red]" in out


def test_help_does_not_import_heavy_libraries() -> None:
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from tui.cli import main\n"
        "result = CliRunner().invoke(main, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = [m for m in ('datasets', 'transformers', 'pyarrow', 'textual', 'torch') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == ""


def _backend_options(group: click.Group) -> dict[str, click.Option]:
    """Every ``--backend`` option of ``group``'s commands, by command name."""
    found: dict[str, click.Option] = {}
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        for param in command.params if command is not None else []:
            if isinstance(param, click.Option) and "--backend" in param.opts:
                found[name] = param
    return found


@pytest.mark.parametrize("main", ENTRY_POINTS)
def test_every_backend_option_offers_the_registered_kinds(main: click.Group) -> None:
    """The backend names come from the engine's one list, in both entry points."""
    from engine.generate.backends import BACKEND_KINDS

    options = _backend_options(main)
    assert {"generate", "judge", "demo"} <= set(options)
    if main is tui.cli.main:
        assert "open" in options
    for name, option in options.items():
        assert isinstance(option.type, click.Choice), name
        assert tuple(option.type.choices) == BACKEND_KINDS, name


@pytest.mark.parametrize("main", ENTRY_POINTS)
def test_an_unknown_backend_is_refused_with_the_registered_kinds(main: click.Group, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--project", str(tmp_path / "p"), "generate", "--backend", "nope"])
    assert result.exit_code == 2
    assert "'ollama', 'llamacpp', 'openai'" in result.output
