"""Generate: backend, model, hosts and concurrency; an editable plan; the live queue."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Select, Static

from engine.errors import PairForgeError
from engine.generate import GENERATE_TASK
from engine.generate.backends import BACKEND_KINDS
from engine.generate.probe import PreflightError, count_probe_in, probe_run
from engine.jobs import JobEvent, JobRunner
from engine.store import Store
from tui.messages import EngineFailed, GenerationFinished, GenerationText, GenerationUpdate
from tui.safe_text import plain
from tui.sections import Section, SectionPane
from tui.widgets.form import field, give_keys_back
from tui.widgets.job_list import JobList
from tui.worker_errors import ReportsWorkerFailures

# The streamed answer keeps only its tail on screen.
STREAM_TAIL_CHARS = 600
# The run's events that change the figures shown (tokens and retries do not).
PROGRESS_EVENTS = frozenset({"started", "job_done", "job_failed", "finished", "stopped", "cancelled"})


def parse_concurrency(text: str) -> int | str:
    """The workers field as a setting: ``auto`` (also when empty), or a number from 1 to 64.

    Raises ValueError with the sentence to show for anything else.
    """
    value = text.strip().lower()
    if value in ("", "auto"):
        return "auto"
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"Workers {text.strip()!r} is neither a number nor auto: type e.g. 4, or auto.") from None
    if not 1 <= number <= 64:
        raise ValueError(f"Workers {number} is outside 1-64: type a number in that range, or auto.")
    return number


def _seconds(value: Any) -> str:
    if value is None:
        return "–"
    seconds = int(value)
    return f"{seconds // 60}m{seconds % 60:02d}s"


EMBEDDED = "llamacpp"
SERVED = "served"


def _model_placeholder(backend: str) -> str:
    """What the model field asks for with ``backend``."""
    return "smollm2 (default), gemma3 or .gguf" if backend == EMBEDDED else "model name"


class GeneratePane(SectionPane, ReportsWorkerFailures, Vertical):
    """Plan before running; start, pause, resume and cancel; watch jobs and throughput."""

    SECTION = Section("generate", "Generate", "Generate", "Plan and run generation.")

    BINDINGS = [
        Binding("ctrl+l", "list_models", "Models", id="list_models", tooltip="Ask the backend which models it offers."),
        Binding("ctrl+n", "make_plan", "Plan", id="make_plan", tooltip="Plan a run from the target and mix."),
        Binding("ctrl+r", "start", "Start", id="start_generation", tooltip="Save the plan and run the queue."),
        Binding("ctrl+z", "pause_resume", "Pause/resume", id="pause_generation", tooltip="Pause or resume the running queue."),
        Binding("ctrl+g", "cancel", "Cancel", id="cancel_generation", tooltip="Cancel the queued jobs of this run."),
    ]

    def __init__(self, store: Store, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store
        self._plan: Any = None
        self._queue: JobRunner | None = None
        self._paused = False
        self._stream = ""
        # Several jobs stream at once: the pane follows the one started last.
        self._stream_job: int | None = None
        self._last_pace = ""
        self._shown_form: dict[str, Any] = {}
        # The model field per backend: the embedded backend runs a GGUF or a built-in model
        # (generation.model_path), the servers a model they serve (generation.model).
        g = self.store.settings.generation
        self._models: dict[str, str] = {EMBEDDED: g.model_path or "", SERVED: g.model}
        self._saved_models = dict(self._models)

    def compose(self) -> ComposeResult:
        g = self.store.settings.generation
        with Horizontal(classes="form-row"):
            yield field("backend", Select([(b, b) for b in BACKEND_KINDS], value=g.backend, allow_blank=False, id="gen-backend"),
                        classes="narrow")
            yield field("model", Input(self._model_of(g.backend), placeholder=_model_placeholder(g.backend), id="gen-model"))
            yield field("pick", Select([], prompt="^l lists", id="gen-models"))
        with Horizontal(classes="form-row"):
            yield field("hosts", Input(",".join(g.hosts), placeholder="comma separated (empty: default)", id="gen-hosts"))
            yield field("workers", Input(str(g.concurrency), placeholder="auto", id="gen-concurrency",
                                         tooltip="Requests in flight per host: a number (1-64), or auto to find it per host."),
                        classes="narrow")
        with Horizontal(classes="form-row"):
            yield field("target", Input(str(g.target or ""), placeholder="pairs (empty: guide)", type="integer", id="gen-target"))
            yield field("mix", Input("", placeholder="instruction=0.7,refusal=0.1", id="gen-mix"))
        with Horizontal(classes="form-row buttons"):
            yield Button("Plan ^n", id="gen-plan")
            yield Button("Start ^r", id="gen-start", variant="primary")
            yield Button("Pause ^z", id="gen-pause")
            yield Button("Cancel ^g", id="gen-cancel", variant="error")
        yield Static(id="gen-plan-view")
        yield Static(id="gen-stats")
        yield JobList(task=GENERATE_TASK, id="job-list")
        yield Label("Answer being generated", id="gen-stream-title", classes="detail-heading")
        yield Static(id="gen-stream")

    def on_mount(self) -> None:
        # The server fields as shown: starting saves only what the person changed in them.
        self._shown_form = self._form()
        self.reload()

    def reload(self) -> None:
        """Show the job list and counts from the store."""
        self.query_one(JobList).refresh_from(self.store)
        counts = self.store.job_counts(task=GENERATE_TASK)
        if self._queue is None:
            if any(counts.values()):
                line = "Jobs: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v)
                line += f" · last run: {self._last_pace}" if self._last_pace else ""
            else:
                line = "No jobs yet: plan a run (ctrl+n), then start it (ctrl+r)."
            self.query_one("#gen-stats", Static).update(Text(line))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {"gen-plan": self.action_make_plan, "gen-start": self.action_start,
                   "gen-pause": self.action_pause_resume, "gen-cancel": self.action_cancel}
        if event.button.id in actions:
            event.stop()
            actions[event.button.id]()

    def _form(self) -> dict[str, Any]:
        backend = str(self.query_one("#gen-backend", Select).value)
        hosts = [h.strip() for h in self.query_one("#gen-hosts", Input).value.split(",") if h.strip()]
        workers = self.query_one("#gen-concurrency", Input).value
        try:
            concurrency: int | str = parse_concurrency(workers)
        except ValueError:
            concurrency = workers  # said when a run starts; planning does not need it
        target_text = self.query_one("#gen-target", Input).value.strip()
        return {
            "backend": backend, "model": self.query_one("#gen-model", Input).value.strip(), "hosts": hosts,
            "concurrency": concurrency, "target": int(target_text) if target_text else None,
            "mix": self.query_one("#gen-mix", Input).value.strip(),
        }

    def _model_of(self, backend: str) -> str:
        return self._models[EMBEDDED if backend == EMBEDDED else SERVED]

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "gen-models" and event.value is not Select.NULL:
            self.query_one("#gen-model", Input).value = str(event.value)
        elif event.select.id == "gen-backend" and self._shown_form:
            # A server's model name means nothing to the embedded backend, nor a GGUF path to a server.
            model = self.query_one("#gen-model", Input)
            backend = str(event.value)
            shown_for = EMBEDDED if model.placeholder == _model_placeholder(EMBEDDED) else SERVED
            self._models[shown_for] = model.value.strip()
            model.value, model.placeholder = self._model_of(backend), _model_placeholder(backend)

    # ------------------------------------------------------------------ models

    @work(exclusive=True, group="models", exit_on_error=False)
    async def action_list_models(self) -> None:
        """Ask the backend for its models and offer them in the model list."""
        form = self._form()
        from engine.generate.backends import make_backend

        try:
            backend = make_backend(form["backend"], form["model"] or "none", (form["hosts"] or [None])[0])
            models = await backend.list_models()
        except PairForgeError as exc:
            self.post_message(EngineFailed(str(exc), where="models"))
            return
        names = [getattr(m, "name", str(m)) for m in models]
        self.query_one("#gen-models", Select).set_options([(n, n) for n in names])
        self.notify(f"{len(names)} model(s) available.")

    # ------------------------------------------------------------------ plan and run

    def action_make_plan(self) -> None:
        """Plan a run and show its composition (nothing is saved yet)."""
        from engine.generate.planner import make_plan, parse_mix

        form = self._form()
        try:
            mix = parse_mix(form["mix"]) if form["mix"] else None
            self._plan = make_plan(self.store, target=form["target"], mix=mix)
        except (PairForgeError, ValueError) as exc:
            self.post_message(EngineFailed(str(exc), where="plan"))
            return
        plan = self._plan
        text = Text(f"Plan: {plan.target} pairs, {len(plan.jobs)} jobs over {len(plan.documents)} document(s)\n")
        text.append("kinds: " + ", ".join(f"{k} {v}" for k, v in plan.composition.items()) + "\n")
        text.append("modes: " + ", ".join(f"{k} {v}" for k, v in plan.by_mode.items()))
        for note in plan.notes:
            text.append("\n· ")
            text.append(plain(note))
        self.query_one("#gen-plan-view", Static).update(text)

    def _save_settings(self, form: dict[str, Any]) -> None:
        """Save the backend, model, hosts and workers the person changed in the form to pairforge.toml.

        Values shown as they came (perhaps from the environment or a flag for this run) stay out of the file.
        """
        edited = {
            key: form[key] for key in ("backend", "hosts", "concurrency") if form[key] != self._shown_form[key]
        }
        self._shown_form.update(edited)
        # The model is the backend's own: compared with what the file holds for that backend.
        which = EMBEDDED if form["backend"] == EMBEDDED else SERVED
        if form["model"] and form["model"] != self._saved_models[which]:
            edited["model_path" if which == EMBEDDED else "model"] = self._saved_models[which] = form["model"]
        if edited:
            self.store.change_settings({"generation": edited})

    def action_start(self) -> None:
        """Save the plan (planning first if needed) and run the queue."""
        if self._queue is not None:
            self.notify("Generation is already running.")
            return
        if self._plan is None and not self.store.job_counts(task=GENERATE_TASK).get("queued"):
            # Nothing planned and nothing queued: plan from the form first, as the button promises.
            self.action_make_plan()
            if self._plan is None:
                return  # the plan failed and said why
        form = self._form()
        from engine.generate.handler import generation_runner
        from engine.generate.hosts import backends_from_settings
        from engine.generate.planner import save_plan

        try:
            form["concurrency"] = parse_concurrency(str(form["concurrency"]))
            self._save_settings(form)
            if self._plan is not None:
                run_id: int | None = save_plan(self.store, self._plan)
                self._plan = None
            else:
                # No new plan: run whatever is queued (for example regenerate requests).
                run_id = None
            backends = backends_from_settings(
                self.store.settings, backend=form["backend"], model=form["model"] or None, hosts=form["hosts"] or None
            )
            self._queue = generation_runner(
                self.store, backends, concurrency_per_host=form["concurrency"], stream_tokens=True
            )
        except (PairForgeError, ValueError) as exc:
            self.post_message(EngineFailed(str(exc), where="generate"))
            return
        self._paused = False
        self.run_queue(run_id)
        give_keys_back(self.query_one(JobList))

    @work(exclusive=True, group="generation", exit_on_error=False)
    async def run_queue(self, run_id: int | None) -> None:
        """Run the queue in the app's event loop; events become messages."""
        queue = self._queue
        assert queue is not None, "action_start sets the runner first"

        def on_event(event: JobEvent) -> None:
            # Called in this event loop; only messages leave it.
            if event.kind == "token" and event.text:
                self.post_message(GenerationText(event.job_id, event.text))
            elif event.kind == "job_started":
                self.post_message(GenerationText(event.job_id, ""))
            elif event.kind == "job_failed" and event.error:
                self.post_message(EngineFailed(f"Job {event.job_id} failed: {event.error}", where="generate"))
            if event.kind in PROGRESS_EVENTS or event.kind == "job_started":
                progress = event.progress
                self.post_message(GenerationUpdate({
                    **progress.counts, "pairs_per_min": progress.pairs_per_min,
                    "tokens_per_s": progress.tokens_per_s, "eta_s": progress.eta_s, "pairs": progress.pairs,
                }, [event.job_id] if event.job_id is not None else []))

        summary = "Generation finished."
        try:
            # The first step of every run: one pair of each planned kind, so a model that
            # cannot do the job says so in seconds, not after every job has failed.
            self.query_one("#gen-stats", Static).update(Text("Pre-flight probe: one pair of each planned kind…"))
            probe = await probe_run(self.store, queue.backends, run_id)
            if not probe.ok:
                raise PreflightError(probe.message)
            if probe.results:
                self.notify(probe.message)
            result = count_probe_in(await queue.run(run_id, on_event), probe)
            summary = result.message
        except PairForgeError as exc:
            self.post_message(EngineFailed(str(exc), where="generate"))
            summary = "Generation stopped with an error."
        finally:
            self.post_message(GenerationFinished(summary))

    def action_pause_resume(self) -> None:
        """Pause or resume the running queue."""
        if self._queue is None:
            self.notify("Nothing is running.")
            return
        if self._paused:
            self._queue.resume()
        else:
            self._queue.pause()
        self._paused = not self._paused
        self.notify("Paused: running jobs finish, no new ones start." if self._paused else "Resumed.")

    def action_cancel(self) -> None:
        """Cancel the running queue, or the queued jobs when nothing runs."""
        if self._queue is not None:
            self._queue.cancel()
            self.notify("Cancelling: queued jobs are cancelled, running ones stop.")
        else:
            n = self.store.cancel_jobs()
            self.notify(f"Cancelled {n} queued job(s).")
            self.reload()

    def on_generation_update(self, message: GenerationUpdate) -> None:
        message.stop()
        s = message.stats
        parts = [f"{k} {s[k]}" for k in ("pairs", "done", "running", "queued", "failed") if s.get(k) is not None]
        pace = s.get("pairs_per_min")
        tps = s.get("tokens_per_s")
        parts.append(f"{pace:.1f} pairs/min" if isinstance(pace, int | float) else "– pairs/min")
        parts.append(f"{tps:.0f} tokens/s" if isinstance(tps, int | float) else "– tokens/s")
        parts.append(f"ETA {_seconds(s.get('eta_s'))}")
        self._last_pace = " · ".join(parts[-3:])
        self.query_one("#gen-stats", Static).update(Text(" · ".join(parts) + (" · paused" if self._paused else "")))
        self.query_one(JobList).jobs_changed(message.job_ids)

    def on_generation_text(self, message: GenerationText) -> None:
        message.stop()
        if not message.text:
            # A new job starts: follow its answer only.
            self._stream_job = message.job_id
            self._stream = ""
            self.query_one("#gen-stream-title", Label).update(f"Answer being generated (job {message.job_id})")
        elif message.job_id != self._stream_job:
            return
        self._stream = (self._stream + message.text)[-STREAM_TAIL_CHARS:]
        self.query_one("#gen-stream", Static).update(plain(self._stream))

    def on_generation_finished(self, message: GenerationFinished) -> None:
        message.stop()
        self._queue = None
        self._paused = False
        self.notify(message.summary)
        self.reload()


__all__ = ["GeneratePane"]
