"""Judge commands: score pairs with a local judge model, curate by score, check agreement."""

from __future__ import annotations

import asyncio
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
from engine.errors import ConfigError


def _bad_value(exc: ValueError) -> ConfigError:
    return ConfigError(str(exc))


@click.command("judge")
@click.option("--threshold", type=float, help="Score below which a pair is flagged (saved as quality.judge_threshold).")
@click.option("--model", help="Judge model (default: judge.model, else the generation model).")
@click.option("--backend", type=BACKEND_CHOICE, help="Judge backend (default: judge.backend, else the generation backend).")
@click.option("--host", "hosts", multiple=True, help="Server URL; repeat for several (default: judge.hosts, else generation.hosts).")
@click.option("--concurrency", type=CONCURRENCY, help=CONCURRENCY_HELP)
@click.option("--all", "judge_all", is_flag=True, help="Judge every pair again, not only new or edited ones.")
@click.option("--agreement", is_flag=True, help="Compare the judge with your accepted/rejected pairs instead of judging.")
@json_option
@handle_errors
@click.pass_context
def judge_cmd(
    ctx: click.Context,
    threshold: float | None,
    model: str | None,
    backend: str | None,
    hosts: tuple[str, ...],
    concurrency: int | str | None,
    judge_all: bool,
    agreement: bool,
    as_json: bool,
) -> None:
    """Score new and edited pairs with a local judge model and print the score distribution."""
    from engine.judge import (
        agreement_report,
        apply_threshold,
        plan_judging,
        resolve_judge_config,
        score_distribution,
    )

    store = open_store(ctx)
    try:
        config = resolve_judge_config(
            store.settings, backend=backend, model=model, hosts=hosts or None,
            concurrency=concurrency, threshold=threshold,
        )
    except ValueError as exc:
        raise _bad_value(exc) from exc
    if agreement:
        _print_agreement(agreement_report(store, config.threshold).as_dict(), as_json)
        return
    if threshold is not None and threshold != store.file_settings.quality.judge_threshold:
        # One threshold for warnings, checks and the dataset card: the one in pairforge.toml.
        store.change_settings({"quality": {"judge_threshold": threshold}})

    run_id = plan_judging(store, only_changed=not judge_all, params={"model": config.model, "backend": config.backend})
    summary = _run(store, config, run_id, quiet=as_json)
    flagged, cleared = apply_threshold(store, config.threshold)
    dist = score_distribution(store, config.threshold).as_dict()
    if as_json:
        emit_json({
            "model": config.model, "backend": config.backend, "planned_run": run_id, **summary,
            "flagged": flagged, "cleared": cleared, "distribution": dist,
        })
        return
    if summary["judged"] == 0 and summary["failed"] == 0:
        console.print("Every pair already has a verdict for its current content; use --all to judge them again.")
    else:
        console.print(
            f"Judged {summary['judged']} pair(s) with [bold]{escape(config.model or config.backend)}[/] "
            f"in {summary['elapsed_s']:.1f} s" + (f", {summary['failed']} failed" if summary["failed"] else "") + "."
        )
    by_reason: dict[str, list[int]] = {}
    for failure in summary["failures"]:
        by_reason.setdefault(failure["error"], []).append(failure["pair_id"])
    for reason, ids in list(by_reason.items())[:5]:
        shown = ", ".join(str(i) for i in ids[:8]) + (f" and {len(ids) - 8} more" if len(ids) > 8 else "")
        console.print(f"  [red]{len(ids)} pair(s)[/] ({shown}): {escape(reason)}")
    if summary["failed"]:
        console.print("Failed pairs keep no score; run `pairforge judge` again to retry them.")
    if summary["remaining"]:
        console.print(f"{summary['remaining']} pair(s) are still queued; run `pairforge judge` again to finish.")
    _print_distribution(dist)


