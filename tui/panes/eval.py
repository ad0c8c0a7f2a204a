"""Eval: test a fine-tuned model against its base; every probe with both answers, flags and reference.

The figures come from the engine's eval report (:func:`engine.evaluate.comparison`), the run
from :func:`engine.evaluate.run_eval` through the one job runner, as ``pairforge eval`` does.
From a failing probe, ``p`` opens in Review the pairs that should have taught it and ``m``
plans targeted generation jobs on its sources.
"""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, DataTable, Input, Select, Static

from engine.errors import PairForgeError
from engine.evaluate import (
    FAILURE_KINDS,
    FAILURE_TITLES,
    METRIC_ROWS,
    comparison,
    eval_backends,
    eval_runs,
    generate_more_like,
    run_eval,
    teaching_pairs,
    verdict_line,
)
from engine.jobs import JobEvent, JobRunner
from engine.store import PairFilter, Store
from engine.store.evals import PROBE_KINDS
from tui.messages import EngineFailed, ShowPairs
from tui.safe_text import one_line, plain
from tui.sections import Section, SectionPane
from tui.widgets.form import field, give_keys_back
from tui.worker_errors import ReportsWorkerFailures

ALL, FAILING = "all", "failing"
FILTERS: list[tuple[str, str]] = [
    ("all probes", ALL), ("failing", FAILING),
    *((FAILURE_TITLES[k], k) for k in FAILURE_KINDS),
    *((f"kind: {k.replace('_', ' ')}", f"kind:{k}") for k in PROBE_KINDS),
]
# The report's metric labels, shortened so two columns of figures fit 80 cells.
SHORT_LABELS = {
    "copy_rate": "copies", "mean_copied_share": "copied share", "non_answer_rate": "non-answers",
    "refusal_precision": "refusal prec.", "refusal_recall": "refusal recall", "clarification_rate": "clarifies",
    "agreement": "agrees", "agreement_paraphrased": "agrees, reworded",
}
_STEPS = {"paraphrase": "paraphrasing", "tuned": "asking the model", "baseline": "asking the baseline"}
# The run's events that change the figures shown.
_PROGRESS_EVENTS = frozenset({"started", "job_done", "job_failed", "finished", "stopped", "cancelled"})


def probe_matches(row: dict[str, Any], run: str, chosen: str, search: str) -> bool:
    """Whether the probe ``row`` passes the filter ``chosen`` (on run ``run``'s answer) and contains ``search``."""
    failures = row["answers"].get(run, {}).get("failures", [])
    if search and search not in row["question"].lower():
        return False
    if chosen == FAILING:
        return bool(failures)
    if chosen.startswith("kind:"):
        return bool(row["kind"] == chosen[5:])
    return chosen == ALL or chosen in failures


