"""A few real verdicts from the embedded default model (skipped when it is not installed).

The model is small and weak, so this checks the path, not the judgement: every pair ends
with a stored, schema-valid verdict whose total is the rubric's own figure, or with a
failed job that says why; nothing crashes and no pair gets a score without a verdict.
"""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

pytest.importorskip("xllamacpp")

from engine.generate.backends import ChatOptions, make_backend
from engine.generate.backends.llamacpp import BUILTIN_MODELS, DEFAULT_BUILTIN
from engine.judge import compute_total, criteria_for, judge_runner, plan_judging
from engine.models import Pair, PairKind
from engine.store import Store

if importlib.util.find_spec(BUILTIN_MODELS[DEFAULT_BUILTIN].package) is None:
    pytest.skip("the default built-in model is not installed", allow_module_level=True)


def test_embedded_model_gives_real_verdicts(project: Store) -> None:
    # One pair of each kind: a grammar-constrained verdict takes 10-40 s on a CPU.
    pairs = project.add_pairs([
        Pair.simple("How long does the cache keep an entry?", "The cache keeps an entry for 30 seconds, then refreshes it."),
        Pair.simple("What is the capital of Mongolia?", "The documents only cover the cache service, so I cannot answer that.",
                    kind=PairKind.REFUSAL),
    ])
    run_id = plan_judging(project)
    backend = make_backend("llamacpp", None, None, n_ctx=2048)
    runner = judge_runner(
        project, [backend], options=ChatOptions(temperature=0.1, num_predict=120, seed=7),
        concurrency_per_host=1, max_attempts=1, backoff_s=0,
    )
    summary = asyncio.run(runner.run(run_id)).raise_for_stop()
    assert summary.done + summary.failed == 2 and summary.queued == 0
    assert summary.done >= 1, summary.failures  # the grammar keeps a real verdict schema-valid
    verdicts = project.get_verdicts()
    for pair in project.get_pairs([p.id for p in pairs]):
        verdict = verdicts.get(pair.id)
        if verdict is None:
            assert pair.score is None
            continue
        criteria = criteria_for(pair.kind)
        assert set(verdict.scores) == {c.id for c in criteria}
        assert all(1 <= s <= 10 for s in verdict.scores.values())
        assert verdict.total == compute_total(verdict.scores, criteria) == pair.score
        assert verdict.reason
    for job in project.list_jobs(run_id=run_id, status="failed"):
        assert job.error and "attempt" in job.error
