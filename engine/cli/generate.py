"""Generation commands: plan, generate, jobs, models."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import click
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
from engine.errors import PairForgeError


def _plan_table(summary: dict[str, Any]) -> Table:
    modes = list(summary["by_mode"])
    table = Table(title=f"Plan: {summary['target']} pairs", show_edge=False)
    table.add_column("kind")
    for mode in modes:
        table.add_column(mode, justify="right")
    table.add_column("total", justify="right")
    for kind, total in summary["composition"].items():
        by_mode = summary["composition_by_mode"][kind]
        table.add_row(kind, *(str(by_mode.get(m, 0)) for m in modes), str(total))
    return table


def _make_plan(store: Any, target: int | None, mix: str | None) -> Any:
    from engine.generate.planner import make_plan, parse_mix

    return make_plan(store, target=target, mix=parse_mix(mix) if mix else None)


@click.command("plan")
@click.option("--target", type=click.IntRange(min=1), help="Pairs to plan (default: the guide's figure for the corpus).")
@click.option("--mix", help="Shares per kind, e.g. refusal=0.06,multi_hop=0.05,thinking=0.12.")
@click.option("--save", is_flag=True, help="Queue the plan's jobs as a new run.")
@json_option
@handle_errors
@click.pass_context
def plan_cmd(ctx: click.Context, target: int | None, mix: str | None, save: bool, as_json: bool) -> None:
    """Show (and with --save, queue) the generation plan."""
    from engine.generate.planner import save_plan

    store = open_store(ctx)
    plan = _make_plan(store, target, mix)
    summary = plan.summary()
    if save:
        summary["run_id"] = save_plan(store, plan)
    if as_json:
        emit_json(summary)
        return
    console.print(_plan_table(summary))
    docs = Table(title="Per document", show_edge=False)
    for column in ("document", "chunks", "jobs"):
        docs.add_column(column, justify="left" if column == "document" else "right")
    for doc in summary["documents"]:
        docs.add_row(escape(doc["path"]), str(doc["chunks"]), str(doc["jobs"]))
    console.print(docs)
    for note in summary["notes"]:
        console.print(f"[yellow]Note:[/] {escape(note)}")
    if save:
        console.print(f"Saved as run {summary['run_id']}: run [bold]pairforge generate[/] to start it.")


def _pending_run(store: Any) -> int | None:
    for run in reversed(store.list_runs()):
        if run["task"] == "generate" and (run["queued"] or 0) + (run["running"] or 0) > 0:
            return int(run["id"])
    return None


async def _run_queue(
    store: Any, backends: list[Any], run_id: int, concurrency: int | str | None, as_json: bool,
    *, probe: bool = True,
) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from engine.generate.handler import generation_runner
    from engine.generate.hosts import check_backends, close_backends
    from engine.generate.probe import PreflightError, ProbeReport, count_probe_in, probe_run
    from engine.jobs import JobEvent

    report: ProbeReport | None = None
    try:
        await check_backends(backends)
        if probe:
            if not as_json:
                err_console.print("[bold]pre-flight probe[/]: one pair of each planned kind ...")
            report = await probe_run(store, backends, run_id)
            if not report.ok:
                raise PreflightError(report.message)
            if not as_json:
                err_console.print(f"    {escape(report.message)}")
        runner = generation_runner(store, backends, concurrency_per_host=concurrency)
        loop = asyncio.get_running_loop()
        # Ctrl-C stops cleanly: requests in flight are dropped and their jobs stay queued.
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runner.cancel)
        counts = store.job_counts(run_id)
        total = sum(counts[s] for s in ("queued", "running", "done", "failed"))
        progress = Progress(
            TextColumn("[bold]generating"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rates]}"), TimeElapsedColumn(),
            console=err_console, disable=as_json, transient=False,
        )
        with progress:
            bar = progress.add_task("generate", total=total, completed=counts["done"] + counts["failed"], rates="")

            def on_event(event: JobEvent) -> None:
                if event.kind in ("job_done", "job_failed"):
                    p = event.progress
                    eta = f"ETA {p.eta_s:.0f}s" if p.eta_s is not None else "ETA -"
                    progress.update(
                        bar, advance=1,
                        rates=f"{p.pairs_per_min:.0f} pairs/min  {p.tokens_per_s:.0f} tok/s  {eta}",
                    )

            return count_probe_in(await runner.run(run_id, on_event=on_event), report)
    finally:
        await close_backends(backends)


def generation_json(summary: Any) -> dict[str, Any]:
    """A generation run's summary as ``generate --json`` prints it."""
    return {
        "run_id": summary.run_id, "pairs_created": summary.pairs, "jobs_done": summary.done,
        "jobs_failed": summary.failed, "jobs_queued": summary.queued, "elapsed_s": summary.elapsed_s,
        "completion_tokens": summary.completion_tokens, "stopped_reason": summary.stopped_reason,
        "last_error": summary.last_error, "cancelled": summary.cancelled, "errors": summary.errors,
        "message": summary.message, "ok": summary.ok,
    }


