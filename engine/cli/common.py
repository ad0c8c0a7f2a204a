"""Plumbing shared by every command: opening the project, errors, JSON and tables."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from engine.errors import PairForgeError

F = TypeVar("F", bound=Callable[..., Any])

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def _json_given_anywhere(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    # `pairforge --json status` and `pairforge status --json` mean the same.
    return bool(value or (ctx.find_root().obj or {}).get("as_json"))


class BackendChoice(click.Choice[str]):
    """The backend kinds the engine registers (``BACKEND_KINDS``), named nowhere else.

    They are read when an option first checks or lists them, not at import: ``pairforge --help``
    would otherwise load the generation package before showing one line.
    """

    def __init__(self) -> None:
        super().__init__(())

    @property
    def choices(self) -> tuple[str, ...]:
        """The registered backend kinds."""
        from engine.generate.backends import BACKEND_KINDS

        return BACKEND_KINDS

    @choices.setter
    def choices(self, _value: object) -> None:
        # click.Choice assigns its choices once in __init__; the engine's list stays the source.
        pass


# Every command offering --backend takes the kinds the engine registers.
BACKEND_CHOICE = BackendChoice()

json_option = click.option("--json", "as_json", is_flag=True, callback=_json_given_anywhere,
                           help="Print machine-readable JSON.")


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(dict)["as_json"] = True


def _remember_project(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    # The group has stored the value given before the command (or PAIRFORGE_PROJECT) by now:
    # one typed after the command is the last word, so it replaces it.
    if value is not None:
        ctx.ensure_object(dict)["project"] = value


# Commands that do not work on an existing project (the demo makes its own, named with --dir).
PROJECTLESS_COMMANDS = frozenset({"demo"})


def share_global_options(command: click.Command) -> click.Command:
    """Let ``command`` take ``--project`` (and ``--json``) after its name as well as before it.

    The group's options are parsed before the command is known, so a command gets its own
    ``--project``/``-p`` that overrides the group's; a command with ``--json`` reads the group's
    too. Returns ``command``, changed in place (once).
    """
    if getattr(command, "_shares_global_options", False):
        return command
    names = {name for param in command.params for name in param.opts}
    if command.name not in PROJECTLESS_COMMANDS and "--project" not in names:
        command.params.append(click.Option(
            ["--project", "-p"], type=click.Path(file_okay=False), expose_value=False, callback=_remember_project,
            help="The project folder (wins over one given before the command and over PAIRFORGE_PROJECT).",
        ))
    command._shares_global_options = True  # type: ignore[attr-defined]
    return command


def global_options(func: F) -> F:
    """The group's ``--project``/``-p`` (env ``PAIRFORGE_PROJECT``) and ``--json``."""
    func = click.option(
        "--json", "as_json", is_flag=True, expose_value=False, callback=_remember_json,
        help="Print machine-readable JSON (the same as --json after the command).",
    )(func)
    return click.option(
        "--project", "-p", "project", envvar="PAIRFORGE_PROJECT", show_envvar=True, type=click.Path(file_okay=False),
        default=".", show_default=True, help="The project folder (also accepted after the command).",
    )(func)


def project_path(ctx: click.Context) -> Path:
    """The project folder: --project after the command, else before it, else PAIRFORGE_PROJECT, else here."""
    root = ctx.find_root()
    return Path((root.obj or {}).get("project", ".")).expanduser()


def open_store(ctx: click.Context, *, create: bool = False) -> Any:
    """Open the project's store (engine.store.Store); errors become one clear sentence."""
    from engine.store import Store

    store = Store.open(project_path(ctx), create=create)
    ctx.call_on_close(store.close)
    return store


def handle_errors(func: F) -> F:
    """Turn expected failures into one red sentence and a non-zero exit, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PairForgeError as exc:
            err_console.print(f"[bold red]Error:[/] {escape(str(exc))}")
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            err_console.print("[yellow]Interrupted: everything saved so far is kept.[/]")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


def escape(text: str) -> str:
    """Text from documents or models, safe to print through Rich (no markup, no control codes)."""
    from rich.markup import escape as rich_escape

    from engine.text import strip_control

    return rich_escape(strip_control(text))


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
