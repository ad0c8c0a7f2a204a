"""Export: formats, include/exclude rules, the system prompt rule, the full set or a trial subset;
run, preview files, show the card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Checkbox, Input, Label, ProgressBar, Select, Static

from engine.errors import PairForgeError
from engine.store import Store
from tui.dialogs import ConfirmScreen
from tui.messages import EngineFailed, ExportFinished, ExportProgress
from tui.safe_text import plain
from tui.sections import Section, SectionPane
from tui.widgets.form import field, give_keys_back
from tui.worker_errors import ReportsWorkerFailures

FORMATS = ("messages", "alpaca", "sharegpt", "completion", "hf", "all")
# A dataset is never exported with system prompts on some pairs only: strip them all or set one.
SYSTEM_PROMPT_RULES = (("strip system prompts", "strip"), ("one system prompt on every pair", "set"))
PREVIEW_LINES = 3


def preview_files(paths: list[Path]) -> Text:
    """The first lines of each exported file, as plain text."""
    text = Text()
    for path in paths:
        if not path.is_file():
            continue
        text.append(f"{path.name}\n", style="bold")
        try:
            with path.open(encoding="utf-8", errors="replace") as handle:
                for _, line in zip(range(PREVIEW_LINES), handle, strict=False):
                    text.append(plain(line[:400].rstrip("\n")))
                    text.append("\n")
        except OSError as exc:
            text.append(f"(cannot read: {exc.strerror})\n")
    return text


class ExportPane(SectionPane, ReportsWorkerFailures, Vertical):
    """Choose what to export and where; the card shows when it is done."""

    SECTION = Section("export", "Export", "Export", "Export the dataset and its card.")

    BINDINGS = [
        Binding("ctrl+r", "run_export", "Export", id="run_export", tooltip="Write the dataset files and the card."),
    ]

    def __init__(self, store: Store, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store

    def compose(self) -> ComposeResult:
        e = self.store.settings.export
        with Horizontal(classes="form-row"):
            yield field("format", Select([(f, f) for f in FORMATS], value=e.format, allow_blank=False, id="exp-format"))
            yield field("to", Input("", placeholder="folder (empty: export/ in the project)", id="exp-out"))
        with Horizontal(classes="form-row"):
            yield Checkbox("include pending", e.include_pending, id="exp-pending")
            yield Checkbox("exclude pairs with warnings", False, id="exp-no-warnings")
        with Horizontal(classes="form-row"):
            yield field("system", Select(list(SYSTEM_PROMPT_RULES), value="set" if e.system_prompt else "strip",
                                         allow_blank=False, id="exp-system-rule"))
            yield field("prompt", Input(e.system_prompt or "", placeholder="for 'one system prompt'", id="exp-system"))
        with Horizontal(classes="form-row"):
            yield field("kinds", Input("", placeholder="e.g. refusal; empty: all", id="exp-kinds"))
            yield field("trial", Input("", placeholder="size, e.g. 300; empty: full set", type="integer",
                                       id="exp-trial", tooltip="Export a stratified trial subset of this many pairs."))
        with Horizontal(classes="form-row buttons"):
            yield Button("Export ^r", id="exp-run", variant="primary")
        yield ProgressBar(id="exp-progress", show_eta=False)
        with VerticalScroll(id="exp-result"):
            yield Label("", id="exp-summary")
            yield Static(id="exp-preview")
            yield Static(id="exp-card")

    def on_mount(self) -> None:
        self.query_one("#exp-progress").display = False
        self.query_one("#exp-summary", Label).update(self._scope_line())

    def _scope_line(self) -> Text:
        counts = self.store.pair_counts("status")
        return Text(
            f"{counts.get('accepted', 0)} accepted, {counts.get('pending', 0)} pending, "
            f"{counts.get('rejected', 0)} rejected (rejected pairs are never exported)."
        )

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "exp-run":
            event.stop()
            self.action_run_export()

    def _options(self) -> dict[str, Any]:
        rule = str(self.query_one("#exp-system-rule", Select).value)
        kinds = [k.strip() for k in self.query_one("#exp-kinds", Input).value.split(",") if k.strip()]
        return {
            "formats": [str(self.query_one("#exp-format", Select).value)],
            "include_pending": self.query_one("#exp-pending", Checkbox).value,
            "exclude_severities": ["error", "warning"] if self.query_one("#exp-no-warnings", Checkbox).value else [],
            "kinds": kinds,
            "system_prompt": (self.query_one("#exp-system", Input).value.strip() or None) if rule == "set" else None,
        }

    def _trial_size(self) -> int | None:
        text = self.query_one("#exp-trial", Input).value.strip()
        return int(text) if text.lstrip("-").isdigit() else None

    def action_run_export(self) -> None:
        """Export (the full set, or a trial subset when a size is given), asking first when the
        output folder already holds files."""
        out_dir = Path(self.query_one("#exp-out", Input).value.strip() or self.store.root / "export").expanduser()
        if out_dir.exists() and any(out_dir.iterdir()):
            def answered(yes: bool | None) -> None:
                if yes:
                    self._start(out_dir, overwrite=True)

            self.app.push_screen(ConfirmScreen(f"{out_dir} already holds files. Overwrite them?", yes="Overwrite"), answered)
            return
        self._start(out_dir, overwrite=False)

    def _start(self, out_dir: Path, *, overwrite: bool) -> None:
        bar = self.query_one("#exp-progress", ProgressBar)
        bar.display = True
        bar.update(total=None, progress=0)
        self.run_export(out_dir, self._options(), overwrite, self._trial_size())
        give_keys_back(self.query_one("#exp-run", Button))

    @work(thread=True, exclusive=True, group="export", exit_on_error=False)
    def run_export(self, out_dir: Path, form: dict[str, Any], overwrite: bool, trial_size: int | None = None) -> None:
        """Run the engine's export (or trial subset) off the UI thread."""
        # Imported here: the writers pull in the datasets library, which the first paint does not need.
        from engine.export import ExportOptions, export_dataset, export_trial_set
        from engine.export import ExportProgress as ExportProgressFigures

        try:
            options = ExportOptions(**form, force=overwrite)

            def progress(update: ExportProgressFigures) -> None:
                self.post_message(ExportProgress(update.done, update.total))

            if trial_size is None:
                result = export_dataset(self.store, out_dir, options, on_progress=progress)
            else:
                result = export_trial_set(self.store, out_dir, trial_size, options, on_progress=progress)
        except (PairForgeError, ValueError) as exc:
            self.post_message(EngineFailed(str(exc), where="export"))
            return
        files = [str(f.path if Path(f.path).is_absolute() else result.out_dir / f.path) for f in result.files]
        card = ""
        if result.card_path is not None:
            card_path = Path(result.card_path)
            card_path = card_path if card_path.is_absolute() else result.out_dir / card_path
            if card_path.is_file():
                card = card_path.read_text(encoding="utf-8", errors="replace")
        what = f"a trial subset of {result.exported} pair(s)" if result.trial is not None else f"{result.exported} pair(s)"
        scripts = ", ".join(p.name for p in result.recipes)
        summary = f"Wrote {what} to {result.out_dir}" + (f"; training scripts {scripts}." if scripts else ".")
        self.post_message(ExportFinished(str(result.out_dir), files, card, summary))

    def on_export_progress(self, message: ExportProgress) -> None:
        message.stop()
        self.query_one("#exp-progress", ProgressBar).update(total=max(message.total, 1), progress=message.done)

    def on_export_finished(self, message: ExportFinished) -> None:
        # Not stopped: the workspace's flow guide learns the dataset was exported.
        self.query_one("#exp-progress", ProgressBar).update(total=1, progress=1)
        paths = [Path(f) for f in message.files] or sorted(Path(message.out_dir).glob("*.jsonl"))
        self.query_one("#exp-summary", Label).update(
            Text(message.summary or f"Wrote {len(paths)} file(s) to {message.out_dir}.")
        )
        self.query_one("#exp-preview", Static).update(preview_files(paths))
        self.query_one("#exp-card", Static).update(plain(message.card) if message.card else Text("(no dataset card written)"))
        self.notify(f"Exported to {message.out_dir}.")


__all__ = ["ExportPane", "preview_files"]
