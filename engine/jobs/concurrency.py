"""How many requests a run keeps in flight on one host: a fixed number, or found while it runs.

``generation.concurrency = "auto"`` gives every host an :class:`AutoConcurrency`: it
measures the host's throughput at the current limit over a window of answers, raises the
limit while throughput keeps rising, and backs off when a higher limit only made each
answer slower (the server queues what it cannot decode at once). It settles at the
server's slot count or just above it: one request waiting at the server hides the time
the client needs between an answer and its next request (on a server that opens a new
connection per request, a TCP connect through the event loop). The value found is kept
per host in the project (:func:`remember_concurrency`), so the next run starts there.

Throughput is estimated with Little's law, requests in flight over time divided by the
mean latency, not by counting answers in a window: a server with fixed-latency slots
answers in bursts, and a window's edges falling between bursts would swing a count by a
whole burst.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from engine.store import Store

AUTO = "auto"
ConcurrencySetting = int | Literal["auto"]

# Where the project keeps the value found for a host (the store's meta table).
_META_KEY = "concurrency:{host}"

# A higher limit is kept when it raises throughput by this share; a lower one when it costs
# at most LOSS_TOLERANCE. The tolerance is the wider of the two, above the few per cent a
# busy machine's windows scatter by, so noise cannot stop a descent from far above the
# slots; between them, the limit stays where it is. One below the slots costs a whole slot's
# share, far above either; one above them (a request waiting at the server) hides the
# client's time between an answer and its next request, worth a few per cent at a 200 ms
# answer on a server that opens a connection per request: about what the tolerance lets by.
GAIN_THRESHOLD = 0.02
LOSS_TOLERANCE = 0.03

# A step down kept within the tolerance that still cost more than this may have been the step
# off the knee (see above): when the next step down fails, the limit goes back up to where it came from.
COSTLY_STEP_DOWN = 0.01

# The baseline is the mean of the kept limit's last windows; a step up must beat their scatter
# (at most MAX_SCATTER, so a noisy host can still climb).
BASELINE_WINDOWS = 4
MAX_SCATTER = 0.10

# With no value remembered, a host starts at the old fixed default.
AUTO_START = 2

# The settings' upper bound on requests in flight per host.
AUTO_CEILING = 64

# After settling, a limit one above is tried again every this many windows, and every
# REPROBE_DOWN_EVERY-th time one below instead, so a server whose load changed is followed.
# One above costs at most a request waiting at the server; one below, a slot's share of one
# window, so it is tried less often.
REPROBE_WINDOWS = 4
REPROBE_DOWN_EVERY = 4


def remembered_concurrency(store: Store, host: str) -> int | None:
    """The concurrency the project last found for ``host``, or None when none was found yet."""
    value = store.get_meta(_META_KEY.format(host=host))
    return int(value) if isinstance(value, int) and value >= 1 else None


def remember_concurrency(store: Store, host: str, value: int) -> None:
    """Keep ``value`` as the concurrency found for ``host`` in the project."""
    store.set_meta(_META_KEY.format(host=host), int(value))


class FixedConcurrency:
    """An explicit number of requests in flight: it never changes."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)

    @property
    def found(self) -> int | None:
        """Nothing is found: the number was given."""
        return None

    def started(self) -> int:
        """A request left for the host; returns its token for :meth:`answered` or :meth:`failed`."""
        return 0

    def answered(self, token: int, latency_s: float) -> None:
        """The request ``token`` came back with an answer after ``latency_s`` seconds."""

    def failed(self, token: int, *, overloaded: bool = False) -> None:
        """The request ``token`` came back with an error."""

    def interrupt(self) -> None:
        """The run paused or ran out of work: what is being measured is no longer comparable."""


