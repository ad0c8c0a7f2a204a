"""The eval command: test a fine-tuned model against its base on probes kept in the project."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from engine.cli.common import (
    BACKEND_CHOICE,
    console,
    emit_json,
    err_console,
    escape,
    handle_errors,
    json_option,
    open_store,
)
from engine.cli.concurrency import CONCURRENCY, CONCURRENCY_HELP
from engine.errors import ConfigError, PairForgeError

_STEP_LABELS = {"paraphrase": "paraphrasing", "tuned": "asking the model", "baseline": "asking the baseline"}


@click.command("eval")
@click.option("--model", help="The fine-tuned model, served locally (e.g. after `ollama create` from the adapter).")
@click.option("--baseline", help="The base model to compare with, served the same way.")
@click.option("--backend", type=BACKEND_CHOICE, help="Backend serving both models (default: generation.backend).")
@click.option("--host", "hosts", multiple=True, help="Server URL; repeat for several (default: generation.hosts).")
@click.option("--concurrency", type=CONCURRENCY, help=CONCURRENCY_HELP)
@click.option("--paraphrase-model", help="Model writing the paraphrases (default: the generation model).")
@click.option("--no-paraphrase", is_flag=True, help="Do not write paraphrases of new validation questions.")
@click.option("--judge-model", help="Model scoring agreement with the references (default: judge.model, else the generation model).")
@click.option("--no-judge", is_flag=True, help="Skip agreement scoring.")
@click.option("--run", "run_id", type=int, help="With --report-only: report this tuned run instead of the latest.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Write the markdown report here (default: next to the latest export).")
@click.option("--report-only", is_flag=True, help="Report the latest eval without asking any model.")
@click.option("--more-like", "more_like", multiple=True, help="Plan targeted generation for these probe ids, or 'failing' for every failing probe of the latest run.")
@json_option
@handle_errors
@click.pass_context
def eval_cmd(
    ctx: click.Context, model: str | None, baseline: str | None, backend: str | None, hosts: tuple[str, ...],
    concurrency: int | str | None, paraphrase_model: str | None, no_paraphrase: bool, judge_model: str | None,
    no_judge: bool, run_id: int | None, report_path: str | None, report_only: bool, more_like: tuple[str, ...],
    as_json: bool,
) -> None:
    """Ask a fine-tuned model (and its base) the project's probes and report copies, non-answers, refusals and clarifications."""
    from engine.evaluate import comparison, write_report

    store = open_store(ctx)
    if more_like:
        _more_like(store, more_like, as_json)
        return
    notes: list[str] = []
    if not report_only:
        if not model:
            raise ConfigError("Name the model to evaluate with --model (the fine-tuned model as your server serves it).")
        outcome = _run(store, model, baseline, backend, list(hosts), concurrency, paraphrase_model, no_paraphrase,
                       judge_model, no_judge, quiet=as_json)
        notes = outcome.notes
        run_id = outcome.tuned_run
    report = comparison(store, run_id)
    if not report["runs"]:
        raise PairForgeError("No eval has run in this project yet: run `pairforge eval --model M --baseline B`.")
    path = write_report(store, report, Path(report_path) if report_path else None)
    if as_json:
        emit_json({**report, "report": str(path), "notes": notes})
        return
    _print_report(report)
    for note in notes:
        console.print(escape(note))
    console.print(f"Report written to {escape(str(path))}.")
    failing = report["runs"][0]["failed"]
    if failing:
        console.print(
            f"{failing} probe(s) failed: `pairforge eval --more-like failing` plans targeted pairs for them."
        )


