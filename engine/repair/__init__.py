"""Repair by the model: a flagged pair, its sources and its warnings go back to the model with one
instruction per check; a repair is kept as a new revision (undoable) only when it is better."""

from __future__ import annotations

from engine.repair.handler import (
    GIVE_UP_AFTER,
    REPAIR_TASK,
    RepairHandler,
    RepairOutcome,
    RepairRejectedError,
    plan_repair,
    repair_runner,
)
from engine.repair.policy import (
    FAILED,
    FILTER_KEYS,
    REPAIRED,
    UNCHANGED,
    Assessment,
    assess_repair,
    parse_filter,
    repair_candidates,
    resolve_checks,
    with_text,
)
from engine.repair.prompts import REPAIR_HINTS, REPAIRABLE, RepairedPair, build_repair_messages

__all__ = [
    "FAILED",
    "FILTER_KEYS",
    "GIVE_UP_AFTER",
    "REPAIRABLE",
    "REPAIRED",
    "REPAIR_HINTS",
    "REPAIR_TASK",
    "UNCHANGED",
    "Assessment",
    "RepairHandler",
    "RepairOutcome",
    "RepairRejectedError",
    "RepairedPair",
    "assess_repair",
    "build_repair_messages",
    "parse_filter",
    "plan_repair",
    "repair_candidates",
    "repair_runner",
    "resolve_checks",
    "with_text",
]