class EvalPane(SectionPane, ReportsWorkerFailures, Vertical):
    """Runs listed, base vs tuned side by side, every probe filterable, failures one key from their fix."""

    SECTION = Section("eval", "Eval", "Eval", "Test a fine-tuned model against its base.")

    BINDINGS = [
        Binding("ctrl+r", "start", "Start", id="start_eval", tooltip="Ask the model (and the baseline) every probe."),
        Binding("ctrl+g", "cancel", "Cancel", id="cancel_eval", tooltip="Stop the eval; the next start resumes it."),
        Binding("p", "show_pairs", "Pairs", id="eval_pairs", tooltip="Open in Review the pairs that should have taught this probe."),
        Binding("m", "more_like", "More like this", id="eval_more_like", tooltip="Plan targeted generation jobs on this probe's sources."),
        Binding("M", "more_like_failing", "More for all", id="eval_more_like_failing", tooltip="Plan targeted jobs for every failing probe of this run.", show=False),
    ]

    class Progress(Message):
        """The running eval moved on."""

        def __init__(self, line: str) -> None:
            super().__init__()
            self.line = line

    class Finished(Message):
        """The eval ended; ``summary`` says how."""

        def __init__(self, summary: str, run_id: int | None) -> None:
            super().__init__()
            self.summary = summary
            self.run_id = run_id

    def __init__(self, store: Store, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store
        self._report: dict[str, Any] = {"runs": [], "probes": []}
        self._rows: list[dict[str, Any]] = []
        self._runners: list[JobRunner] = []
        self._eval_running = False

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield field("model", Input(placeholder="fine-tuned model", id="eval-model"))
            yield field("base", Input(placeholder="base model", id="eval-baseline"))
            yield Button("Start ^r", id="eval-start", variant="primary")
        yield Static(id="eval-status")
        with Horizontal(classes="form-row"):
            yield field("run", Select([], prompt="no eval yet", id="eval-run"))
            yield field("show", Select(FILTERS, value=ALL, allow_blank=False, id="eval-filter"), classes="narrow")
            yield field("find", Input(placeholder="question words", id="eval-search"), classes="narrow")
        yield Static(id="eval-metrics")
        table: DataTable[str] = DataTable(id="eval-probes", cursor_type="row", zebra_stripes=False)
        yield table
        yield Static(id="eval-detail")

    def on_mount(self) -> None:
        table = self.query_one("#eval-probes", DataTable)
        for label, width in (("id", 4), ("kind", 13), ("tuned", 16), ("base", 16)):
            table.add_column(label, width=width)
        table.add_column("question")
        self.reload()

    # ------------------------------------------------------------------ showing

    def reload(self, run_id: int | None = None) -> None:
        """Re-read the eval runs and show ``run_id`` (default: the one chosen, else the latest)."""
        runs = eval_runs(self.store)
        select = self.query_one("#eval-run", Select)
        options = [(self._run_label(r), r["id"]) for r in runs]
        value = select.value
        current = int(value) if isinstance(value, int) else None
        select.set_options(options)
        chosen: int | None = run_id or current or next(
            (int(r["id"]) for r in runs if r["params"].get("role") == "tuned"), None
        )
        if chosen is not None and any(value == chosen for _, value in options):
            with select.prevent(Select.Changed):
                select.value = chosen
        self._show(chosen)
        if not self._eval_running:
            shown = self._report["runs"]
            self._status(
                verdict_line(shown[0]) if shown else
                "Name the fine-tuned model and its base, then start (ctrl+r): the probes are built from the "
                "validation split the first time."
            )

    @staticmethod
    def _run_label(run: dict[str, Any]) -> str:
        # Short, so the choice fits its box at 80 columns; the figures below name both models in full.
        params = run["params"]
        role = "" if params.get("role") == "tuned" else " (base)"
        return f"#{run['id']} {one_line(str(params.get('model', '?')), 14)}{role}"

    def _status(self, line: str) -> None:
        self.query_one("#eval-status", Static).update(plain(line))

    def _show(self, run_id: int | None) -> None:
        self._report = comparison(self.store, run_id) if run_id is not None else {"runs": [], "probes": []}
        self.query_one("#eval-metrics", Static).update(self._metrics_view())
        self._fill_table()

    def _metrics_view(self) -> Table | Text:
        runs = self._report["runs"]
        if not runs:
            return Text("No eval yet.", style="dim")
        names = [("tuned" if r["role"] == "tuned" else "base", r) for r in runs]
        head = Text(" · ".join(f"{label}: {r['model']} (run {r['run_id']})" for label, r in names), style="bold")
        grid = Table.grid(padding=(0, 1))
        for _ in range(2):
            grid.add_column(style="dim", no_wrap=True, min_width=14)
            for _run in runs:
                grid.add_column(justify="right", no_wrap=True, min_width=6)
        columns = [""] + [label for label, _ in names]
        grid.add_row(*columns, *columns)
        rows = [[SHORT_LABELS.get(attr, label), *(fmt(r[attr]) for r in runs)] for label, attr, fmt, _ in METRIC_ROWS]
        rows.append(["failed", *(f"{r['failed']}/{r['answered']}" for r in runs)])
        half = (len(rows) + 1) // 2
        for left, right in zip(rows[:half], [*rows[half:], [""] * (len(runs) + 1)], strict=False):
            grid.add_row(*left, *right)
        outer = Table.grid()
        outer.add_row(head)
        outer.add_row(grid)
        return outer

    def _run_keys(self) -> tuple[str, str | None]:
        runs = self._report["runs"]
        tuned = str(runs[0]["run_id"]) if runs else ""
        base = str(runs[1]["run_id"]) if len(runs) > 1 else None
        return tuned, base

    def _fill_table(self) -> None:
        table = self.query_one("#eval-probes", DataTable)
        table.clear()
        tuned, base = self._run_keys()
        chosen = str(self.query_one("#eval-filter", Select).value)
        search = self.query_one("#eval-search", Input).value.strip().lower()
        self._rows = [r for r in self._report["probes"] if probe_matches(r, tuned, chosen, search)]

        def cell(row: dict[str, Any], run: str | None) -> Text:
            if run is None or run not in row["answers"]:
                return Text("–", style="dim")
            failures = row["answers"][run]["failures"]
            return Text(failures[0].replace("_", " ") if failures else "pass", style="red" if failures else "green")

        for row in self._rows:
            table.add_row(
                str(row["probe_id"]), row["kind"].replace("_", " "), cell(row, tuned), cell(row, base),
                plain(one_line(row["question"], 200)), key=str(row["probe_id"]),
            )
        self._show_detail()

    def _current_row(self) -> dict[str, Any] | None:
        table = self.query_one("#eval-probes", DataTable)
        if not self._rows or table.cursor_row < 0 or table.cursor_row >= len(self._rows):
            return None
        return self._rows[table.cursor_row]

    def _show_detail(self) -> None:
        row = self._current_row()
        detail = self.query_one("#eval-detail", Static)
        if row is None:
            detail.update(Text("No probe matches." if self._report["probes"] else "", style="dim"))
            return
        text = Text()
        text.append(f"Probe {row['probe_id']} · {row['kind'].replace('_', ' ')}", style="bold")
        if row["topic"]:
            text.append(f" · topic not in the corpus: {row['topic']}")
        text.append("\n")
        text.append_text(plain(row["question"]))
        for run in self._report["runs"]:
            answer = row["answers"].get(str(run["run_id"]))
            if answer is None:
                continue
            text.append(f"\n\n{run['model']} ({run['role']})", style="bold")
            if answer["failures"]:
                text.append(" · " + ", ".join(FAILURE_TITLES.get(f, f) for f in answer["failures"]), style="red")
            if answer["agreement"] is not None:
                text.append(f" · agreement {answer['agreement']:.0f}/10")
            if answer["flags"]:
                text.append(" · flags: " + ", ".join(answer["flags"]), style="yellow")
            text.append("\n")
            text.append_text(plain(answer["answer"]))
        if row["reference"]:
            text.append("\n\nReference", style="bold")
            text.append("\n")
            text.append_text(plain(row["reference"]))
        detail.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "eval-run":
            event.stop()
            if isinstance(event.value, int):
                self._show(event.value)
        elif event.select.id == "eval-filter":
            event.stop()
            self._fill_table()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "eval-search":
            event.stop()
            self._fill_table()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "eval-start":
            event.stop()
            self.action_start()

    @property
    def eval_running(self) -> bool:
        """True while an eval started here runs."""
        return self._eval_running

    # ------------------------------------------------------------------ failures to pairs

    def _current_probe_id(self) -> int | None:
        row = self._current_row()
        return int(row["probe_id"]) if row is not None else None

    def action_show_pairs(self) -> None:
        """Open Review on the pairs that should have taught the probe under the cursor."""
        probe_id = self._current_probe_id()
        probe = self.store.evals.get_probe(probe_id) if probe_id is not None else None
        if probe is None:
            self.notify("Choose a probe first.")
            return
        ids, label = teaching_pairs(self.store, probe)
        if not ids:
            self.notify("No training pair covers this probe: press m to plan some.")
            return
        self.post_message(ShowPairs(PairFilter(ids=ids), label))

    def _plan_more(self, probe_ids: list[int]) -> None:
        probes = self.store.evals.probes(ids=probe_ids)
        try:
            run_id, plan = generate_more_like(self.store, probes)
        except PairForgeError as exc:
            self.post_message(EngineFailed(str(exc), where="eval"))
            return
        kinds = ", ".join(f"{k} {v}" for k, v in plan.composition.items())
        self.notify(f"Planned run {run_id}: {len(plan.jobs)} targeted job(s) ({kinds}); start them in Generate.")

    def action_more_like(self) -> None:
        """Plan targeted generation jobs for the probe under the cursor."""
        probe_id = self._current_probe_id()
        if probe_id is None:
            self.notify("Choose a probe first.")
            return
        self._plan_more([probe_id])

    def action_more_like_failing(self) -> None:
        """Plan targeted generation jobs for every failing probe of the shown run."""
        tuned, _ = self._run_keys()
        failing = [r["probe_id"] for r in self._report["probes"] if r["answers"].get(tuned, {}).get("failures")]
        if not failing:
            self.notify("No probe of this run failed.")
            return
        self._plan_more(failing)

    # ------------------------------------------------------------------ running

    def action_start(self) -> None:
        """Ask the model named in the form (and its base) every probe."""
        if self._eval_running:
            self.notify("An eval is already running.")
            return
        model = self.query_one("#eval-model", Input).value.strip()
        baseline = self.query_one("#eval-baseline", Input).value.strip() or None
        if not model:
            self.post_message(EngineFailed("Name the fine-tuned model to evaluate in the model box.", where="eval"))
            return
        self._eval_running = True
        self._runners = []
        self._status(f"Starting the eval of {model}…")
        self.run_eval_worker(model, baseline)
        give_keys_back(self.query_one("#eval-probes", DataTable))

    @work(exclusive=True, group="eval", exit_on_error=False)
    async def run_eval_worker(self, model: str, baseline: str | None) -> None:
        """Run the eval in the app's event loop; progress becomes messages."""

        def on_event(step: str, event: JobEvent) -> None:
            if event.kind in _PROGRESS_EVENTS:
                p = event.progress
                eta = f"{p.eta_s:.0f}s" if p.eta_s is not None else "–"
                self.post_message(self.Progress(
                    f"{_STEPS.get(step, step)}: {p.done + p.failed}/{p.total} · {p.pairs_per_min:.0f} probes/min · ETA {eta}"
                ))

        run_id: int | None = None
        summary = "The eval finished."
        backends = None
        try:
            backends = eval_backends(self.store.settings, model=model, baseline=baseline)
            outcome = await run_eval(
                self.store, model=model, backends=backends.model, baseline=baseline,
                baseline_backends=backends.baseline, paraphrase_backends=backends.paraphrase, judge=backends.judge,
                concurrency=backends.concurrency, on_event=on_event, on_runner=self._runners.append,
            )
            run_id = outcome.tuned_run
            if outcome.stopped_reason:
                raise PairForgeError(outcome.stopped_reason)
            summary = " ".join([f"Eval run {run_id} finished.", *outcome.notes])
        except (PairForgeError, ValueError) as exc:
            self.post_message(EngineFailed(str(exc), where="eval"))
            summary = "The eval stopped with an error."
        finally:
            if backends is not None:
                from engine.generate.hosts import close_backends

                await close_backends(backends.all())
            self.post_message(self.Finished(summary, run_id))

    def action_cancel(self) -> None:
        """Stop the running eval; its queued jobs stay for the next start to resume."""
        if not self._eval_running:
            self.notify("No eval is running.")
            return
        for runner in self._runners:
            runner.cancel()
        self.notify("Stopping the eval: start it again with the same models to resume.")

    def on_eval_pane_progress(self, message: EvalPane.Progress) -> None:
        message.stop()
        self._status(message.line)

    def on_eval_pane_finished(self, message: EvalPane.Finished) -> None:
        message.stop()
        self._eval_running = False
        self._runners = []
        self.notify(message.summary)
        self.reload(message.run_id)
        self._status(message.summary)


__all__ = ["EvalPane", "probe_matches"]
