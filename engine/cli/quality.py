"""Quality commands: check, sample, dedup, redact, split, similar."""

from __future__ import annotations

import sys
from dataclasses import asdict

import click
from rich.table import Table

from engine.cli.common import console, emit_json, escape, handle_errors, json_option, open_store

_STATUS_STYLE = {"ok": "green", "warning": "yellow", "missing": "bold red"}


@click.command("check")
@json_option
@click.option("--strict", is_flag=True, help="Use the strict profile (answers of at least 50 characters).")
@click.option("--recheck/--no-recheck", default=True, show_default=True, help="Re-run the pair checks before reporting.")
@click.pass_context
@handle_errors
def check_cmd(ctx: click.Context, as_json: bool, strict: bool, recheck: bool) -> None:
    """Run every pair and dataset check and print the report; exits 1 when a threshold is missing."""
    from engine.quality import CHECKS, LiveReport
    from engine.quality import recheck as run_checks

    store = open_store(ctx)
    if strict:
        store.override_settings({"quality": {"profile": "strict"}})  # this run only, never saved
    changed = run_checks(store) if recheck else 0
    live = LiveReport.build(store)
    try:
        report = live.snapshot()
    finally:
        live.close()
    refusal_sources = store.pairs.refusal_sources()
    if as_json:
        data = report.model_dump(mode="json")
        data["missing"] = report.missing
        data["rechecked_changed"] = changed
        data["refusal_sources"] = refusal_sources
        emit_json(data)
    else:
        _print_report(report, CHECKS, changed)
        if refusal_sources:
            from engine.generate.refusals import describe_refusal_sources

            console.print(f"[bold]Refusal topics:[/] {escape(describe_refusal_sources(refusal_sources))}.")
    if report.missing:
        sys.exit(1)


def _print_report(report: object, checks: dict, changed: int) -> None:
    from engine.quality import DatasetReport

    assert isinstance(report, DatasetReport)
    console.print(f"[bold]Dataset report[/]: {report.total} pairs in the dataset ({', '.join(f'{v} {k}' for k, v in report.by_status.items()) or 'none'}); {changed} pair(s) changed warnings.")
    table = Table(title="Targets", show_edge=False)
    for column in ("Target", "Value", "Goal", "Status", "Note"):
        table.add_column(column)
    for t in report.thresholds:
        style = _STATUS_STYLE[t.status]
        table.add_row(t.name, str(t.value), str(t.target), f"[{style}]{t.status}[/]", escape(t.message))
    console.print(table)
    console.print("[bold]By kind:[/] " + ", ".join(f"{escape(k)} {v}" for k, v in report.by_kind.items()))
    console.print("[bold]By mode:[/] " + ", ".join(f"{escape(k)} {v}" for k, v in report.by_mode.items()))
    if report.documents:
        console.print("[bold]By document:[/] " + ", ".join(f"{escape(d.path)} {d.pairs}" for d in report.documents))
    for note in [*report.composition_warnings, *report.consistency_warnings]:
        console.print(f"[yellow]![/] {escape(note)}")
    console.print(f"[bold]{escape(report.diversity.summary())}[/]")
    for note in report.diversity.warnings:
        console.print(f"[yellow]![/] {escape(note)}")
    if report.duplicate_clusters:
        console.print(f"[yellow]![/] {len(report.duplicate_clusters)} near-duplicate cluster(s); run `pairforge dedup` to see them.")
    for c in report.contradictions[:10]:
        console.print(f"[yellow]![/] Pairs {c.pair_ids[0]} and {c.pair_ids[1]} ask nearly the same question ({c.question_similarity:.0f}%) but answer differently ({c.answer_similarity:.0f}%).")
    tokens = report.tokens
    label = " (estimated)" if tokens.estimated else f" ({escape(tokens.tokenizer)})"
    if tokens.count:
        console.print(
            f"[bold]Tokens{label}:[/] min {tokens.min}, median {tokens.median:g}, mean {tokens.mean:g}, p95 {tokens.p95}, max {tokens.max}; "
            f"recommended max_seq_length {tokens.recommended_max_seq_length} (truncates {tokens.truncated_at_recommended}); "
            f"{tokens.over_configured_max} over the configured {tokens.configured_max_seq_length}."
        )
    if report.warning_counts:
        table = Table(title="Pair warnings", show_edge=False)
        table.add_column("Check")
        table.add_column("Pairs", justify="right")
        table.add_column("What it means")
        for check, count in report.warning_counts.items():
            info = checks.get(check)
            table.add_row(check, str(count), escape(info.description if info else ""))
        console.print(table)
    review_style = {"ready": "green", "not ready": "bold red"}.get(report.review.status, "yellow")
    if report.review.sample_id is None:
        console.print(f"[{review_style}]{escape(report.review.message)}[/]")
    else:
        console.print(f"[bold]Review sample:[/] [{review_style}]{escape(report.review.message)}[/]")
    verdict = "[bold red]Some targets are missing.[/]" if report.missing else "[green]Every target is met or close.[/]"
    console.print(verdict)


