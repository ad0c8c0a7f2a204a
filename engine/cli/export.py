"""The `export` and `trial-set` commands: every format trainers read, the dataset card, trainer
configs and training scripts, for the full set or a trial subset."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from engine.cli.common import console, emit_json, escape, handle_errors, json_option, open_store
from engine.models import PairKind, Severity

if TYPE_CHECKING:
    from engine.export import ExportOptions, ExportProgress, ExportResult
    from engine.store import Store

_FORMAT_CHOICES = ["messages", "alpaca", "sharegpt", "completion", "hf", "all"]


def _export_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options `export` and `trial-set` share: what goes out, in which formats, for which model."""
    options = [
        click.option("--format", "-f", "formats", multiple=True, type=click.Choice(_FORMAT_CHOICES),
                     help="Format to write (repeatable); default: the project's export.format."),
        click.option("--include-pending", is_flag=True, default=None,
                     help="Export pending pairs as well as accepted ones."),
        click.option("--exclude-severity", "exclude_severities", multiple=True,
                     type=click.Choice([s.value for s in Severity]),
                     help="Leave out pairs with a warning of this severity."),
        click.option("--kind", "kinds", multiple=True, type=click.Choice([k.value for k in PairKind]),
                     help="Only pairs of this kind (repeatable)."),
        click.option("--mode", "modes", multiple=True, help="Only pairs of this mode (repeatable)."),
        click.option("--system-prompt", default=None, help="Put this system prompt on every pair."),
        click.option("--no-system-prompt", is_flag=True,
                     help="Remove every system prompt (the default without --system-prompt)."),
        click.option("--base-model", default=None,
                     help="Model the training scripts fine-tune; default: the project's export.base_model."),
        click.option("--force", is_flag=True, help="Replace OUT if it already holds files."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _build_options(store: Store, params: dict[str, Any]) -> ExportOptions:
    from engine.errors import ExportError
    from engine.export import ExportOptions

    system_prompt, no_system_prompt = params["system_prompt"], params["no_system_prompt"]
    if system_prompt is not None and no_system_prompt:
        raise ExportError("--system-prompt and --no-system-prompt contradict each other: pass only one.")
    defaults = store.settings.export
    include_pending = params["include_pending"]
    return ExportOptions(
        formats=list(params["formats"]) or [defaults.format],
        include_pending=defaults.include_pending if include_pending is None else include_pending,
        exclude_severities=[Severity(s) for s in params["exclude_severities"]],
        kinds=[PairKind(k) for k in params["kinds"]],
        modes=list(params["modes"]),
        system_prompt=None if no_system_prompt else (system_prompt if system_prompt is not None else defaults.system_prompt),
        base_model=params["base_model"],
        force=params["force"],
    )


def _run_with_progress(as_json: bool, run: Callable[[Callable[[ExportProgress], None]], ExportResult]) -> ExportResult:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
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
        return run(on_progress)
    finally:
        if progress is not None:
            progress.stop()


def _print_result(result: ExportResult, as_json: bool) -> None:
    if as_json:
        emit_json(result.to_json())
        return
    what = f"a trial subset of {result.exported} pair(s)" if result.trial is not None else f"{result.exported} pair(s)"
    table = Table(title=f"Exported {what} in {result.seconds:.1f} s", title_justify="left")
    table.add_column("Format")
    table.add_column("Split")
    table.add_column("File")
    table.add_column("Rows", justify="right")
    for exported in result.files:
        table.add_row(exported.format, exported.split, escape(str(exported.path)), str(exported.rows))
    console.print(table)
    if result.trial is not None:
        console.print(escape(result.trial.method()))
    if result.hf_dataset_dir:
        console.print(f"Hugging Face dataset: {escape(str(result.hf_dataset_dir))} (datasets.load_from_disk)")
    console.print(f"Dataset card: {escape(str(result.card_path))}")
    console.print("Trainer configs: " + ", ".join(escape(str(p)) for p in result.trainer_configs))
    if result.recipes:
        console.print("Training scripts: " + ", ".join(escape(str(p)) for p in result.recipes)
                      + f" (max_length {result.recipe_max_length})")
    for reason, count in result.skipped.items():
        console.print(f"[yellow]Left out[/] {count} pair(s): {escape(reason)}")
    for note in result.notes:
        console.print(f"[yellow]Note:[/] {escape(note)}")


@click.command("export")
@click.argument("out", type=click.Path(file_okay=False))
@_export_options
@json_option
@handle_errors
@click.pass_context
def export_cmd(ctx: click.Context, out: str, as_json: bool, **params: Any) -> None:
    """Export the accepted pairs to OUT: one JSONL file per format and split, the Hugging Face
    dataset, a dataset card (README.md), LLaMA-Factory / Axolotl configs and TRL / Unsloth
    training scripts."""
    from engine.export import export_dataset

    store = open_store(ctx)
    options = _build_options(store, params)
    result = _run_with_progress(as_json, lambda progress: export_dataset(store, out, options, on_progress=progress))
    _print_result(result, as_json)


@click.command("trial-set")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--size", type=int, default=300, show_default=True, help="Pairs in the trial subset.")
@click.option("--seed", type=int, default=None, help="Seed of the draw; default: the project's split seed.")
@_export_options
@json_option
@handle_errors
@click.pass_context
def trial_set_cmd(ctx: click.Context, out: str, size: int, seed: int | None, as_json: bool, **params: Any) -> None:
    """Export a trial subset of SIZE pairs to OUT, to train on before scaling up: a stratified
    sample over kind, mode and source document (refusals and multi-hop in proportion), the
    validation part from the validation split, near-duplicate clusters never split; the same
    files, card and training scripts as `export`, the card saying how it was drawn."""
    from engine.export import export_trial_set

    store = open_store(ctx)
    options = _build_options(store, params)
    result = _run_with_progress(
        as_json, lambda progress: export_trial_set(store, out, size, options, seed=seed, on_progress=progress)
    )
    _print_result(result, as_json)
