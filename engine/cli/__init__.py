"""The headless command line: every dataset operation the app offers, for scripts and SSH.

Sub-commands live in one module per feature and are imported only when called, so
``pairforge --help`` starts fast (no datasets, transformers or pyarrow import).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from engine.cli.common import global_options, share_global_options

# command name -> "module:attribute"; each feature owns its module.
COMMANDS: dict[str, str] = {
    "init": "engine.cli.project:init_cmd",
    "status": "engine.cli.project:status_cmd",
    "docs": "engine.cli.project:docs_cmd",
    "chunks": "engine.cli.project:chunks_cmd",
    "log": "engine.cli.project:log_cmd",
    "undo": "engine.cli.project:undo_cmd",
    "redo": "engine.cli.project:redo_cmd",
    "import": "engine.cli.ingest:import_cmd",
    "plan": "engine.cli.generate:plan_cmd",
    "generate": "engine.cli.generate:generate_cmd",
    "jobs": "engine.cli.generate:jobs_cmd",
    "models": "engine.cli.generate:models_cmd",
    "check": "engine.cli.quality:check_cmd",
    "sample": "engine.cli.quality:sample_cmd",
    "dedup": "engine.cli.quality:dedup_cmd",
    "redact": "engine.cli.quality:redact_cmd",
    "split": "engine.cli.quality:split_cmd",
    "similar": "engine.cli.quality:similar_cmd",
    "export": "engine.cli.export:export_cmd",
    "trial-set": "engine.cli.export:trial_set_cmd",
    "judge": "engine.cli.judge:judge_cmd",
    "curate": "engine.cli.judge:curate_cmd",
    "eval": "engine.cli.evaluate:eval_cmd",
    "repair": "engine.cli.repair:repair_cmd",
    "demo": "engine.cli.demo:demo_cmd",
}

# One line each, so the top-level help needs no imports.
SUMMARIES: dict[str, str] = {
    "init": "Create a project folder (pairforge.toml + pairforge.db).",
    "status": "Counts by kind, mode and status, and the pipeline log tail.",
    "docs": "List imported documents with chunk and pair counts.",
    "chunks": "Show the chunks of one document.",
    "log": "Show the pipeline log: every decision the pipeline made.",
    "undo": "Undo the last edit to pairs (works across restarts).",
    "redo": "Redo the last undone edit.",
    "import": "Import files and folders: documents and existing datasets.",
    "plan": "Show (and save) the generation plan before it runs.",
    "generate": "Generate pairs with a local model as a persistent queue.",
    "jobs": "List generation jobs and their state.",
    "models": "List the models a backend offers.",
    "check": "Run every pair and dataset check and print the report.",
    "sample": "The 20-pair review sample: mark pairs pass or fail, draw a new one.",
    "dedup": "Group near-duplicate pairs and keep the best of each cluster.",
    "redact": "Replace personal data in pairs with typed placeholders.",
    "split": "Split into train and validation, stratified and grouped.",
    "similar": "Show the near duplicates of one pair.",
    "export": "Export to Alpaca, ShareGPT, messages, completion, HF datasets.",
    "trial-set": "Export a small stratified trial subset to train on first.",
    "judge": "Score pairs with a local judge model.",
    "curate": "Reject pairs whose judge score is below a threshold.",
    "eval": "Test a fine-tuned model against its base: copies, refusals, variations.",
    "repair": "Have the model fix flagged pairs (a dry run unless --apply).",
    "demo": "Run the whole pipeline on the bundled sample documents.",
}


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self._find_command(cmd_name)
        return share_global_options(command) if command is not None else None

    def _find_command(self, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        target = self.lazy.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("engine."):
                return _unavailable(cmd_name)
            raise
        command = getattr(module, attr, None)
        if command is None:
            return _unavailable(cmd_name)
        self.commands[cmd_name] = command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUMMARIES.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _unavailable(name: str) -> click.Command:
    @click.command(name=name, help=SUMMARIES.get(name, ""))
    def missing() -> None:
        raise click.ClickException(f"`pairforge {name}` is not available in this build.")

    return missing


def build_group(**extra: Any) -> LazyGroup:
    """The top-level group; the app's entry point adds its own commands to it."""

    @click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]}, **extra)
    @global_options
    @click.version_option(package_name="pairforge", prog_name="pairforge")
    @click.pass_context
    def group(ctx: click.Context, project: str) -> None:
        """PairForge: turn your documents into a fine-tuning dataset you can trust."""
        ctx.ensure_object(dict)["project"] = project

    return group  # type: ignore[return-value]


main = build_group(name="pairforge")

__all__ = ["COMMANDS", "LazyGroup", "build_group", "main"]
