"""A one-line guide to the flow (import, generate, review, export) that follows where the project stands."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Static

from engine.errors import PairForgeError
from engine.store import PairFilter, Store
from tui.worker_errors import ReportsWorkerFailures

# step -> (label, the section that does it, what to do there, what to do from elsewhere)
STEPS: dict[str, tuple[str, str, str, str]] = {
    "import": ("Import", "documents", "type a path, Enter imports", "to import documents"),
    "generate": ("Generate", "generate", "plan a run, then start it", "to generate pairs"),
    "review": ("Review", "review", "accept or reject each pair", "to review the pairs"),
    "export": ("Export", "export", "pick a format and export", "to export the dataset"),
}
# Writes arrive in bursts while a run streams: the guide re-reads the project at most this often.
REFRESH_S = 0.5


@dataclass(frozen=True)
class FlowState:
    """How far a project has come through the flow."""

    documents: int
    chunks: int
    pairs: int
    generated: int  # pairs not imported from an existing dataset
    reviewed: int
    exported: bool

    @property
    def done(self) -> dict[str, bool]:
        """Each step, and whether it has been done at least once (or has nothing to do)."""
        return {
            "import": self.documents > 0 or self.pairs > 0,
            # Only datasets imported: no chunk to generate from, their pairs are the ones to review.
            "generate": self.generated > 0 or (self.pairs > 0 and self.chunks == 0),
            "review": self.reviewed > 0,
            "export": self.exported,
        }

    @property
    def next_step(self) -> str | None:
        """The first step not done yet; None once the project has been exported (the flow is known)."""
        if self.exported:
            return None
        return next(step for step, done in self.done.items() if not done)


def read_flow_state(store: Store) -> FlowState:
    """Where ``store``'s project stands; raises PairForgeError if the project cannot be read."""
    documents = store.list_documents()
    pairs = store.count_pairs()
    return FlowState(
        documents=len(documents),
        chunks=sum(d.n_chunks for d in documents),
        pairs=pairs,
        generated=pairs - store.count_pairs(PairFilter(kind="imported")),
        reviewed=store.count_pairs(PairFilter(status="accepted")) + store.count_pairs(PairFilter(status="rejected")),
        exported=bool(store.log_tail(1, step="export")),
    )


class FlowGuide(ReportsWorkerFailures, Static):
    """Import › Generate › Review › Export, the next step picked out with what to do; hidden once exported."""

    COMPONENT_CLASSES = {"flow-guide--done", "flow-guide--next"}

    class Read(Message):
        """The project's place in the flow was read."""

        def __init__(self, state: FlowState) -> None:
            super().__init__()
            self.state = state

    def __init__(self, store: Store, *, section_keys: dict[str, str], section: str, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store
        # section -> the key that shows it (after the person's keymap)
        self.section_keys = section_keys
        self.section = section
        self.state: FlowState | None = None
        self._timer: Timer | None = None

    def on_mount(self) -> None:
        self.display = False
        self._read()

    def project_changed(self) -> None:
        """Documents, pairs or exports changed: re-read where the project stands, soon."""
        if self.state is not None and self.state.next_step is None:
            return  # exported: the guide is gone for good
        if self._timer is None:
            self._timer = self.set_timer(REFRESH_S, self._due)

    def show_section(self, section: str) -> None:
        """The person moved to ``section``: say what to do from there."""
        self.section = section
        self._show()

    def _due(self) -> None:
        self._timer = None
        self._read()

    @work(thread=True, exclusive=True, group="flow-guide", exit_on_error=False)
    def _read(self) -> None:
        try:
            state = read_flow_state(self.store)
        except PairForgeError:
            return  # the panes that show the data report the failure
        self.post_message(self.Read(state))

    def on_flow_guide_read(self, message: FlowGuide.Read) -> None:
        message.stop()
        self.state = message.state
        self._show()

    def _show(self) -> None:
        step = self.state.next_step if self.state is not None else None
        self.display = step is not None
        if self.state is not None and step is not None:
            self.update(self.line(self.state, step))

    def line(self, state: FlowState, step: str) -> Text:
        """The guide's text: every step in order, the next one picked out, then what to do."""
        done_style = self.get_component_rich_style("flow-guide--done", partial=True)
        next_style = self.get_component_rich_style("flow-guide--next", partial=True)
        text = Text(no_wrap=True, overflow="ellipsis")
        for n, (name, (label, *_)) in enumerate(STEPS.items()):
            if n:
                text.append(" › ")
            if name == step:
                text.append(label, next_style)
            elif state.done[name]:
                text.append(f"✓ {label}", done_style)
            else:
                text.append(label)
        _, section, here, elsewhere = STEPS[step]
        key = self.section_keys.get(section)
        text.append("   ")
        text.append(here if section == self.section or key is None else f"press {key} {elsewhere}")
        return text


__all__ = ["STEPS", "FlowGuide", "FlowState", "read_flow_state"]
