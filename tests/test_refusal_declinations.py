"""Every built-in refusal declination passes the quality engine's refusal check."""

from __future__ import annotations

import pytest

from engine.generate.prompts import load_packs
from engine.models import Pair, PairKind
from engine.quality import check_pair
from engine.settings import QualitySettings

PACKS = load_packs(None)


@pytest.mark.parametrize("mode", sorted(PACKS))
def test_builtin_declinations_are_recognised_as_declining(mode: str) -> None:
    pack = PACKS[mode]
    assert pack.declinations, f"the {mode} pack has no declinations"
    for template in pack.declinations:
        answer = template.format(topic="GraphQL subscriptions", coverage="retries, caching and the worker loop")
        pair = Pair.simple("How do I set up GraphQL subscriptions?", answer, kind=PairKind.REFUSAL, mode=mode)
        checks = {w.check for w in check_pair(pair, [], QualitySettings())}
        assert "refusal_no_declination" not in checks, answer


def test_an_answer_that_does_not_decline_is_flagged() -> None:
    pair = Pair.simple(
        "How do I set up GraphQL subscriptions?",
        "Install the subscriptions package and register a resolver for each event type.",
        kind=PairKind.REFUSAL,
    )
    assert "refusal_no_declination" in {w.check for w in check_pair(pair, [], QualitySettings())}
