"""Steady-state throughput of a run, shared by the benchmarks that measure a server's capacity."""

from __future__ import annotations


def steady_rate(answered: list[float], sent: list[float]) -> float:
    """Answers per second from the run's middle answer until its last request was sent.

    ``answered`` and ``sent`` are the times each request came back and left. Before the
    middle the run is still finding its concurrency; after the last request left the queue
    is dry and fewer requests stay in flight with every answer (the drain, a latency or two
    that any run ends with, not a measure of the steady state).
    """
    if len(answered) <= 8:
        return 0.0
    answered = sorted(answered)
    start, end = answered[len(answered) // 2], max(sent)
    inside = sum(1 for t in answered if start < t <= end)
    return inside / (end - start) if end > start else 0.0
