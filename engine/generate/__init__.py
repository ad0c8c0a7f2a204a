"""Generation: backends, prompt packs, the planner and the generation handler.

Typical use::

    plan = make_plan(store, target=1000)
    run_id = save_plan(store, plan)
    backends = backends_from_settings(store.settings)
    await check_backends(backends)
    summary = await generation_runner(store, backends).run(run_id)
"""

from __future__ import annotations

from engine.generate.handler import GENERATE_TASK, GenerationHandler, generation_runner
from engine.generate.hosts import backends_from_settings, check_backends, close_backends
from engine.generate.planner import Plan, guide_target, make_plan, parse_mix, save_plan
from engine.generate.prompts import PromptPack, load_packs

__all__ = [
    "GENERATE_TASK",
    "GenerationHandler",
    "Plan",
    "PromptPack",
    "backends_from_settings",
    "check_backends",
    "close_backends",
    "generation_runner",
    "guide_target",
    "load_packs",
    "make_plan",
    "parse_mix",
    "save_plan",
]
