"""The ``pairforge`` entry point: the engine's commands plus the app.

With no sub-command, ``pairforge`` opens the app on the project in the current
folder; ``pairforge open PATH`` opens another. Textual is imported only then.
"""

from __future__ import annotations

import click

from engine.cli import build_group
from engine.cli.common import BACKEND_CHOICE, handle_errors, project_path

main = build_group(name="pairforge", invoke_without_command=True)


def _launch(path: str, *, backend: str | None = None) -> None:
    from tui.app import run_app

    run_app(path, backend=backend)


@main.result_callback()
@click.pass_context
def _default(ctx: click.Context, /, *_: object, **__: object) -> None:
    if ctx.invoked_subcommand is None:
        handle_errors(_launch)(str(project_path(ctx)))


@main.command("open")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option("--backend", type=BACKEND_CHOICE, help="Override the project's backend.")
@click.pass_context
def open_cmd(ctx: click.Context, path: str | None, backend: str | None) -> None:
    """Open the app on the project in PATH (default: --project or the current folder)."""
    handle_errors(_launch)(path or str(project_path(ctx)), backend=backend)


@main.command("demo")
@click.option("--app/--no-app", "open_app", default=True, show_default=True,
              help="Open the app on the demo project afterwards (only when run in a terminal).")
@click.pass_context
def demo_cmd(ctx: click.Context, /, open_app: bool, **options: object) -> None:
    """Run the whole pipeline on the bundled sample documents (offline with the embedded model), then open the app."""
    import sys
    from pathlib import Path

    from engine.cli.demo import demo_cmd as headless_demo

    ctx.invoke(headless_demo, **options)
    if open_app and not options.get("as_json") and sys.stdin.isatty() and sys.stdout.isatty():
        handle_errors(_launch)(str(Path(str(options["directory"])).resolve()), backend=str(options["backend"]))


def _share_demo_options() -> None:
    # The app's demo takes every option of the headless one, so the two never drift apart.
    from engine.cli.demo import demo_cmd as headless_demo

    demo_cmd.params[:0] = [p for p in headless_demo.params if p.name != "help"]


_share_demo_options()

from engine.cli import SUMMARIES  # noqa: E402

SUMMARIES["open"] = "Open the app on a project (the default with no command)."

__all__ = ["main"]
