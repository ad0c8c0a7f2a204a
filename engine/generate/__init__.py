"""Generation: backends, prompt packs, the planner and the persistent queue.

Typical use::

    plan = make_plan(store, target=1000)
    run_id = save_plan(store, plan)
    backends = backends_from_settings(store.settings)
    await check_backends(backends)
    summary = await GenerationQueue(store, backends).run(run_id)
"""

from __future__ import annotations

from engine.generate.hosts import backends_from_settings, check_backends, close_backends
from engine.generate.planner import Plan, guide_target, make_plan, parse_mix, save_plan
from engine.generate.prompts import PromptPack, load_packs
from engine.generate.queue import GenerationQueue, QueueEvent, QueueProgress, RunSummary

__all__ = [
    "GenerationQueue",
    "Plan",
    "PromptPack",
    "QueueEvent",
    "QueueProgress",
    "RunSummary",
    "backends_from_settings",
    "check_backends",
    "close_backends",
    "guide_target",
    "load_packs",
    "make_plan",
    "parse_mix",
    "save_plan",
]