def _run(
    store: Any, model: str, baseline: str | None, backend: str | None, hosts: list[str],
    concurrency: int | str | None, paraphrase_model: str | None, no_paraphrase: bool, judge_model: str | None,
    no_judge: bool, *, quiet: bool,
) -> Any:
    from engine.evaluate import eval_backends, run_eval
    from engine.generate.hosts import close_backends
    from engine.jobs import JobEvent, JobRunner

    settings = store.settings
    try:
        chosen = eval_backends(
            settings, model=model, baseline=baseline, backend=backend, hosts=hosts, concurrency=concurrency,
            paraphrase_model=paraphrase_model, paraphrase=not no_paraphrase, judge_model=judge_model,
            judge=not no_judge,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    progress = Progress(
        TextColumn("{task.fields[step]}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
        console=err_console, disable=quiet, transient=True,
    )
    bar = progress.add_task("eval", total=None, step="", rate="", eta="-")
    runners: list[JobRunner] = []

    def on_event(step: str, event: JobEvent) -> None:
        p = event.progress
        progress.update(
            bar, total=p.total or None, completed=p.done + p.failed, step=_STEP_LABELS.get(step, step),
            rate=f"{p.pairs_per_min:.0f} probes/min", eta=f"{p.eta_s:.0f}s" if p.eta_s is not None else "-",
        )
        if event.kind == "host_down" and not quiet:
            err_console.print(f"[yellow]Skipping {escape(event.host or '')}:[/] {escape(event.error or '')}")

    async def go() -> Any:
        loop = asyncio.get_running_loop()
        # Ctrl-C stops cleanly: the jobs in flight stay queued and the next eval resumes them.
        def cancel() -> None:
            for runner in runners:
                runner.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, cancel)
        try:
            return await run_eval(
                store, model=model, backends=chosen.model, baseline=baseline, baseline_backends=chosen.baseline,
                paraphrase_backends=chosen.paraphrase, judge=chosen.judge, concurrency=chosen.concurrency,
                params={"backend": backend or settings.generation.backend}, on_event=on_event,
                on_runner=runners.append,
            )
        finally:
            await close_backends(chosen.all())

    with progress:
        outcome = asyncio.run(go())
    if outcome.stopped_reason:
        raise PairForgeError(outcome.stopped_reason)
    if any(s.cancelled for s in outcome.summaries.values()):
        err_console.print("Cancelled: run `pairforge eval` again with the same models to resume.")
        sys.exit(130)
    return outcome


def _more_like(store: Any, chosen: tuple[str, ...], as_json: bool) -> None:
    from engine.evaluate import failing_probes, generate_more_like, latest_comparison

    if "failing" in chosen:
        tuned, _ = latest_comparison(store)
        if tuned is None:
            raise PairForgeError("No eval has run in this project yet: run `pairforge eval --model M` first.")
        probes = failing_probes(store, tuned)
    else:
        try:
            ids = [int(value) for value in chosen]
        except ValueError:
            raise ConfigError("--more-like takes probe ids (numbers) or 'failing'.") from None
        probes = store.evals.probes(ids=ids)
        missing = sorted(set(ids) - {p.id for p in probes})
        if missing:
            raise ConfigError(f"No probe {missing[0]} in this project: see the probe ids in `pairforge eval --report-only --json`.")
    run_id, plan = generate_more_like(store, probes)
    if as_json:
        emit_json({"run_id": run_id, "jobs": len(plan.jobs), "composition": plan.composition,
                   "probe_ids": [p.id for p in probes]})
        return
    console.print(
        f"Planned run {run_id}: {len(plan.jobs)} targeted job(s) "
        f"({', '.join(f'{k} {v}' for k, v in plan.composition.items())}) for {len(probes)} probe(s); "
        "run `pairforge generate` to make the pairs."
    )


def _print_report(report: dict[str, Any]) -> None:
    from engine.evaluate import metric_table, verdict_line

    runs = report["runs"]
    table = Table(title="Eval", show_edge=False)
    table.add_column("")
    for run in runs:
        table.add_column(f"{escape(run['model'])}\n{run['role']} · run {run['run_id']}", justify="right")
    for row in metric_table(runs):
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    for run in runs:
        style = "red" if run["mimic"] else "green"
        console.print(f"[{style}]{escape(verdict_line(run))}[/]")
    flags: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        for check, count in run["flags"].items():
            flags.setdefault(check, [0] * len(runs))[i] = count
    if flags:
        checks = Table(title="Gate checks on the answers", show_edge=False)
        checks.add_column("check")
        for run in runs:
            checks.add_column(escape(run["model"]), justify="right")
        for check, counts in sorted(flags.items(), key=lambda kv: -max(kv[1])):
            checks.add_row(check, *(str(c) for c in counts))
        console.print(checks)