_VERDICT_STYLE = {"pass": "green", "fail": "bold red"}


@click.command("sample")
@click.option("--new", "new", is_flag=True, help="Draw a new sample (logged); the previous one and its verdicts stay in the history.")
@click.option("--seed", type=int, default=None, help="Seed of a new sample (default: random; the log records it).")
@click.option("--pass", "passed", multiple=True, type=int, metavar="PAIR_ID", help="Mark a pair of the sample as passing (repeatable).")
@click.option("--fail", "failed", multiple=True, type=int, metavar="PAIR_ID", help="Mark a pair of the sample as failing (repeatable).")
@click.option("--clear", "cleared", multiple=True, type=int, metavar="PAIR_ID", help="Clear a pair's verdict (repeatable).")
@json_option
@click.pass_context
@handle_errors
def sample_cmd(
    ctx: click.Context, new: bool, seed: int | None, passed: tuple[int, ...], failed: tuple[int, ...],
    cleared: tuple[int, ...], as_json: bool,
) -> None:
    """Show the 20-pair review sample and its verdict; mark pairs pass or fail; draw a new one with --new."""
    from engine.quality.review import current_or_new_sample, draw_review_sample, mark_review

    store = open_store(ctx)
    if new:
        verdict, drawn = draw_review_sample(store, seed=seed), True
    else:
        verdict, drawn = current_or_new_sample(store)
    for ids, mark in ((passed, "pass"), (failed, "fail"), (cleared, None)):
        for pair_id in ids:
            verdict = mark_review(store, pair_id, mark)  # type: ignore[arg-type]
    sample = store.review_samples.current()
    marks = dict(sample.pairs) if sample else {}
    pairs = {p.id: p for p in store.get_pairs(verdict.pair_ids)}
    if as_json:
        data = verdict.model_dump(mode="json")
        data["drawn"] = drawn
        data["pairs"] = [
            {"id": i, "verdict": marks.get(i), "kind": str(pairs[i].kind) if i in pairs else None,
             "mode": pairs[i].mode if i in pairs else None, "instruction": pairs[i].instruction if i in pairs else None}
            for i in verdict.pair_ids
        ]
        emit_json(data)
        return
    if drawn:
        console.print(f"Drew a new {verdict.size}-pair review sample (logged in `pairforge log`).")
    table = Table(show_edge=False)
    for column in ("Pair", "Kind", "Mode", "Verdict", "Instruction"):
        table.add_column(column)
    for pair_id in verdict.pair_ids:
        pair = pairs.get(pair_id)
        mark = marks.get(pair_id)
        table.add_row(
            str(pair_id), escape(str(pair.kind)) if pair else "-", escape(pair.mode) if pair else "-",
            f"[{_VERDICT_STYLE[mark]}]{mark}[/]" if mark else "-",
            escape(pair.instruction[:70]) if pair else "(deleted)",
        )
    console.print(table)
    style = {"ready": "green", "not ready": "bold red"}.get(verdict.status, "yellow")
    console.print(f"[{style}]{escape(verdict.message)}[/]")