def _run(store: Any, config: Any, run_id: int | None, *, quiet: bool) -> dict[str, Any]:
    """Run every queued judge job (this run's and any left from an interrupted one) with a progress bar.

    Raises the error that stopped the run (a model that is not pulled, every host down).
    """
    from engine.jobs import JobEvent
    from engine.judge import judge_runner, make_judge_backends

    backends = make_judge_backends(config)
    runner = judge_runner(
        store, backends, options=config.chat_options(), concurrency_per_host=config.concurrency,
        max_attempts=config.max_attempts, threshold=config.threshold,
    )
    progress = Progress(
        TextColumn("Judging"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
        console=err_console, disable=quiet, transient=True,
    )
    task = progress.add_task("judge", total=None, rate="", eta="-")

    def on_event(event: JobEvent) -> None:
        p = event.progress
        eta = f"{p.eta_s:.0f}s" if p.eta_s is not None else "-"
        progress.update(
            task, total=p.total or None, completed=p.done + p.failed,
            rate=f"{p.pairs_per_min:.0f} pairs/min", eta=eta,
        )
        if event.kind == "host_down" and not quiet:
            err_console.print(f"[yellow]Skipping {escape(event.host or '')}:[/] {escape(event.error or '')}")

    async def go() -> Any:
        try:
            return await runner.run(None, on_event)
        finally:
            for backend in backends:
                await backend.aclose()

    with progress:
        summary = asyncio.run(go())
    summary.raise_for_stop()
    return {
        "run_ids": summary.run_ids, "judged": summary.done, "failed": summary.failed,
        "remaining": summary.queued, "cancelled": summary.cancelled, "elapsed_s": round(summary.elapsed_s, 3),
        "failures": [{"pair_id": f.pair_id, "error": f.error} for f in summary.failures],
        "run_id": run_id,
    }


def _clip_line(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_distribution(dist: dict[str, Any]) -> None:
    if not dist["scored"]:
        console.print(f"No pair has a score yet ({dist['unscored']} unscored).")
        return
    table = Table(title=f"Judge scores (threshold {dist['threshold']:g})", show_edge=False)
    table.add_column("score", justify="right")
    table.add_column("pairs", justify="right")
    table.add_column("")
    peak = max(dist["histogram"].values()) or 1
    for score, count in dist["histogram"].items():
        bar = "#" * round(30 * count / peak)
        style = "red" if int(score) + 1 <= dist["threshold"] else "green"
        table.add_row(str(score), str(count), f"[{style}]{bar}[/]")
    console.print(table)
    console.print(
        f"{dist['scored']} scored (mean {dist['mean']:.2f}, median {dist['median']:.2f}), "
        f"{dist['below_threshold']} below {dist['threshold']:g}, {dist['unscored']} unscored."
    )


def _print_agreement(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(report)
        return
    if not report["enough"]:
        console.print(
            f"Agreement needs at least {report['decisions'] + report['needed']} scored pairs you accepted or "
            f"rejected; you have {report['decisions']}: review {report['needed']} more, then run this again."
        )
        return
    console.print(
        f"Judge (score >= {report['threshold']:g} means accept) vs your decisions on {report['decisions']} pairs:"
    )
    table = Table(show_edge=False)
    table.add_column("")
    table.add_column("you accepted", justify="right")
    table.add_column("you rejected", justify="right")
    table.add_row("judge accepts", str(report["both_accept"]), str(report["judge_accept_person_reject"]))
    table.add_row("judge rejects", str(report["judge_reject_person_accept"]), str(report["both_reject"]))
    console.print(table)
    kappa = report["kappa"]
    kappa_text = f"{kappa:.2f}" if kappa is not None else "undefined (one side made a single kind of decision)"
    console.print(f"Agreement {report['agreement']:.0%}, Cohen's kappa {kappa_text}.")
    if kappa is not None:
        console.print(
            "Kappa above 0.6 means the judge is a fair stand-in for your own review; below 0.4, "
            "curate with care or try another judge model or threshold."
        )


@click.command("curate")
@click.option("--min-score", type=click.FloatRange(0, 10), required=True, help="Reject pending pairs scored below this.")
@click.option("--apply", "apply_changes", is_flag=True, help="Reject them (undo with `pairforge undo`); without it, only list them.")
@json_option
@handle_errors
@click.pass_context
def curate_cmd(ctx: click.Context, min_score: float, apply_changes: bool, as_json: bool) -> None:
    """Reject pending pairs whose judge score is below --min-score (a dry run unless --apply)."""
    from engine.judge import apply_curation, plan_curation

    store = open_store(ctx)
    try:
        plan = plan_curation(store, min_score)
    except ValueError as exc:
        raise _bad_value(exc) from exc
    rejected = apply_curation(store, plan) if apply_changes and plan.reject else 0
    if as_json:
        emit_json({**plan.as_dict(), "applied": apply_changes, "rejected": rejected})
        return
    if not plan.reject:
        console.print(f"No pending pair is scored below {min_score:g}; nothing to reject.")
    else:
        ids = [pair_id for pair_id, _ in plan.reject]
        rows = {r["id"]: r for r in store.pair_rows(ids[:20])}
        table = Table(title=f"Scored below {min_score:g}", show_edge=False)
        table.add_column("id", justify="right", min_width=4)
        table.add_column("score", justify="right", min_width=5)
        table.add_column("kind", min_width=13)
        table.add_column("instruction")
        # Clipped here, not by Rich: a no-wrap column squeezes the narrow ones to nothing.
        room = max(console.width - 32, 12)
        for pair_id, score in plan.reject[:20]:
            row = rows.get(pair_id, {})
            table.add_row(str(pair_id), f"{score:.1f}", str(row.get("kind", "")), escape(_clip_line(str(row.get("instruction", "")), room)))
        console.print(table)
        if len(plan.reject) > 20:
            console.print(f"... and {len(plan.reject) - 20} more.")
        if apply_changes:
            console.print(f"Rejected {rejected} pair(s); undo with `pairforge undo`.")
        else:
            console.print(f"{len(plan.reject)} pair(s) would be rejected: run again with --apply to reject them.")
    notes = []
    if plan.kept_accepted:
        notes.append(f"{plan.kept_accepted} below the bar kept because you accepted them")
    if plan.unscored:
        notes.append(f"{plan.unscored} unscored (run `pairforge judge`)")
    if notes:
        console.print("; ".join(notes).capitalize() + ".")
