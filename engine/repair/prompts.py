"""The repair prompt: the pair, its sources, its warnings and one instruction per flagged check."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field, field_validator

from engine.models import Chunk, Pair, PairKind, PairWarning

__all__ = ["REPAIRABLE", "REPAIR_HINTS", "REPAIR_PROMPT_VERSION", "RepairedPair", "build_repair_messages"]

REPAIR_PROMPT_VERSION = "1"

# What the model is asked to do about each check it can fix by rewriting the text. Checks
# about metadata (sources, kind), personal data (`pairforge redact`), stale sources
# (regenerate) or the judge's score (judged again after any edit) are not in here.
REPAIR_HINTS: dict[str, str] = {
    "mimicry": "The answer copies its source word for word. Restate the content in your own words: "
    "keep every fact, name, number, code block, command and identifier exactly, but write new sentences.",
    "non_answer": "The answer only says where or whether the topic is discussed. State the fact itself: "
    "what the source says the thing is, does or requires, never where it is written.",
    "document_says": "The pair talks about \"the document\" or \"the text\". State the facts directly, as an "
    "expert would, without mentioning any document.",
    "prompt_leak": "Text of the generation prompt or a template slot leaked into the pair (labels such as "
    "\"The user asked:\", placeholders such as [type] or {source}). Drop the leaked text and the opener and "
    "write a real question and a real answer.",
    "not_a_request": "The instruction is not a question or a request. Rewrite it as the question a user "
    "would ask, one that the answer answers.",
    "vacuous_answer": "The answer only restates the question's terms. Answer the question the user asked "
    "with the specific facts from the sources.",
    "restates_question": "The answer opens by repeating the question or a label. Start with the answer itself.",
    "sycophantic_opener": "The answer opens with filler such as \"Sure!\" or \"Great question\". Drop the "
    "opener and start with the substance.",
    "apology_refusal": "The answer opens with a canned apology. Answer directly from the sources.",
    "ai_disclaimer": "The answer contains an AI disclaimer (\"As an AI language model\"). Remove it and "
    "answer directly.",
    "multi_hop_one_sided": "This question needs both sources, but the answer draws on only one of them. "
    "Use specific facts from every source.",
    "too_short_response": "The answer is too short. Give a complete answer from the sources.",
    "too_long_response": "The answer is too long. Shorten it to what answers the question.",
    "repeated_ngrams": "The answer repeats itself. Say each thing once.",
    "low_unique_words": "The answer is repetitive. Say each thing once.",
    "identical_turns": "The answer repeats the instruction. Write a real answer.",
    "too_short_instruction": "The instruction is too short. Ask a complete question.",
    "refusal_no_declination": "This is a refusal pair: the answer must say plainly that the knowledge base "
    "does not cover the topic, without inventing an answer.",
    "offensive_content": "The pair contains offensive language. Rewrite it in neutral, respectful words.",
}

#: The checks a repair can clear.
REPAIRABLE: frozenset[str] = frozenset(REPAIR_HINTS)

# Enough source text for any chunk size the settings allow, without overflowing a small context.
_MAX_SOURCE_CHARS = 6000

_SYSTEM = """You repair one training pair for fine-tuning a language model. A quality check flagged it; \
rewrite it so the flagged problems are gone and nothing else gets worse.

Rules:
- Fix every problem listed under "Problems to fix", following the instruction given for each.
- Keep the facts true to the source text; add nothing the sources do not support.
- Keep the question unless a problem is about the question; keep the answer's language, style and format.
- Never mention the source text, the document, these rules or this task.

Reply with JSON only, with the keys "question" (the repaired question) and "answer" (the repaired answer)."""


class RepairedPair(BaseModel):
    """The model's repaired question and answer."""

    question: str = Field(min_length=1, max_length=3000)
    answer: str = Field(min_length=1, max_length=8000)

    @field_validator("question", "answer")
    @classmethod
    def _tidy(cls, value: str) -> str:
        return value.strip()


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + " [...]"


def build_repair_messages(pair: Pair, chunks: Sequence[Chunk], warnings: Sequence[PairWarning]) -> list[dict[str, str]]:
    """The chat messages asking a model to repair ``pair`` for ``warnings`` (the ones it can fix)."""
    parts = [f"Pair kind: {pair.kind}", f"Mode: {pair.mode}"]
    if pair.kind is PairKind.REFUSAL:
        parts.append("Source text: none (a refusal: the topic is outside the knowledge base).")
    else:
        budget, blocks = _MAX_SOURCE_CHARS, []
        for i, chunk in enumerate(chunks, 1):
            if budget <= 0:
                break
            heading = " > ".join(chunk.heading_path)
            text = _clip(chunk.text, budget)
            budget -= len(text)
            blocks.append(f"[source {i}{': ' + heading if heading else ''}]\n{text}")
        parts.append("Source text:\n" + ("\n\n".join(blocks) if blocks else "(none: keep to what the pair says)"))
    problems = []
    for warning in warnings:
        hint = REPAIR_HINTS.get(warning.check)
        if hint is not None:
            problems.append(f"- {warning.check}: {warning.reason}\n  What to do: {hint}")
    parts.append("Problems to fix:\n" + "\n".join(problems))
    parts.append(f"Question:\n{_clip(pair.instruction, 3000)}")
    parts.append(f"Answer:\n{_clip(pair.response, 6000)}")
    parts.append("Write the repaired pair now.")
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]