@click.command("dedup")
@click.option("--threshold", type=click.FloatRange(50, 100), default=None, help="Similarity 50-100 (default: quality.near_duplicate_threshold).")
@click.option("--keep", type=click.Choice(["best", "first"]), default="best", show_default=True, help="Which pair of each cluster stays.")
@click.option("--apply", "apply_", is_flag=True, help="Delete the duplicates (undoable); without it, only show what would go.")
@click.option(
    "--embed", is_flag=True,
    help="Also join pairs whose instructions' embeddings are alike (quality.embedding_model on the generation server; cached in the project).",
)
@json_option
@click.pass_context
@handle_errors
def dedup_cmd(ctx: click.Context, threshold: float | None, keep: str, apply_: bool, embed: bool, as_json: bool) -> None:
    """Group near-duplicate pairs and keep the best of each cluster (a dry run unless --apply)."""
    from engine.quality import dedup

    store = open_store(ctx)
    result = dedup(store, threshold, keep=keep, dry_run=not apply_, embed=embed)  # type: ignore[arg-type]
    if as_json:
        emit_json(asdict(result))
        return
    instructions = {p.id: p.instruction for p in store.get_pairs([i for c in result.clusters for i in c.pair_ids][:2000])} if result.dry_run else {}
    for cluster in result.clusters:
        console.print(f"[bold]Cluster[/] keep #{cluster.keep}: {escape(instructions.get(cluster.keep, '')[:80])}")
        for pair_id in cluster.remove:
            console.print(f"  [red]- #{pair_id}[/] {escape(instructions.get(pair_id, '')[:80])}")
    verb = "Removed" if not result.dry_run else "Would remove"
    console.print(f"{verb} {len(result.removed)} pair(s) from {len(result.clusters)} cluster(s) at threshold {result.threshold:g}.")
    if result.embedding_matches is not None:
        console.print(
            f"The embedding pass ({escape(store.settings.quality.embedding_model)}, cosine >= "
            f"{store.settings.quality.embedding_threshold:g}) joined {result.embedding_matches} pair(s) of pairs."
        )
    if result.dry_run and result.removed:
        console.print("Run again with --apply to remove them (`pairforge undo` brings them back).")


@click.command("redact")
@click.option("--apply", "apply_", is_flag=True, help="Replace personal data (undoable); without it, only count.")
@json_option
@click.pass_context
@handle_errors
def redact_cmd(ctx: click.Context, apply_: bool, as_json: bool) -> None:
    """Replace personal data in pairs with typed placeholders such as [EMAIL] (a dry run unless --apply)."""
    from engine.quality import redact_pairs

    store = open_store(ctx)
    count = redact_pairs(store, dry_run=not apply_)
    if as_json:
        emit_json({"pairs": count, "applied": apply_})
        return
    if apply_:
        console.print(f"Redacted personal data in {count} pair(s); `pairforge undo` reverts it.")
    else:
        console.print(f"{count} pair(s) contain personal data; run with --apply to replace it with placeholders.")


@click.command("split")
@click.option("--validation", type=click.FloatRange(0.01, 0.5), default=None, help="Validation share (default: split.validation_fraction).")
@click.option("--seed", type=int, default=None, help="Random seed (default: split.seed).")
@click.option("--by-document/--no-by-document", default=None, help="Keep each source document on one side.")
@json_option
@click.pass_context
@handle_errors
def split_cmd(ctx: click.Context, validation: float | None, seed: int | None, by_document: bool | None, as_json: bool) -> None:
    """Split into train and validation, stratified over kind and mode, near duplicates kept together."""
    from engine.quality import make_split

    store = open_store(ctx)
    result = make_split(store, validation, seed, by_document)
    if as_json:
        emit_json(asdict(result))
        return
    console.print(f"{result.train} train, {result.validation} validation pairs in {result.groups} groups (seed {result.seed}).")
    for name, sides in sorted(result.categories.items()):
        console.print(f"  {escape(name)}: {sides['train']} train, {sides['validation']} validation")
    if result.uncovered:
        console.print(f"[yellow]![/] Too few groups for validation in: {escape(', '.join(result.uncovered))}.")


@click.command("similar")
@click.argument("pair_id", type=int)
@json_option
@click.pass_context
@handle_errors
def similar_cmd(ctx: click.Context, pair_id: int, as_json: bool) -> None:
    """Show the near duplicates of one pair."""
    from engine.quality import NearDuplicateIndex

    store = open_store(ctx)
    pair = store.get_pair(pair_id)
    index = NearDuplicateIndex.from_store(store)
    matches = index.similar_to(pair)
    if as_json:
        emit_json([asdict(m) for m in matches])
        return
    if not matches:
        console.print(f"Pair {pair_id} has no near duplicates at threshold {index.threshold:g}.")
        return
    others = {p.id: p for p in store.get_pairs([m.pair_id for m in matches])}
    for match in matches:
        other = others.get(match.pair_id)
        text = other.instruction[:100] if other else ""
        console.print(f"#{match.pair_id} {match.score:.0f}% ({match.field}): {escape(text)}")
