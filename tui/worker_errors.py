"""Worker failures reach one handler on the App, whatever node ran the worker.

Textual posts ``Worker.StateChanged`` to the node that started the worker and does not let it
bubble, so a pane's failed worker would reach no App-level handler: ``ReportsWorkerFailures``
passes the failures of the node it is mixed into up to the App.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

from textual.worker import Worker, WorkerState

from engine.errors import PairForgeError

if TYPE_CHECKING:
    from textual.dom import DOMNode

    _MixinBase = DOMNode
else:
    # A plain class at run time: a DOMNode base placed first would replace the widget's own
    # base for CSS (Textual follows the first DOMNode base), dropping e.g. Vertical's styles.
    _MixinBase = object

# Frames of an unexpected failure's traceback written to the Log section: enough to find the bug.
TRACEBACK_LINES = 12


class ReportsWorkerFailures(_MixinBase):
    """Mixed into every node that runs workers: their failures go up to the App's handler."""

    def _on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # The private name keeps this running when the class also handles on_worker_state_changed.
        if event.state is WorkerState.ERROR:
            self.app.post_message(Worker.StateChanged(event.worker, event.state))


def failure_sentence(worker: Worker[object]) -> str:
    """One sentence for a failed worker: an engine error as it is, anything else named as a bug."""
    error = worker.error
    if isinstance(error, PairForgeError):
        return str(error)
    kind = type(error).__name__ if error is not None else "an unknown error"
    return (f"{worker.group or worker.name} stopped on an unexpected {kind}: {error}. "
            "This is a bug; the Log section (6) has the details to report.")


def failure_details(worker: Worker[object]) -> list[str]:
    """The last lines of an unexpected failure's traceback (none for an engine error)."""
    error = worker.error
    if error is None or isinstance(error, PairForgeError):
        return []
    lines = "".join(traceback.format_exception(error)).rstrip("\n").splitlines()
    if len(lines) <= TRACEBACK_LINES + 1:
        return lines
    # The header says what follows; the innermost frames say where it broke.
    return [lines[0], "    ...", *lines[-TRACEBACK_LINES:]]


__all__ = ["ReportsWorkerFailures", "failure_details", "failure_sentence"]