@dataclass
class _Window:
    """One limit's measurement: once the previous limit's requests are back, a cohort of requests followed until all are back.

    The cohort's mean latency over the requests in flight while it was sent gives the
    throughput (Little's law). Waiting for the whole cohort keeps a server that does not
    answer in order from looking faster than it is: its slowest answers count too.
    """

    limit: int
    first_request: int  # requests sent before this one were asked for under another limit
    cohort_size: int
    earlier: int = 0  # requests sent under the previous limit and still out
    cohort_first: int | None = None  # the first request of the cohort, once warm
    sent: int = 0
    back: int = 0
    answers: int = 0
    latency_sum: float = 0.0
    area: float = 0.0  # requests in flight integrated over the time the cohort was being sent
    sending_since: float = 0.0
    sending_until: float | None = None

    def in_cohort(self, token: int) -> bool:
        """True when request ``token`` belongs to the cohort."""
        return self.cohort_first is not None and self.cohort_first <= token < self.cohort_first + self.cohort_size

    def throughput(self) -> float:
        """Answers per second: mean requests in flight while the cohort was sent over its mean latency."""
        if self.sending_until is None or self.answers == 0 or self.latency_sum <= 0:
            return 0.0
        elapsed = self.sending_until - self.sending_since
        if elapsed <= 0:
            return 0.0
        return (self.area / elapsed) / (self.latency_sum / self.answers)

    @property
    def latency(self) -> float:
        """Mean latency of the cohort's answers."""
        return self.latency_sum / self.answers if self.answers else 0.0


