"""Project commands: init, status, docs, chunks, log, undo, redo."""

from __future__ import annotations

import click
from rich.table import Table

from engine.cli.common import (
    console,
    emit_json,
    escape,
    handle_errors,
    json_option,
    open_store,
    project_path,
)


@click.command("init")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option("--name", help="A name for the project (default: the folder's name).")
@json_option
@handle_errors
@click.pass_context
def init_cmd(ctx: click.Context, path: str | None, name: str | None, as_json: bool) -> None:
    """Create a project in PATH (default: --project or the current folder)."""
    from engine.store import Store

    store = Store.init(path or project_path(ctx), name=name)
    ctx.call_on_close(store.close)
    if as_json:
        emit_json({"project": str(store.root), "schema_version": store.schema_version})
    else:
        console.print(f"Project ready at [bold]{escape(str(store.root))}[/] (schema {store.schema_version}).")
        console.print("Next: [bold]pairforge import PATH[/] to add documents.")


@click.command("status")
@click.option("--log-lines", default=10, show_default=True, help="How many pipeline log entries to show.")
@json_option
@handle_errors
@click.pass_context
def status_cmd(ctx: click.Context, log_lines: int, as_json: bool) -> None:
    """Counts by kind, mode and status, and the pipeline log tail."""
    store = open_store(ctx)
    summary = store.summary()
    summary["documents_detail"] = [
        {"id": d.id, "path": d.path, "format": d.format, "chunks": d.n_chunks, "size": d.size}
        for d in store.list_documents()
    ]
    summary["log"] = [e.model_dump(mode="json") for e in store.log_tail(log_lines)]
    if as_json:
        emit_json(summary)
        return
    console.print(f"[bold]{escape(summary['name'])}[/] at {escape(summary['project'])}")
    console.print(
        f"{summary['documents']} documents, {summary['chunks']} chunks, {summary['pairs']} pairs"
        + (f", {summary['stale_pairs']} stale" if summary["stale_pairs"] else "")
    )
    table = Table(title="Pairs", show_edge=False)
    for column in ("by status", "by kind", "by mode"):
        table.add_column(column)
    columns = [summary["pairs_by_status"], summary["pairs_by_kind"], summary["pairs_by_mode"]]
    height = max((len(c) for c in columns), default=0)
    for i in range(height):
        cells = []
        for counts in columns:
            items = list(counts.items())
            cells.append(f"{escape(items[i][0])}: {items[i][1]}" if i < len(items) else "")
        table.add_row(*cells)
    if height:
        console.print(table)
    jobs = {k: v for k, v in summary["jobs"].items() if v}
    if jobs:
        console.print("Jobs: " + ", ".join(f"{k} {v}" for k, v in jobs.items()))
    _print_log(summary["log"])


def _print_log(entries: list[dict]) -> None:
    if not entries:
        return
    table = Table(title="Pipeline log (newest last)", show_edge=False)
    for column in ("when", "step", "action", "count", "message"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(e["ts"][11:19], e["step"], e["action"], str(e["count"]), escape(e["message"]))
    console.print(table)


@click.command("log")
@click.option("--lines", "-n", default=50, show_default=True)
@click.option("--step", help="Only this step (import, generate, quality, dedup, export, ...).")
@json_option
@handle_errors
@click.pass_context
def log_cmd(ctx: click.Context, lines: int, step: str | None, as_json: bool) -> None:
    """Show the pipeline log: every decision the pipeline made, and why."""
    store = open_store(ctx)
    entries = [e.model_dump(mode="json") for e in store.log_tail(lines, step=step)]
    if as_json:
        emit_json(entries)
    else:
        _print_log(entries)


@click.command("docs")
@json_option
@handle_errors
@click.pass_context
def docs_cmd(ctx: click.Context, as_json: bool) -> None:
    """List imported documents with chunk and pair counts."""
    store = open_store(ctx)
    pair_counts = store.document_pair_counts()
    rows = [
        {"id": d.id, "path": d.path, "format": d.format, "title": d.title, "size": d.size,
         "chunks": d.n_chunks, "pairs": pair_counts.get(d.id or 0, 0)}
        for d in store.list_documents()
    ]
    if as_json:
        emit_json(rows)
        return
    table = Table(show_edge=False)
    for column in ("id", "path", "format", "chunks", "pairs", "KB"):
        table.add_column(column, justify="right" if column in {"id", "chunks", "pairs", "KB"} else "left")
    for r in rows:
        table.add_row(str(r["id"]), escape(r["path"]), r["format"], str(r["chunks"]), str(r["pairs"]),
                      f"{r['size'] / 1024:.1f}")
    console.print(table if rows else "No documents yet: run [bold]pairforge import PATH[/].")


@click.command("chunks")
@click.argument("document")
@click.option("--full", is_flag=True, help="Print each chunk's whole text.")
@json_option
@handle_errors
@click.pass_context
def chunks_cmd(ctx: click.Context, document: str, full: bool, as_json: bool) -> None:
    """Show the chunks of DOCUMENT (an id or a path as listed by `pairforge docs`)."""
    from engine.errors import NotFoundError

    store = open_store(ctx)
    doc = store.get_document(int(document)) if document.isdigit() else store.find_document(document)
    if doc is None:
        raise NotFoundError(f"No document {document!r} in this project: list them with `pairforge docs`.")
    chunks = store.list_chunks(doc.id)
    if as_json:
        emit_json([c.model_dump(mode="json") for c in chunks])
        return
    console.print(f"[bold]{escape(doc.path)}[/]: {len(chunks)} chunks")
    for c in chunks:
        heading = " > ".join(c.heading_path) or "(no heading)"
        console.print(f"\n[bold]#{c.id}[/] [{c.start}:{c.end}] {escape(heading)}")
        if c.concepts:
            console.print("[dim]concepts: " + escape(", ".join(c.concepts[:12])) + "[/]")
        text = c.text if full else (c.text[:300] + ("…" if len(c.text) > 300 else ""))
        console.print(escape(text), markup=True)


def _undo_redo(ctx: click.Context, redo: bool, as_json: bool) -> None:
    store = open_store(ctx)
    result = store.redo() if redo else store.undo()
    word = "Redid" if redo else "Undid"
    if as_json:
        emit_json(None if result is None else {"action": result[0], "pairs": result[1]})
    elif result is None:
        console.print("Nothing to redo." if redo else "Nothing to undo.")
    else:
        console.print(f"{word} {result[0]} on {len(result[1])} pair(s).")


@click.command("undo")
@json_option
@handle_errors
@click.pass_context
def undo_cmd(ctx: click.Context, as_json: bool) -> None:
    """Undo the last edit to pairs (works across restarts)."""
    _undo_redo(ctx, False, as_json)


@click.command("redo")
@json_option
@handle_errors
@click.pass_context
def redo_cmd(ctx: click.Context, as_json: bool) -> None:
    """Redo the last undone edit."""
    _undo_redo(ctx, True, as_json)
