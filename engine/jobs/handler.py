"""The per-kind work of a job, passed to the one runner: what a generate, judge, repair or eval job does.

The runner owns everything the kinds share: hosts and their concurrency, claiming jobs
ahead, the lease, retries and backoff, pause, cancel, host-down handling and progress.
A handler only says, for one job, how to get ready (:meth:`JobHandler.prepare`), what
one try is (:meth:`JobHandler.attempt`, any number of model calls) and how finished
jobs are stored (:meth:`JobHandler.commit`, a batch in one transaction).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from engine.jobs.events import JobSummary
from engine.models import Job, Pair

if TYPE_CHECKING:  # the runner sits below the kinds: it never imports generate's package at run time
    from engine.errors import PairForgeError
    from engine.generate.backends import ChatBackend
    from engine.store import Store

W = TypeVar("W")  # what a job needs once prepared: its prompt, its inputs
R = TypeVar("R")  # what one successful try produced

TokenSink = Callable[[str], None]


@dataclass
class Answer(Generic[R]):
    """What one successful try produced, and the tokens the model spent on it."""

    value: R
    completion_tokens: int = 0


@dataclass
class Finished(Generic[W, R]):
    """A job whose try succeeded and that waits to be stored."""

    job: Job
    host: str
    work: W
    answer: Answer[R]


@dataclass(frozen=True)
class JobResult:
    """What storing a finished job did: the pairs it created, or the pair it worked on."""

    pairs: tuple[Pair, ...] = ()
    pair_id: int | None = None
    score: float | None = None

    @property
    def count(self) -> int:
        """How many pairs this job created or worked on."""
        return len(self.pairs) or (1 if self.pair_id is not None else 0)


class JobHandler(ABC, Generic[W, R]):
    """The work of one job kind. Subclasses set :attr:`task` and implement three steps.

    Every method runs on the runner's event loop; store calls are made there too, short
    and batched, so no kind waits on a thread hop.
    """

    #: The ``jobs.task`` value of this kind's jobs.
    task: str = ""

    def __init__(self, store: Store) -> None:
        self.store = store

    def start(self) -> None:
        """Called once when a run starts, after interrupted jobs were queued again: load shared inputs."""

    @abstractmethod
    def prepare(self, job: Job) -> W:
        """Load what ``job`` needs and build its request; raise a PairForgeError to fail the job."""

    @abstractmethod
    async def attempt(self, work: W, backend: ChatBackend, attempt: int, on_token: TokenSink | None) -> Answer[R]:
        """One try at the job against ``backend`` (``attempt`` counts from 1).

        Raise a :class:`~engine.errors.BackendError` the runner may retry (``retryable``) or
        that stops the run; any other PairForgeError fails the job at once.
        """

    @abstractmethod
    def commit(self, batch: Sequence[Finished[W, R]]) -> list[JobResult | None]:
        """Store ``batch`` in one transaction, each job with its done state; returns one result per job.

        A None result means the job was no longer running (cancelled meanwhile) and
        nothing of it was stored.
        """

    def fail(self, job: Job, reason: str) -> None:
        """Record that ``job`` failed for good, keeping ``reason``."""
        self.store.fail_job(job.id or 0, reason, retry=False)

    def failure_reason(self, error: str, attempts: int) -> str:
        """The reason kept on a job whose every try failed with ``error``."""
        return f"{error} (gave up after {attempts} attempts)"

    #: Stop a run once this many jobs failed before any succeeded (0: never): a model that
    #: cannot answer the first few would only burn through the queue.
    give_up_after: int = 0

    def give_up(self, summary: JobSummary, error: str) -> PairForgeError | None:
        """After a failed job: an error that stops the run (no later job can do better), or None to go on."""
        failed = self.failures_so_far(summary)
        if self.give_up_after and summary.done == 0 and failed >= self.give_up_after:
            from engine.errors import InvalidModelOutputError

            return InvalidModelOutputError(self.give_up_message(failed, error))
        return None

    def failures_so_far(self, summary: JobSummary) -> int:
        """The failures :meth:`give_up` counts: the run's failed jobs unless a kind counts otherwise."""
        return summary.failed

    def give_up_message(self, failed: int, error: str) -> str:
        """The sentence a run that gave up stops with: what failed and what to do."""
        return f"The first {failed} jobs failed ({error}); check the model, then run again."

    @abstractmethod
    def describe(self, summary: JobSummary) -> str:
        """One sentence saying what a finished run did, and why when it did nothing."""

    def finished(self, summary: JobSummary) -> None:
        """Called once when a run ends, with its summary: record it in the pipeline log."""


__all__ = ["Answer", "Finished", "JobHandler", "JobResult", "TokenSink"]