class AutoConcurrency:
    """A limit on requests in flight to one host that follows the host's throughput.

    The runner calls :meth:`started` when a request leaves, :meth:`answered` when an
    answer comes back (a bad answer too: it used a slot as long as a good one),
    :meth:`failed` on an error and :meth:`interrupt` when the run pauses or the queue
    runs dry, and reads :attr:`limit` before taking its next job.

    From no remembered value it doubles the limit while throughput nearly doubles, then
    climbs one at a time while each step raises throughput by at least
    ``gain_threshold``; from a remembered value it tries one above, then one below, and
    keeps going down while a step costs at most ``loss_tolerance``. A timeout or server error
    halves the limit. ``ceiling`` caps it (an embedded server's slots).
    """

    def __init__(
        self,
        start: int | None = None,
        *,
        ceiling: int = AUTO_CEILING,
        gain_threshold: float = GAIN_THRESHOLD,
        loss_tolerance: float = LOSS_TOLERANCE,
        min_window: int = 6,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ceiling = max(1, ceiling)
        self.gain_threshold = gain_threshold
        self.loss_tolerance = loss_tolerance
        self.min_window = max(2, min_window)
        self._clock = clock
        self._limit = min(self.ceiling, max(1, start if start is not None else AUTO_START))
        # slow_start: doubling; climb: +1 per window; descend: -1 per window; settled: holding.
        self.phase = "climb" if start is not None else "slow_start"
        self._tried_down = False
        self._came_down_from: tuple[int, float, float] | None = None  # the baseline before a costly step down
        self._warmed = False
        self._in_flight = 0
        self._started_since_cut = 0
        self._requests = 0
        self._last_change = clock()
        self._baseline: tuple[int, float, float] | None = None  # limit, throughput, latency
        self._samples: list[tuple[int, float, float]] = []  # the baseline limit's recent windows
        self._settled_windows = 0
        self._reprobes = 0  # re-probes since the run started (a failed one settles again, this goes on)
        self._window = self._new_window()
        self.history: list[tuple[int, float, float]] = []  # every window: limit, throughput, latency

    # ------------------------------------------------------------------ what the runner reads

    @property
    def limit(self) -> int:
        """Requests to keep in flight now."""
        return self._limit

    @property
    def settled(self) -> bool:
        """True once a limit was kept because the next one did not raise throughput."""
        return self.phase == "settled"

    @property
    def found(self) -> int | None:
        """The limit measured best so far (what to remember), or None before one was measured."""
        return self._baseline[0] if self._baseline is not None else None

    # ------------------------------------------------------------------ what the runner reports

    def started(self) -> int:
        """A request left for the host; returns its token for :meth:`answered` or :meth:`failed`."""
        now = self._clock()
        self._advance(now)
        self._in_flight += 1
        self._started_since_cut += 1
        self._requests += 1
        window = self._window
        if window.in_cohort(self._requests):
            window.sent += 1
            if window.sent == window.cohort_size:
                window.sending_until = now
        return self._requests

    def answered(self, token: int, latency_s: float) -> None:
        """The request ``token`` came back after ``latency_s`` seconds; may close the window and move the limit."""
        self._returned(token, latency_s)

    def failed(self, token: int, *, overloaded: bool = False) -> None:
        """The request ``token`` came back with an error; ``overloaded`` (a timeout, a server error) halves the limit."""
        # Errors of requests sent before the last cut say nothing about the cut limit.
        if overloaded and self._limit > 1 and self._started_since_cut >= self._limit:
            self._advance(self._clock())
            self._in_flight = max(0, self._in_flight - 1)
            self._started_since_cut = 0
            self._set(max(1, self._limit // 2))
            self._baseline = None
            self._samples = []
            self.phase, self._tried_down = "climb", True
            return
        self._returned(token, None)

    def _returned(self, token: int, latency_s: float | None) -> None:
        now = self._clock()
        self._advance(now)
        self._in_flight = max(0, self._in_flight - 1)
        window = self._window
        if token < window.first_request:
            # Asked for under the previous limit: says nothing about this one. Once all are back,
            # the server holds only this limit's requests and what is sent next sees its queue.
            window.earlier = max(0, window.earlier - 1)
            if window.earlier == 0 and window.cohort_first is None:
                window.cohort_first, window.sending_since, window.area = self._requests + 1, now, 0.0
            return
        if not window.in_cohort(token):
            return
        window.back += 1
        if latency_s is not None:
            window.answers += 1
            window.latency_sum += latency_s
        if window.back == window.cohort_size:
            if window.answers:
                self._close()
            else:
                self._window = self._new_window()  # nothing but errors: measure again

    def interrupt(self) -> None:
        """The run paused or ran out of work: start the window again, nothing measured is comparable."""
        self._window = self._new_window()

    # ------------------------------------------------------------------ deciding

    def _advance(self, now: float) -> None:
        window = self._window
        if window.cohort_first is not None and window.sending_until is None:
            window.area += self._in_flight * (now - max(self._last_change, window.sending_since))
        self._last_change = now

    def _new_window(self) -> _Window:
        size = max(self.min_window, 2 * self._limit)
        window = _Window(limit=self._limit, first_request=self._requests + 1, cohort_size=size, earlier=self._in_flight)
        if window.earlier == 0:
            window.cohort_first, window.sending_since = window.first_request, self._clock()
        return window

    def _set(self, limit: int) -> None:
        self._limit = min(self.ceiling, max(1, limit))
        self._window = self._new_window()

    def _close(self) -> None:
        window = self._window
        measured = (window.limit, window.throughput(), window.latency)
        self.history.append(measured)
        if not self._warmed:
            # The first window opens connections and loads the model: it would flatter every later one.
            self._warmed = True
            self._window = self._new_window()
            return
        baseline = self._baseline
        if baseline is None or window.limit == baseline[0]:
            # The kept limit measured again: its figures follow the server's current load.
            self._keep(measured)
            self._next_from_baseline()
            return
        base_limit, base_rate, _ = baseline
        gain = measured[1] / base_rate - 1 if base_rate > 0 else 1.0
        if window.limit > base_limit:
            # A doubling must pay for itself at least halfway; a step of one, by a small but real
            # gain: more than the kept limit's own windows scatter by, or the limit would ratchet
            # up on the luck of one window (a server's fixed-latency slots alias with a window's
            # edges by several per cent) and only latency would grow.
            if self.phase == "slow_start":
                wanted = 0.5 * (window.limit / base_limit - 1)
            else:
                wanted = max(self.gain_threshold, min(self._scatter(), MAX_SCATTER))
            if gain >= wanted:
                self._keep(measured)
                if self.phase == "settled":
                    self.phase = "climb"
                self._next_from_baseline()
            elif self.phase == "slow_start" and base_limit + 1 < window.limit:
                # The doubling overshot: climb one at a time from the last limit that paid.
                self.phase = "climb"
                self._set(base_limit + 1)
            elif self.phase != "settled" and not self._tried_down:
                # More in flight made answers slower, nothing faster: see whether one less is as good.
                self.phase, self._tried_down = "descend", True
                self._set(base_limit - 1)
                if self._limit == base_limit:
                    self._settle()
            else:
                self._settle()
            return
        # One less in flight: kept when it costs (next to) nothing, at most the tolerance. Just
        # above the slots, the request waiting at the server hides the client's time between
        # an answer and its next request: one less there shortens each answer a lot and costs
        # a few per cent of throughput, which is not free.
        if gain >= -self.loss_tolerance:
            # Kept; if it cost something and the next step down fails, this one was the step off the knee.
            self._came_down_from = baseline if gain < -COSTLY_STEP_DOWN else None
            self._keep(measured)
            self.phase = "descend"
            self._next_from_baseline()
        else:
            above, self._came_down_from = self._came_down_from, None
            if above is not None:
                self._samples, self._baseline = [above], above
            self._settle()

    def _keep(self, measured: tuple[int, float, float]) -> None:
        """Make ``measured`` the baseline; the same limit measured again is averaged with its last windows."""
        if not self._samples or self._samples[-1][0] != measured[0]:
            self._samples = []
        self._samples = [*self._samples[-(BASELINE_WINDOWS - 1):], measured]
        count = len(self._samples)
        self._baseline = (
            measured[0],
            sum(sample[1] for sample in self._samples) / count,
            sum(sample[2] for sample in self._samples) / count,
        )

    def _scatter(self) -> float:
        """How far apart the baseline limit's recent windows measured, as a share of their mean."""
        rates = [sample[1] for sample in self._samples]
        if len(rates) < 2 or sum(rates) <= 0:
            return 0.0
        return (max(rates) - min(rates)) / (sum(rates) / len(rates))

    def _next_from_baseline(self) -> None:
        """After a window that set the baseline: the phase's next step."""
        assert self._baseline is not None
        limit = self._baseline[0]
        if self.phase == "settled":
            self._settled_windows += 1
            if self._settled_windows % REPROBE_WINDOWS == 0:
                # A server's load changes both ways: mostly one above, now and then one below.
                self._reprobes += 1
                self._set(limit - 1 if self._reprobes % REPROBE_DOWN_EVERY == 0 else limit + 1)
            if self._limit == limit:
                self._window = self._new_window()
            return
        step = {"slow_start": limit, "climb": 1, "descend": -1}[self.phase]
        self._set(limit + step)
        if self._limit == limit:  # the ceiling or the floor: nothing left to try
            self._settle()

    def _settle(self) -> None:
        """Hold the baseline's limit, measuring it again window after window."""
        self.phase = "settled"
        self._settled_windows = 0
        if self._baseline is not None and self._limit != self._baseline[0]:
            self._set(self._baseline[0])
        else:
            self._window = self._new_window()


def make_limit(setting: ConcurrencySetting, *, remembered: int | None = None, ceiling: int = AUTO_CEILING) -> FixedConcurrency | AutoConcurrency:
    """The limit for one host: ``setting`` requests at once, or ``"auto"`` found from ``remembered``.

    ``ceiling`` caps what auto may reach (an embedded server's decoding slots); an
    explicit number is used as given.
    """
    if setting == AUTO:
        start = min(remembered, ceiling) if remembered is not None else None
        return AutoConcurrency(start, ceiling=ceiling)
    return FixedConcurrency(int(setting))


__all__ = [
    "AUTO",
    "AUTO_CEILING",
    "AUTO_START",
    "AutoConcurrency",
    "ConcurrencySetting",
    "FixedConcurrency",
    "make_limit",
    "remember_concurrency",
    "remembered_concurrency",
]
