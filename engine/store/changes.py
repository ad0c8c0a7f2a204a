"""What the store tells its listeners after a commit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.models import Pair


@dataclass(frozen=True)
class PairChange:
    """What happened to one pair; ``before``/``after`` are None for an insert/delete."""

    pair_id: int
    before: Pair | None
    after: Pair | None


PairListener = Callable[[Sequence[PairChange]], None]

__all__ = ["PairChange", "PairListener"]
