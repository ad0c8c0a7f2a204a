"""The judge's prompt: the rubric, the pair and the source text it must be true to."""

from __future__ import annotations

from collections.abc import Sequence

from engine.judge.rubric import RUBRIC, Criterion, Rubric, criteria_for
from engine.models import Chunk, Pair, PairKind

__all__ = ["JUDGE_PROMPT_VERSION", "MODE_STYLES", "build_judge_messages"]

JUDGE_PROMPT_VERSION = "1"

# What "style fit" means for each built-in mode; modes added by prompt packs get a generic line.
MODE_STYLES: dict[str, str] = {
    "developer": "technical and precise, for a programmer: exact names, code or commands where they help",
    "thinker": "reasons step by step before concluding, and the reasoning is sound",
    "factual": "short and direct: the facts asked for, with no padding",
}

# Enough source text for any chunk size the settings allow, without overflowing a small context.
_MAX_SOURCE_CHARS = 6000
_MAX_TITLES = 40

_SYSTEM = """You review training data for fine-tuning a language model. Score ONE training pair \
against the rubric below, strictly and consistently.

Scale for every criterion: 1 = fails completely, 3 = poor, 5 = acceptable with clear flaws, \
7 = good with minor flaws, 9 = excellent, 10 = flawless.
Use the source text as the only ground truth; do not reward fluent text that the source does not support.

Criteria:
{criteria}

Reply with JSON only, with these keys: "scores" (an object with one whole number from 1 to 10 for each \
of {keys}), "total" (the weighted mean of the scores, using the weights above) and "reason" (one sentence \
of your own naming the pair's main strength or flaw)."""


def _criteria_lines(criteria: Sequence[Criterion]) -> str:
    return "\n".join(f"- {c.id} (weight {c.weight:g}): {c.description}" for c in criteria)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + " [...]"


def build_judge_messages(
    pair: Pair,
    chunks: Sequence[Chunk],
    *,
    corpus_titles: Sequence[str] = (),
    rubric: Rubric = RUBRIC,
) -> list[dict[str, str]]:
    """The chat messages asking a judge model to score ``pair`` against its source ``chunks``.

    Refusal pairs get the refusal criteria and the corpus's document titles (so the judge
    can tell whether the topic really is outside it) instead of source text.
    """
    criteria = criteria_for(pair.kind, rubric)
    keys = ", ".join(c.id for c in criteria)
    system = _SYSTEM.format(criteria=_criteria_lines(criteria), keys=keys)
    style = MODE_STYLES.get(pair.mode, f"the style of the '{pair.mode}' mode, consistently")
    parts = [f"Pair kind: {pair.kind}", f"Mode: {pair.mode} (expected style: {style})"]
    if pair.kind is PairKind.REFUSAL:
        titles = [t for t in corpus_titles if t][:_MAX_TITLES]
        covered = "\n".join(f"- {t}" for t in titles) or "- (no document titles known)"
        parts.append(f"The corpus covers these documents:\n{covered}")
    else:
        budget = _MAX_SOURCE_CHARS
        blocks = []
        for i, chunk in enumerate(chunks, 1):
            if budget <= 0:
                break
            heading = " > ".join(chunk.heading_path)
            text = _clip(chunk.text, budget)
            budget -= len(text)
            blocks.append(f"[source {i}{': ' + heading if heading else ''}]\n{text}")
        if pair.context:
            blocks.append(f"[context given with the question]\n{_clip(pair.context, 2000)}")
        if not blocks:
            blocks.append("(no source text: judge accuracy against well-established facts only)")
        parts.append("Source text:\n" + "\n\n".join(blocks))
    if pair.system:
        parts.append(f"System prompt of the pair:\n{_clip(pair.system, 1000)}")
    parts.append(f"Question:\n{_clip(pair.instruction, 3000)}")
    parts.append(f"Answer:\n{_clip(pair.response, 5000)}")
    parts.append("Score this pair now.")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]
