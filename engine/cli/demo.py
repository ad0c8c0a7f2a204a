"""``pairforge demo``: the whole pipeline on the bundled sample documents, offline.

Import -> plan -> generate with the embedded model -> check -> split -> export, through
the same engine calls the other commands and the app use.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from engine.cli.common import BACKEND_CHOICE, console, emit_json, escape, handle_errors, json_option
from engine.errors import PairForgeError

DEFAULT_DEMO_DIR = "pairforge-demo"


# Decoding slots of the embedded server: on 2 cores, 4 requests at once give about 1.4x the
# tokens per second of one (continuous batching); more only lengthens each answer.
EMBEDDED_SLOTS = 4


def demo_settings(store: Any, pairs: int, backend: str, model: str | None = None) -> None:
    """Scale the plan's minimums to a trial run and choose the backend; saved to pairforge.toml."""
    generation: dict[str, Any] = {
        "backend": backend,
        "target": pairs,
        # A trial run keeps the dataset's shape (refusals, multi-hop) at a tenth of the real minimums.
        "min_refusals": max(2, pairs // 10),
        "min_multi_hop": max(2, pairs // 12),
        # The embedded model is small: shorter answers keep each pair to a few seconds.
        "num_predict": min(store.file_settings.generation.num_predict, 384),
        "concurrency": EMBEDDED_SLOTS if backend == "llamacpp" else 1,
    }
    if model is not None:
        generation["model_path" if backend == "llamacpp" else "model"] = model
    store.change_settings({"generation": generation})


def _model_phrase(generation: Any) -> str:
    """What the demo's model is, for its closing line."""
    if generation.backend != "llamacpp":
        return f"{generation.model} on {generation.backend}"
    from engine.generate.backends.llamacpp import BUILTIN_MODELS, DEFAULT_BUILTIN

    builtin = BUILTIN_MODELS.get((generation.model_path or DEFAULT_BUILTIN).lower())
    if builtin is None:
        return f"the embedded model {Path(generation.model_path).name}"
    return f"a tiny embedded model ({builtin.description.split(' (')[0]})"


def run_demo(
    project_dir: Path, *, pairs: int, backend: str, as_json: bool, model: str | None = None,
    probe: bool = True,
) -> dict[str, Any]:
    """Run the demo pipeline into ``project_dir``; returns a summary of every step."""
    from engine.export import ExportOptions, export_dataset
    from engine.generate.hosts import backends_from_settings
    from engine.generate.planner import make_plan, save_plan
    from engine.ingest import import_paths
    from engine.quality import LiveReport, make_split, recheck
    from engine.resources import sample_docs_dir
    from engine.store import PairFilter, Store

    say = (lambda *_: None) if as_json else console.print
    summary: dict[str, Any] = {"project": str(project_dir)}
    store = Store.init(project_dir, name="pairforge-demo")
    try:
        demo_settings(store, pairs, backend, model)
        say(f"[bold]1/5 Import[/] {escape(str(sample_docs_dir()))}")
        report = import_paths(store, [sample_docs_dir()])
        summary["import"] = {
            "imported": len(report.imported), "unchanged": len(report.unchanged),
            "failed": len(report.failed), "chunks": report.chunks, "pairs_imported": report.pairs_imported,
        }
        say(
            f"    {len(report.imported)} new, {len(report.unchanged)} unchanged, {len(report.failed)} failed; "
            f"{report.chunks} chunks, {report.pairs_imported} dataset rows"
        )

        say(f"[bold]2/5 Generate[/] {pairs} pairs with the {backend} backend")
        from engine.cli.generate import _pending_run, _run_queue

        # Running jobs of a killed demo count as pending: the queue re-queues them when it starts.
        run_id = _pending_run(store)
        generated = store.count_pairs() - store.count_pairs(PairFilter(kind="imported"))
        if run_id is None and generated < pairs:
            plan = make_plan(store, target=pairs)
            run_id = save_plan(store, plan)
            say("    plan: " + ", ".join(f"{k} {v}" for k, v in plan.composition.items() if v))
        if run_id is not None:
            backends = backends_from_settings(store.settings, backend=backend)
            try:
                result = asyncio.run(_run_queue(store, backends, run_id, None, as_json, probe=probe))
                summary["generate"] = {"message": result.message, "pairs": result.pairs}
                say(f"    {escape(result.message)}")
            except PairForgeError as exc:
                # The rest of the pipeline still runs on what was imported.
                summary["generate"] = {"error": str(exc)}
                say(f"    [yellow]{escape(str(exc))}[/]")
        else:
            say("    already generated; nothing queued.")

        say("[bold]3/5 Check[/]")
        recheck(store)
        live = LiveReport.build(store)
        snapshot = live.snapshot()
        live.close()
        summary["check"] = {t.name: {"value": t.value, "target": t.target, "status": t.status} for t in snapshot.thresholds}
        for t in snapshot.thresholds:
            colour = {"ok": "green", "warning": "yellow"}.get(str(t.status), "red")
            say(f"    [{colour}]{t.status:>7}[/] · {escape(t.message)}")
        warned = store.count_pairs(PairFilter(warning="any"))
        summary["check"]["pairs_with_warnings"] = warned
        say(f"    {warned} of {store.count_pairs()} pairs carry a warning; `pairforge check` explains each.")

        say("[bold]4/5 Split[/]")
        split = make_split(store)
        summary["split"] = {"train": split.train, "validation": split.validation}
        say(f"    train {split.train}, validation {split.validation}")

        say("[bold]5/5 Export[/] every format with a dataset card")
        out = project_dir / "export"
        result = export_dataset(store, out, ExportOptions(formats=["all"], include_pending=True, force=True))
        summary["export"] = {"out": str(out), "card": str(result.card_path), "files": len(result.files)}
        say(f"    {len(result.files)} files in {escape(str(out))}; card: {escape(str(result.card_path))}")
        say(
            f"\nThis was a trial run with {_model_phrase(store.settings.generation)}: expect weak pairs "
            "and missing thresholds. "
            f"Review them with [bold]pairforge open {escape(str(project_dir))}[/]."
        )
    finally:
        store.close()
    return summary


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=DEFAULT_DEMO_DIR, show_default=True,
              help="Where to create the demo project.")
@click.option("--pairs", type=click.IntRange(5, 2000), default=12, show_default=True, help="Pairs to generate.")
@click.option("--backend", type=BACKEND_CHOICE, default="llamacpp", show_default=True,
              help="The embedded model needs no server.")
@click.option("--model", help="Model: for the embedded backend a built-in name (smollm2, gemma3) or a GGUF path.")
@click.option("--no-probe", is_flag=True, help="Skip the pre-flight probe (one pair of each planned kind first).")
@json_option
@handle_errors
def demo_cmd(directory: str, pairs: int, backend: str, model: str | None, no_probe: bool, as_json: bool) -> None:
    """Run the whole pipeline on the bundled sample documents (offline with the embedded model)."""
    summary = run_demo(
        Path(directory).resolve(), pairs=pairs, backend=backend, as_json=as_json, model=model,
        probe=not no_probe,
    )
    if as_json:
        emit_json(summary)
    if "error" in summary.get("generate", {}):
        sys.exit(1)


__all__ = ["demo_cmd", "run_demo"]
