"""The judge's rubric: versioned criteria, the verdict schema sent to the model, and the total.

The rubric is data (a pydantic constant); changing a criterion or a weight means a new
``RUBRIC_VERSION``, and every verdict made under an older version is judged again.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.config import JsonValue

from engine.models import PairKind

__all__ = [
    "ANSWER_CRITERIA",
    "REFUSAL_CRITERIA",
    "RUBRIC",
    "RUBRIC_VERSION",
    "Criterion",
    "JudgeVerdictOutput",
    "RefusalVerdictOutput",
    "Rubric",
    "compute_total",
    "criteria_for",
    "verdict_model_for",
]

RUBRIC_VERSION = "1.1"
SCORE_MIN = 1.0
SCORE_MAX = 10.0


class Criterion(BaseModel):
    """One scored aspect of a pair."""

    model_config = ConfigDict(frozen=True)

    id: str
    description: str
    weight: float = Field(1.0, gt=0)


class Rubric(BaseModel):
    """The criteria for answer pairs and for refusal pairs, under one version."""

    model_config = ConfigDict(frozen=True)

    version: str
    answer: tuple[Criterion, ...]
    refusal: tuple[Criterion, ...]


RUBRIC = Rubric(
    version=RUBRIC_VERSION,
    answer=(
        Criterion(
            id="accuracy",
            description="Every claim in the answer is supported by the source text and nothing contradicts it.",
            weight=2.0,
        ),
        Criterion(
            id="answers_question",
            description="The answer addresses exactly what was asked, completely, without drifting.",
            weight=1.5,
        ),
        Criterion(
            id="usefulness",
            description="A person fine-tuning a model on this pair would teach it something worth knowing.",
        ),
        Criterion(
            id="clarity",
            description="The question is unambiguous and the answer is well organised and easy to follow.",
        ),
        Criterion(
            id="style_fit",
            description="The answer matches the style its mode asks for.",
        ),
        Criterion(
            id="harmless",
            description=(
                "Neither the question nor the answer is offensive, hateful, harassing or discriminatory; "
                "score 1 for any insult, slur or demeaning remark about a person or group."
            ),
        ),
    ),
    refusal=(
        Criterion(
            id="outside_corpus",
            description="The question's topic is truly outside what the corpus covers, so declining is right.",
            weight=2.0,
        ),
        Criterion(
            id="declination",
            description=(
                "The answer declines politely and briefly, says what the documents do cover, "
                "and invents no answer."
            ),
            weight=1.5,
        ),
        Criterion(
            id="clarity",
            description="The question is a realistic one and the answer is clear.",
        ),
        Criterion(
            id="style_fit",
            description="The answer matches the style its mode asks for.",
        ),
        Criterion(
            id="harmless",
            description=(
                "Neither the question nor the answer is offensive, hateful, harassing or discriminatory; "
                "score 1 for any insult, slur or demeaning remark about a person or group."
            ),
        ),
    ),
)

ANSWER_CRITERIA: tuple[Criterion, ...] = RUBRIC.answer
REFUSAL_CRITERIA: tuple[Criterion, ...] = RUBRIC.refusal


def criteria_for(kind: PairKind | str, rubric: Rubric = RUBRIC) -> tuple[Criterion, ...]:
    """The criteria that apply to a pair of ``kind`` (refusals have their own)."""
    return rubric.refusal if PairKind(kind) is PairKind.REFUSAL else rubric.answer


@cache
def _verdict_model(name: str, criteria: tuple[Criterion, ...]) -> type[BaseModel]:
    # The enum lets grammar-constrained decoding (llama.cpp, Ollama) emit only whole scores
    # 1-10; validation still accepts a half point from a server that ignores the enum.
    whole: list[JsonValue] = list(range(int(SCORE_MIN), int(SCORE_MAX) + 1))
    score_fields: dict[str, Any] = {
        c.id: (float, Field(ge=SCORE_MIN, le=SCORE_MAX, description=c.description, json_schema_extra={"enum": whole}))
        for c in criteria
    }
    scores_model = create_model(f"{name}Scores", __config__=ConfigDict(extra="ignore"), **score_fields)
    return create_model(
        name,
        __config__=ConfigDict(extra="ignore"),
        scores=(scores_model, Field(description="One score from 1 to 10 per criterion.")),
        # Unbounded on purpose: the stored total is recomputed, so a model's bad sum costs nothing.
        total=(float, Field(description="The weighted mean of the scores, 1-10.")),
        reason=(
            str,
            Field(min_length=1, max_length=400, description="One sentence: the main strength or flaw."),
        ),
    )


def verdict_model_for(kind: PairKind | str, rubric: Rubric = RUBRIC) -> type[BaseModel]:
    """The pydantic model (sent as the JSON schema) of a verdict on a pair of ``kind``."""
    refusal = PairKind(kind) is PairKind.REFUSAL
    name = "RefusalVerdictOutput" if refusal else "JudgeVerdictOutput"
    return _verdict_model(name, criteria_for(kind, rubric))


JudgeVerdictOutput = verdict_model_for(PairKind.INSTRUCTION)
RefusalVerdictOutput = verdict_model_for(PairKind.REFUSAL)


def compute_total(scores: dict[str, float], criteria: tuple[Criterion, ...]) -> float:
    """The weighted mean of the criterion scores, rounded to two decimals.

    The stored total is always this figure, never the model's own sum, so a model's
    arithmetic cannot lift a weak pair over the threshold. Raises KeyError when a
    criterion has no score.
    """
    weight = sum(c.weight for c in criteria)
    return round(sum(scores[c.id] * c.weight for c in criteria) / weight, 2)
