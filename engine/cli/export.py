"""The `export` command: every format trainers read, the dataset card and trainer configs."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from engine.cli.common import console, emit_json, escape, handle_errors, json_option, open_store
from engine.models import PairKind, Severity

_FORMAT_CHOICES = ["messages", "alpaca", "sharegpt", "completion", "hf", "all"]


@click.command("export")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--format", "-f", "formats", multiple=True, type=click.Choice(_FORMAT_CHOICES),
              help="Format to write (repeatable); default: the project's export.format.")
@click.option("--include-pending", is_flag=True, default=None, help="Export pending pairs as well as accepted ones.")
@click.option("--exclude-severity", "exclude_severities", multiple=True,
              type=click.Choice([s.value for s in Severity]), help="Leave out pairs with a warning of this severity.")
@click.option("--kind", "kinds", multiple=True, type=click.Choice([k.value for k in PairKind]),
              help="Only pairs of this kind (repeatable).")
@click.option("--mode", "modes", multiple=True, help="Only pairs of this mode (repeatable).")
@click.option("--system-prompt", default=None, help="Put this system prompt on every pair.")
@click.option("--no-system-prompt", is_flag=True, help="Remove every system prompt (the default without --system-prompt).")
@click.option("--force", is_flag=True, help="Replace OUT if it already holds files.")
@json_option
@handle_errors
@click.pass_context
def export_cmd(
    ctx: click.Context,
    out: str,
    formats: tuple[str, ...],
    include_pending: bool | None,
    exclude_severities: tuple[str, ...],
    kinds: tuple[str, ...],
    modes: tuple[str, ...],
    system_prompt: str | None,
    no_system_prompt: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Export the accepted pairs to OUT: one JSONL file per format and split, the Hugging Face
    dataset, a dataset card (README.md) and LLaMA-Factory / Axolotl configs."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from engine.errors import ExportError
    from engine.export import ExportOptions, ExportProgress, export_dataset

    if system_prompt is not None and no_system_prompt:
        raise ExportError("--system-prompt and --no-system-prompt contradict each other: pass only one.")
    store = open_store(ctx)
    defaults = store.settings.export
    options = ExportOptions(
        formats=list(formats) or [defaults.format],
        include_pending=defaults.include_pending if include_pending is None else include_pending,
        exclude_severities=[Severity(s) for s in exclude_severities],
        kinds=[PairKind(k) for k in kinds],
        modes=list(modes),
        system_prompt=None if no_system_prompt else (system_prompt if system_prompt is not None else defaults.system_prompt),
        force=force,
    )
    progress: Progress | None = None
    task_id: Any = None

    def on_progress(update: ExportProgress) -> None:
        nonlocal progress, task_id
        if as_json or not console.is_terminal:
            return
        if progress is None:
            progress = Progress(TextColumn("[bold]Exporting[/]"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[stage]}"), TimeRemainingColumn(),
                                console=console, transient=True)
            progress.start()
            task_id = progress.add_task("export", total=max(update.total, 1), stage="")
        progress.update(task_id, completed=update.done, total=max(update.total, 1), stage=update.stage)

    try:
        result = export_dataset(store, out, options, on_progress=on_progress)
    finally:
        if progress is not None:
            progress.stop()

    if as_json:
        emit_json(result.to_json())
        return
    table = Table(title=f"Exported {result.exported} pair(s) in {result.seconds:.1f} s", title_justify="left")
    table.add_column("Format")
    table.add_column("Split")
    table.add_column("File")
    table.add_column("Rows", justify="right")
    for exported in result.files:
        table.add_row(exported.format, exported.split, escape(str(exported.path)), str(exported.rows))
    console.print(table)
    if result.hf_dataset_dir:
        console.print(f"Hugging Face dataset: {escape(str(result.hf_dataset_dir))} (datasets.load_from_disk)")
    console.print(f"Dataset card: {escape(str(result.card_path))}")
    console.print("Trainer configs: " + ", ".join(escape(str(p)) for p in result.trainer_configs))
    for reason, count in result.skipped.items():
        console.print(f"[yellow]Left out[/] {count} pair(s): {escape(reason)}")
    for note in result.notes:
        console.print(f"[yellow]Note:[/] {escape(note)}")
