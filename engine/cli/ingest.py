"""The `import` command: files and folders into the project, with a summary people can act on."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from engine.cli.common import (
    console,
    emit_json,
    err_console,
    escape,
    handle_errors,
    json_option,
    open_store,
)

# Imports smaller than this finish before a progress bar would be worth drawing.
_PROGRESS_MIN_FILES = 20
_PROGRESS_MIN_BYTES = 5 * 1024 * 1024


def _recheck_imported(store: Any, pair_ids: list[int]) -> str | None:
    """Run the pair checks on newly imported dataset rows."""
    from engine.quality import recheck

    if not pair_ids:
        return None
    recheck(store, pair_ids)
    return f"checked {len(pair_ids)} imported pair(s)"


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@json_option
@handle_errors
@click.pass_context
def import_cmd(ctx: click.Context, paths: tuple[str, ...], as_json: bool) -> None:
    """Import files and folders (documents and existing datasets) into the project.

    Exits non-zero only when nothing could be imported and something failed.
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    from engine.ingest import ImportProgress, import_paths

    store = open_store(ctx, create=True)
    progress: Progress | None = None
    task_id: Any = None

    def on_progress(update: ImportProgress) -> None:
        nonlocal progress, task_id
        if as_json or not console.is_terminal:
            return
        big = update.total_files >= _PROGRESS_MIN_FILES or update.total_bytes >= _PROGRESS_MIN_BYTES
        if progress is None and big:
            progress = Progress(
                TextColumn("[bold]Importing[/]"), BarColumn(), DownloadColumn(),
                TextColumn("{task.fields[current]}"), TimeRemainingColumn(),
                console=console, transient=True,
            )
            progress.start()
            task_id = progress.add_task("import", total=update.total_bytes or 1, current="")
        if progress is not None:
            progress.update(task_id, completed=update.done_bytes, current=escape(update.current[-40:]))

    try:
        report = import_paths(store, list(paths), on_progress=on_progress)
    finally:
        if progress is not None:
            progress.stop()
    checked = _recheck_imported(store, report.new_pair_ids)

    if as_json:
        emit_json({**report.to_dict(), "checked": checked})
    else:
        _print_report(report, checked)
    if report.should_fail:
        ctx.exit(1)


def _print_report(report: Any, checked: str | None) -> None:
    table = Table(title="Import", show_edge=False)
    table.add_column("result")
    table.add_column("count", justify="right")
    for label, count in (
        ("imported", len(report.imported)),
        ("re-imported (changed)", len(report.replaced)),
        ("unchanged", len(report.unchanged)),
        ("skipped", len(report.skipped)),
        ("failed", len(report.failed)),
        ("chunks", report.chunks),
        ("dataset rows", report.pairs_imported),
        ("pairs flagged stale", report.stale_pairs),
        ("warnings", len(report.warnings)),
    ):
        if count or label in ("imported", "chunks"):
            table.add_row(label, str(count))
    console.print(table)
    for problem in report.skipped:
        console.print(f"[dim]skipped:[/] {escape(problem.reason)}")
    for warning in report.warnings[:50]:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    if len(report.warnings) > 50:
        console.print(f"[yellow]… {len(report.warnings) - 50} more warning(s): see `pairforge log`.[/]")
    for problem in report.failed:
        err_console.print(f"[bold red]failed:[/] {escape(problem.reason)}")
    if checked:
        console.print(f"[dim]{escape(checked)}[/]")
    if report.should_fail:
        err_console.print("[bold red]Nothing was imported.[/] Fix the problems above and run the import again.")
