"""Steady-state throughput of a run, shared by the benchmarks that measure a server's capacity."""

from __future__ import annotations

# Fewer answers than this between the middle answer and the last request: too short a window to say.
MIN_STEADY_ANSWERS = 20


def steady_rate(answered: list[float], sent: list[float]) -> float | None:
    """Answers per second from the run's middle answer until its last request was sent.

    ``answered`` and ``sent`` are the times each request came back and left. Before the
    middle the run is still finding its concurrency; after the last request left the queue
    is dry and fewer requests stay in flight with every answer (the drain, a latency or two
    that any run ends with, not a measure of the steady state). None when the run is too
    short for a steady state (a window opened by an answer and closed by a request, with a
    handful of answers inside, says more about where its edges fell than about the server).
    """
    if not answered:
        return None
    answered = sorted(answered)
    start, end = answered[len(answered) // 2], max(sent)
    inside = sum(1 for t in answered if start < t <= end)
    return inside / (end - start) if inside >= MIN_STEADY_ANSWERS and end > start else None
