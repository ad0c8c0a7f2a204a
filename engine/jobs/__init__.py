"""One job runner for every long-running kind; each kind (generate, judge, repair, eval) is a handler.

Typical use::

    runner = JobRunner(store, backends, handler, concurrency_per_host=4)
    summary = await runner.run(run_id, on_event=print)
"""

from __future__ import annotations

from engine.jobs.events import JobEvent, JobFailure, JobProgress, JobSummary
from engine.jobs.handler import Answer, Finished, JobHandler, JobResult, TokenSink
from engine.jobs.runner import EventCallback, JobRunner, RetryPolicy

__all__ = [
    "Answer",
    "EventCallback",
    "Finished",
    "JobEvent",
    "JobFailure",
    "JobHandler",
    "JobProgress",
    "JobResult",
    "JobRunner",
    "JobSummary",
    "RetryPolicy",
    "TokenSink",
]
