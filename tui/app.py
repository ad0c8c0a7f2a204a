"""PairForgeApp: the Textual face of the engine. It holds no state the store does not have."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from textual import events, on, work
from textual.app import App
from textual.binding import Binding
from textual.widget import Widget
from textual.worker import Worker, WorkerState

from engine.errors import PairForgeError, ProjectNotFoundError
from engine.settings import SETTINGS_FILE
from engine.store import PairChange, Store
from tui.commands import PairForgeCommands
from tui.dialogs import ConfirmScreen
from tui.keys import KeyEntry, KeyOwner, all_keys
from tui.messages import (
    DeepChecksReady,
    EngineFailed,
    LiveReportBuilt,
    PairsChanged,
    QualityReady,
    ReviewVerdictChanged,
    RunDeepChecks,
    SettingsSaved,
    ShowPairs,
)
from tui.quality_figures import DeepFigures, PanelFigures, figures_from_report, figures_from_store
from tui.quality_model import QualityModel
from tui.screens.help import HelpScreen
from tui.screens.workspace import WorkspaceScreen
from tui.themes import DEFAULT_THEME, load_themes
from tui.worker_errors import failure_details, failure_sentence

if TYPE_CHECKING:
    from engine.quality import LiveReport

STYLES = Path(__file__).parent / "styles"
# The quality panel is recomputed at most this often while pairs stream in.
QUALITY_REFRESH_S = 0.5
LIVE_REPORT_DELAY_S = 0.3
# Background builds pause until the keyboard has been quiet this long.
TYPING_QUIET_S = 0.15
# Contradictions and near-duplicate groups compare pairs with each other: they run on their own
# up to this many pairs, once the report is built and again when writes have paused this long.
DEEP_AUTO_MAX_PAIRS = 20_000
DEEP_QUIET_S = 5.0
DEEP_LIMIT = 500


class PairForgeApp(KeyOwner, App[None]):
    """Import, generate, review and export a fine-tuning dataset from the keyboard."""

    TITLE = "PairForge"
    CSS_PATH = [STYLES / "app.tcss"]
    COMMANDS = App.COMMANDS | {PairForgeCommands}
    KEY_PARTS = (WorkspaceScreen,)
    BINDINGS = [
        Binding("f1,question_mark", "help", "Help", id="help", tooltip="List every key and what it does."),
        Binding("ctrl+q", "quit", "Quit", id="quit", tooltip="Quit; everything is already saved.", priority=True),
    ]

    def __init__(self, project: str | Path, *, backend: str | None = None, create: bool = False) -> None:
        super().__init__()
        self.project_path = Path(project).expanduser().resolve()
        self.backend_override = backend
        self.create_if_missing = create
        self.store: Store | None = None
        self._unsubscribe: Callable[[], None] | None = None
        # The live report and the cross-pair check state: changed only by this App's handlers,
        # passed down to the panes that show them.
        self.quality = QualityModel(auto_max_pairs=DEEP_AUTO_MAX_PAIRS, quiet_s=DEEP_QUIET_S)
        self._quality_dirty = threading.Event()
        self._last_key = 0.0
        self._last_figures: PanelFigures | None = None
        # True while the app applies the project's own theme: only a theme the person picks is saved.
        self._applying_settings = False
        themes, self._theme_problems = load_themes()
        for theme in themes:
            self.register_theme(theme)

    # ------------------------------------------------------------------ start-up

    def on_mount(self) -> None:
        for problem in self._theme_problems:
            self.notify(problem, severity="warning")
        try:
            self.store = Store.open(self.project_path, create=self.create_if_missing)
        except ProjectNotFoundError:
            self.push_screen(
                ConfirmScreen(
                    f"There is no PairForge project in {self.project_path}. Create one here?",
                    yes="Create", no="Quit",
                ),
                self._create_answered,
            )
            return
        except PairForgeError as exc:
            self.exit(message=str(exc))
            return
        self._start(self.store)

    def _create_answered(self, create: bool | None) -> None:
        if not create:
            self.exit(message=f"No project opened; run `pairforge init {self.project_path}` to create one.")
            return
        try:
            self.store = Store.init(self.project_path)
        except PairForgeError as exc:
            self.exit(message=str(exc))
            return
        self._start(self.store)

    def _start(self, store: Store) -> None:
        store.requeue_interrupted()
        if self.backend_override:
            try:
                store.override_settings({"generation": {"backend": self.backend_override}})  # this run only
            except PairForgeError as exc:
                self.exit(message=str(exc))
                return
        theme = store.settings.tui.theme
        self._applying_settings = True
        try:
            self.theme = theme if theme in self.available_themes else DEFAULT_THEME
        finally:
            self._applying_settings = False
        self.apply_keymap(store.settings.tui.keymap)
        self._unsubscribe = store.subscribe(self._on_store_change)
        self.push_screen(WorkspaceScreen(store, self.quality))

    def on_workspace_screen_painted(self) -> None:
        # Background readers start once the first screen is up, so they never delay it.
        self._compute_quality()
        self.set_interval(QUALITY_REFRESH_S, self._refresh_quality_if_dirty)
        # The full report reads every pair: it starts a moment later still.
        self.set_timer(LIVE_REPORT_DELAY_S, self._start_live_report)

    def apply_keymap(self, keymap: dict[str, str]) -> None:
        """Remap bindings by id from ``[tui] keymap`` (e.g. ``accept = "a,y"``)."""
        self.set_keymap({binding_id: keys for binding_id, keys in keymap.items() if keys.strip()})

    @property
    def workspace(self) -> WorkspaceScreen | None:
        """The main screen, once a project is open (None once the app is closing: its widgets are going)."""
        if self._closing or self._exit_renderables:
            return None
        for screen in self.screen_stack:
            if isinstance(screen, WorkspaceScreen):
                return screen if screen.is_attached and not screen._closing else None
        return None

    # ------------------------------------------------------------------ live updates

    def _on_store_change(self, changes: Sequence[PairChange]) -> None:
        # Called from whichever thread wrote: only post; the handler below owns the state.
        self.post_message(PairsChanged([c.pair_id for c in changes]))

    def on_pairs_changed(self, message: PairsChanged) -> None:
        self._quality_dirty.set()
        self.quality.pairs_changed(time.monotonic())
        if (workspace := self.workspace) is not None:
            workspace.pairs_changed(message.pair_ids)

    @work(thread=True, exclusive=True, group="live-report", exit_on_error=False)
    def _start_live_report(self) -> None:
        """Build the engine's live quality report off the UI thread; the handler takes it in."""
        from engine.quality import LiveReport

        if self.store is None:
            return
        # A failure goes to the worker-failure handler: the panel keeps the quick counts meanwhile.
        report = LiveReport.build(self.store, pause=self._wait_while_typing)
        self.post_message(LiveReportBuilt(report))

    def on_live_report_built(self, message: LiveReportBuilt) -> None:
        self.quality.report_built(message.report, time.monotonic())
        self._quality_dirty.set()
        if (workspace := self.workspace) is not None:
            workspace.duplicates_checked(None)

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self._last_key = time.monotonic()
        await super().on_event(event)

    def _wait_while_typing(self) -> None:
        """Hold a background build back while keys are arriving (at most a second at a time)."""
        waited = 0.0
        while time.monotonic() - self._last_key < TYPING_QUIET_S and waited < 1.0:
            time.sleep(0.02)
            waited += 0.02

    def _refresh_quality_if_dirty(self) -> None:
        if self._quality_dirty.is_set():
            self._quality_dirty.clear()
            self._compute_quality()
        if self.quality.take_due(time.monotonic()):
            self._run_deep_checks(forced=False)

    def _run_deep_checks(self, *, forced: bool) -> None:
        report = self.quality.report
        if report is None:
            self.notify("The quality report is still being built; contradictions can be checked once it is ready.")
            return
        deep = self.quality.next_deep(forced=forced)
        if deep is None:
            return  # running already
        self._set_deep(deep)
        if deep.state == "running":
            self._deep_checks(report)

    @work(thread=True, exclusive=True, group="deep-checks", exit_on_error=False)
    def _deep_checks(self, report: LiveReport) -> None:
        """Contradictions and near-duplicate groups, off the UI thread."""
        figures = DeepFigures("failed")
        try:
            cross = report.cross_checks(DEEP_LIMIT)
            figures = DeepFigures(
                "done", [c.pair_ids for c in cross.contradictions], len(cross.clusters), report.pair_count,
                {i for group in cross.clusters for i in group},
            )
        except PairForgeError as exc:
            self.post_message(EngineFailed(str(exc), where="contradictions"))
        finally:
            # Never left "running": an unexpected error goes on to the worker-failure handler.
            self.post_message(DeepChecksReady(figures))

    def _set_deep(self, deep: DeepFigures) -> None:
        self.quality.set_deep(deep)
        if self._last_figures is not None:
            self._last_figures.deep = deep
            if (workspace := self.workspace) is not None:
                workspace.show_quality(self._last_figures)

    def on_deep_checks_ready(self, message: DeepChecksReady) -> None:
        self._set_deep(message.deep)
        if (workspace := self.workspace) is not None:
            workspace.duplicates_checked(message.deep)

    def on_review_verdict_changed(self, message: ReviewVerdictChanged) -> None:
        # The verdict lives in the store, not in pair changes: the panel is recomputed on its next tick.
        self._quality_dirty.set()

    def on_run_deep_checks(self, message: RunDeepChecks) -> None:
        # Asked for by the person: build the near-duplicate index and check now, whatever the project's size.
        self._run_deep_checks(forced=True)

    @work(thread=True, exclusive=True, group="quality", exit_on_error=False)
    def _compute_quality(self) -> None:
        """Compute the panel's figures off the UI thread."""
        store = self.store
        if store is None:
            return
        report = self.quality.report
        # A failure goes to the worker-failure handler; the panel keeps its last figures.
        if report is not None:
            # Contradictions compare every pair with every near neighbour (seconds on big sets); the panel shows counts only.
            figures = figures_from_report(report.snapshot(contradictions=False), store)
        else:
            figures = figures_from_store(store)
        self.post_message(QualityReady(figures))

    def on_quality_ready(self, message: QualityReady) -> None:
        figures = message.figures
        figures.deep = self.quality.deep
        self._last_figures = figures
        if (workspace := self.workspace) is not None:
            workspace.show_quality(figures)

    def on_show_pairs(self, message: ShowPairs) -> None:
        if (workspace := self.workspace) is not None:
            workspace.show_pairs(message.pair_filter, message.label)

    def on_engine_failed(self, message: EngineFailed) -> None:
        """One clear notification, and a line in the log view."""
        self._report_error(message.text, where=message.where)

    @on(Worker.StateChanged)
    def _report_worker_failure(self, event: Worker.StateChanged) -> None:
        """Every failed worker, of the App or of a pane (``ReportsWorkerFailures``), is logged and notified."""
        if event.state is not WorkerState.ERROR:
            return
        worker = event.worker
        self.log.error(f"worker {worker.name!r} (group {worker.group!r}) failed", worker.error)
        self._report_error(failure_sentence(worker), where=worker.group, details=failure_details(worker))

    def _report_error(self, text: str, *, where: str = "", details: Sequence[str] = ()) -> None:
        self.notify(text, title=where or "PairForge", severity="error", timeout=8, markup=False)
        if (workspace := self.workspace) is not None:
            workspace.log_error(text, details)

    # ------------------------------------------------------------------ actions

    def action_help(self) -> None:
        """Show every key and what it does."""
        if not isinstance(self.screen, HelpScreen):
            keymap = self.store.settings.tui.keymap if self.store is not None else {}
            self.push_screen(HelpScreen(all_keys(type(self), keymap)))

    async def run_key_action(self, entry: KeyEntry) -> None:
        """Run ``entry``'s action (from the palette) on the node it belongs to, showing its section first."""
        if isinstance(self, entry.owner):
            await self.run_action(entry.action)
            return
        if (workspace := self.workspace) is None:
            return
        if entry.scope.section is not None:
            await workspace.action_section(entry.scope.section)
        nodes = [workspace, *workspace.walk_children(Widget)]
        target = next((node for node in nodes if isinstance(node, entry.owner)), None)
        if target is not None:
            await target.run_action(entry.action)

    def on_settings_saved(self, message: SettingsSaved) -> None:
        if message.theme_changed:
            self.theme = message.settings.tui.theme
        self.apply_keymap(message.settings.tui.keymap)

    def watch_theme(self, theme: str) -> None:
        # A theme the person picks is remembered in pairforge.toml for the next start; the one
        # the app falls back to when the project's is missing is not.
        if self.store is None or self._applying_settings or self.store.settings.tui.theme == theme:
            return
        try:
            self.store.change_settings({"tui": {"theme": theme}})
        except PairForgeError as exc:
            self.notify(str(exc), severity="error")

    def on_unmount(self) -> None:
        self.quality.close()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.store is not None:
            self.store.close()


def run_app(path: str | Path, *, backend: str | None = None) -> None:
    """Open the app on the project in ``path`` (offering to create one if there is none)."""
    project = Path(path)
    app = PairForgeApp(project, backend=backend)
    app.run()
    if app.return_code and app.return_code != 0:
        raise SystemExit(app.return_code)


__all__ = ["SETTINGS_FILE", "PairForgeApp", "run_app"]
