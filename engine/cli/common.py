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

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def project_path(ctx: click.Context) -> Path:
    """The project folder chosen with --project (default: the current folder)."""
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