@click.command("generate")
@click.option("--target", type=click.IntRange(min=1), help="Pairs to plan when no run is queued.")
@click.option("--mix", help="Shares per kind for a new plan, e.g. refusal=0.06,multi_hop=0.05.")
@click.option("--backend", type=BACKEND_CHOICE, help="Backend (default: generation.backend).")
@click.option("--model", help="Model name, or a GGUF path for llamacpp (default: from settings).")
@click.option("--host", "hosts", multiple=True, help="Server URL; repeat for several hosts sharing the queue.")
@click.option("--concurrency", type=CONCURRENCY, help=CONCURRENCY_HELP)
@click.option("--run", "run_id", type=int, help="Resume this run instead of the latest queued one.")
@click.option("--no-probe", is_flag=True, help="Skip the pre-flight probe (one pair of each planned kind first).")
@json_option
@handle_errors
@click.pass_context
def generate_cmd(
    ctx: click.Context, target: int | None, mix: str | None, backend: str | None, model: str | None,
    hosts: tuple[str, ...], concurrency: int | str | None, run_id: int | None, no_probe: bool, as_json: bool,
) -> None:
    """Generate pairs as a persistent queue: plans a run when none is queued, then works through it."""
    from engine.generate.hosts import backends_from_settings
    from engine.generate.planner import save_plan

    store = open_store(ctx)
    # Jobs left running by a killed process count as pending here; the queue re-queues them on start.
    if run_id is None:
        run_id = _pending_run(store)
    if run_id is None:
        plan = _make_plan(store, target, mix)
        run_id = save_plan(store, plan)
        if not as_json:
            console.print(f"Planned run {run_id}: {len(plan.jobs)} jobs ({', '.join(f'{k} {v}' for k, v in plan.composition.items())}).")
    elif not as_json:
        console.print(f"Resuming run {run_id}.")
    backends = backends_from_settings(
        store.settings, backend=backend, model=model, hosts=list(hosts) or None, concurrency=concurrency
    )
    summary = asyncio.run(_run_queue(store, backends, run_id, concurrency, as_json, probe=not no_probe))
    if as_json:
        emit_json(generation_json(summary))
    else:
        style = "green" if summary.ok else "yellow" if summary.cancelled else "red"
        console.print(f"[{style}]{escape(summary.message)}[/]")
    if summary.stopped_reason or (summary.pairs == 0 and summary.failed):
        sys.exit(1)
    if summary.cancelled:
        sys.exit(130)


@click.command("jobs")
@click.option("--status", type=click.Choice(["queued", "running", "done", "failed", "cancelled"]))
@click.option("--run", "run_id", type=int, help="Only this run.")
@click.option("--retry-failed", is_flag=True, help="Queue failed jobs again.")
@click.option("--cancel", is_flag=True, help="Cancel queued jobs.")
@click.option("--limit", type=int, default=50, show_default=True, help="Jobs to list.")
@json_option
@handle_errors
@click.pass_context
def jobs_cmd(
    ctx: click.Context, status: str | None, run_id: int | None, retry_failed: bool, cancel: bool,
    limit: int, as_json: bool,
) -> None:
    """List generation jobs and their state; retry failed ones or cancel queued ones."""
    store = open_store(ctx)
    changed: dict[str, int] = {}
    if retry_failed:
        changed["retried"] = store.retry_failed(run_id)
    if cancel:
        changed["cancelled"] = store.cancel_jobs(run_id)
    jobs = store.list_jobs(status=status, run_id=run_id, limit=limit)
    counts = store.job_counts(run_id)
    if as_json:
        emit_json({"counts": counts, **changed, "jobs": [j.model_dump(mode="json") for j in jobs]})
        return
    for action, n in changed.items():
        console.print(f"{n} job(s) {action}.")
    console.print("  ".join(f"{k}: {v}" for k, v in counts.items()))
    table = Table(show_edge=False)
    for column in ("id", "run", "kind", "mode", "status", "tries", "host", "error"):
        table.add_column(column)
    for job in jobs:
        table.add_row(
            str(job.id), str(job.run_id), str(job.kind), escape(job.mode), str(job.status), str(job.attempts),
            escape(job.host or ""), escape((job.error or "")[:120]),
        )
    console.print(table)


@click.command("models")
@click.option("--backend", type=BACKEND_CHOICE, help="Backend (default: generation.backend).")
@click.option("--host", "hosts", multiple=True, help="Server URL (default: from settings or OLLAMA_HOST).")
@json_option
@handle_errors
@click.pass_context
def models_cmd(ctx: click.Context, backend: str | None, hosts: tuple[str, ...], as_json: bool) -> None:
    """List the models a backend offers."""
    from engine.generate.hosts import backends_from_settings, close_backends
    from engine.settings import settings_without_project

    try:
        settings = open_store(ctx).settings
    except PairForgeError:
        settings = settings_without_project()  # listing models needs no project
    backends = backends_from_settings(settings, backend=backend, hosts=list(hosts) or None)

    async def gather() -> list[tuple[str, list[Any]]]:
        try:
            return [(b.host or b.name, await b.list_models()) for b in backends]
        finally:
            await close_backends(backends)

    found = asyncio.run(gather())
    if as_json:
        emit_json([{"host": host, "models": [m.__dict__ for m in models]} for host, models in found])
        return
    for host, models in found:
        table = Table(title=escape(host), show_edge=False)
        for column in ("model", "size", "parameters", "quantization"):
            table.add_column(column)
        for m in models:
            size = f"{m.size_bytes / 1e9:.1f} GB" if m.size_bytes else ""
            table.add_row(escape(m.name), size, escape(m.parameter_size or ""), escape(m.quantization or ""))
        console.print(table)
