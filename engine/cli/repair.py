"""``pairforge repair``: the model rewrites flagged pairs; a dry run unless --apply."""

from __future__ import annotations

import asyncio
from typing import Any

import click

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

# How much of a pair's text a dry run shows before and after.
_SHOWN_CHARS = 400
_STYLE = {"repaired": "green", "unchanged": "yellow", "failed": "red"}


def _clip(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _SHOWN_CHARS else flat[: _SHOWN_CHARS - 1] + "…"


@click.command("repair")
@click.option("--check", "checks", multiple=True, metavar="ID",
              help="Repair only pairs flagged by this check (repeatable; default: every check a rewrite can fix).")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Only pairs matching: status=, kind=, mode=, warning=, doc=, search= (repeatable).")
@click.option("--pair", "pair_ids", multiple=True, type=int, metavar="ID", help="Only this pair (repeatable).")
@click.option("--apply", "apply_changes", is_flag=True,
              help="Store the repairs as new revisions (undo with `pairforge undo`); without it, only show them.")
@click.option("--backend", type=BACKEND_CHOICE, help="Backend (default: generation.backend).")
@click.option("--model", help="Model (default: the generation model).")
@click.option("--host", "hosts", multiple=True, help="Server URL; repeat for several (default: generation.hosts).")
@click.option("--concurrency", type=CONCURRENCY, help=CONCURRENCY_HELP)
@json_option
@handle_errors
@click.pass_context
def repair_cmd(
    ctx: click.Context,
    checks: tuple[str, ...],
    filters: tuple[str, ...],
    pair_ids: tuple[int, ...],
    apply_changes: bool,
    backend: str | None,
    model: str | None,
    hosts: tuple[str, ...],
    concurrency: int | str | None,
    as_json: bool,
) -> None:
    """Ask the model to fix flagged pairs, keep each repair that is better (a dry run unless --apply).

    Each flagged pair goes to the generation model with its sources, its warnings and an
    instruction per check; the answer is checked again and kept only when it clears every flagged
    problem and brings no new one.
    """
    from engine.repair import parse_filter, plan_repair

    store = open_store(ctx)
    flt = parse_filter(filters)
    run_id = plan_repair(
        store, checks=checks or None, flt=flt, ids=list(pair_ids) or None, params={"apply": apply_changes},
    )
    queued = store.job_counts(task="repair").get("queued", 0)
    if run_id is None and not queued:
        if as_json:
            emit_json({"planned_run": None, "applied": apply_changes, "outcomes": [], "counts": {}})
        else:
            console.print("No pair in scope carries a warning a repair can fix; nothing to do.")
        return
    outcomes, counts, summary = _run(store, backend, model, hosts, concurrency, apply_changes, quiet=as_json)
    if as_json:
        emit_json({
            "planned_run": run_id, "applied": apply_changes, "counts": counts,
            "outcomes": [o.as_dict() for o in outcomes], "message": summary.message,
        })
        return
    for outcome in outcomes:
        style = _STYLE[outcome.outcome]
        label = outcome.outcome if apply_changes or outcome.outcome != "repaired" else "would repair"
        console.print(f"[bold]#{outcome.pair_id}[/] [{style}]{label}[/]: {escape(outcome.reason)}")
        if outcome.after is not None and (outcome.outcome == "repaired" or not apply_changes):
            for name, old, new in (("question", outcome.before[0], outcome.after[0]),
                                   ("answer", outcome.before[1], outcome.after[1])):
                if old != new:
                    console.print(f"  [red]- {name}:[/] {escape(_clip(old))}")
                    console.print(f"  [green]+ {name}:[/] {escape(_clip(new))}")
    verb = "Repaired" if apply_changes else "Would repair"
    console.print(
        f"{verb} {counts['repaired']} pair(s); {counts['unchanged']} unchanged, {counts['failed']} failed "
        "(the originals of both are kept)."
    )
    if apply_changes and counts["repaired"]:
        console.print("Each repaired pair is one undo step: `pairforge undo` brings back the original.")
    elif not apply_changes and counts["repaired"]:
        console.print("Run again with --apply to store them (the model is asked again).")


def _run(
    store: Any, backend: str | None, model: str | None, hosts: tuple[str, ...], concurrency: int | str | None,
    apply_changes: bool, *, quiet: bool,
) -> tuple[list[Any], dict[str, int], Any]:
    """Run every queued repair job; returns the outcomes, their counts and the run's summary.

    Raises the error that stopped the run (a model that is not pulled, every host down).
    """
    from engine.generate.hosts import backends_from_settings, close_backends
    from engine.jobs import JobEvent
    from engine.repair import RepairHandler, repair_runner

    backends = backends_from_settings(
        store.settings, backend=backend, model=model, hosts=hosts or None, concurrency=concurrency
    )
    runner = repair_runner(store, backends, apply=apply_changes, concurrency_per_host=concurrency, check_backends=True)

    def on_event(event: JobEvent) -> None:
        if quiet:
            return
        p = event.progress
        if event.kind in ("job_done", "job_failed"):
            err_console.print(f"[dim]repair {p.done + p.failed}/{p.total}[/]", end="\r")
        elif event.kind == "host_down":
            err_console.print(f"[yellow]Skipping {escape(event.host or '')}:[/] {escape(event.error or '')}")

    async def go() -> Any:
        try:
            return await runner.run(None, on_event)
        finally:
            await close_backends(backends)

    summary = asyncio.run(go())
    summary.raise_for_stop()
    handler = runner.handler
    assert isinstance(handler, RepairHandler)
    return handler.outcomes, handler.counts(), summary
