"""What a job run tells its caller: one event type while it runs, one summary when it ends."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import PairForgeError
from engine.models import Pair


@dataclass(frozen=True)
class JobProgress:
    """Where a run stands: job counts by status and the rates so far.

    ``counts`` are the jobs of the run's task (and run, when one was given) by status;
    ``total`` is how many were queued when the run started; ``done`` and ``failed``
    count this run's jobs only. ``pairs`` counts the pairs the run created or worked on.
    """

    counts: dict[str, int]
    total: int
    done: int
    failed: int
    in_flight: int
    pairs: int
    elapsed_s: float
    pairs_per_min: float
    tokens_per_s: float
    eta_s: float | None


@dataclass(frozen=True)
class JobEvent:
    """Something happened in a run; every event carries the run's progress.

    ``kind`` is one of: started, job_started, token (``text`` holds the streamed text
    since the last token event), retry, job_done (``pairs``, ``pair_id`` and ``score``
    say what the job stored), job_failed, host_down, paused, resumed, and one last
    event: finished, stopped (``error`` says why) or cancelled; concurrency
    (``concurrency`` is the host's new limit on requests in flight).
    """

    kind: str
    progress: JobProgress
    job_id: int | None = None
    host: str | None = None
    pair_id: int | None = None
    pairs: tuple[Pair, ...] = ()
    score: float | None = None
    text: str = ""
    error: str | None = None
    concurrency: int | None = None


@dataclass(frozen=True)
class JobFailure:
    """A job that failed for good, and the error that made it fail."""

    job_id: int
    pair_id: int | None
    error: str


@dataclass
class JobSummary:
    """What a run did, and why it stopped if it did not finish.

    A run never raises for an expected failure: an error no retry can fix (a model that
    is not pulled, every host down, a disk that is full) ends the run and is kept in
    ``error`` with its sentence in ``stopped_reason``; :meth:`raise_for_stop` raises it
    for callers that want an exception.
    """

    task: str
    run_id: int | None
    run_ids: list[int] = field(default_factory=list)
    done: int = 0
    failed: int = 0
    pairs: int = 0
    queued: int = 0
    elapsed_s: float = 0.0
    completion_tokens: int = 0
    cancelled: bool = False
    stopped_reason: str | None = None
    error: PairForgeError | None = None
    last_error: str | None = None
    errors: dict[str, int] = field(default_factory=dict)
    failures: list[JobFailure] = field(default_factory=list)
    message: str = ""

    @property
    def ok(self) -> bool:
        """True when the run stored something and nothing stopped it."""
        return self.pairs > 0 and self.stopped_reason is None

    def raise_for_stop(self) -> JobSummary:
        """Raise the error that stopped the run, if one did; returns the summary otherwise."""
        if self.error is not None:
            raise self.error
        return self

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return {
            "task": self.task,
            "run_id": self.run_id,
            "run_ids": list(self.run_ids),
            "done": self.done,
            "failed": self.failed,
            "pairs": self.pairs,
            "queued": self.queued,
            "elapsed_s": round(self.elapsed_s, 3),
            "completion_tokens": self.completion_tokens,
            "cancelled": self.cancelled,
            "stopped_reason": self.stopped_reason,
            "last_error": self.last_error,
            "errors": dict(self.errors),
            "failures": [{"job_id": f.job_id, "pair_id": f.pair_id, "error": f.error} for f in self.failures],
            "message": self.message,
            "ok": self.ok,
        }


__all__ = ["JobEvent", "JobFailure", "JobProgress", "JobSummary"]
