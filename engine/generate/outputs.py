"""The structured answers asked of the model, one pydantic model per pair type.

Each is sent as the JSON schema of the request and validated on the way back;
``assistant_text`` turns a validated answer into the assistant turn of the pair
in one consistent format per type.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


def _clean(value: str) -> str:
    return " ".join(value.split()) if "\n" not in value else value.strip()


class GeneratedPair(BaseModel):
    """An instruction or multi-hop pair: a user question and the ideal answer."""

    question: str = Field(min_length=10, max_length=1000)
    answer: str = Field(min_length=20, max_length=6000)

    @field_validator("question", "answer")
    @classmethod
    def _tidy(cls, value: str) -> str:
        return _clean(value)

    def assistant_text(self) -> str:
        """The assistant turn."""
        return self.answer.strip()


class ThinkingPair(BaseModel):
    """A question answered by explicit reasoning steps and a conclusion."""

    question: str = Field(min_length=10, max_length=1000)
    steps: list[str] = Field(min_length=2, max_length=8)
    conclusion: str = Field(min_length=10, max_length=2000)

    @field_validator("steps")
    @classmethod
    def _steps_not_blank(cls, value: list[str]) -> list[str]:
        steps = [" ".join(step.split()) for step in value]
        if any(len(step) < 5 for step in steps):
            raise ValueError("every step must be a sentence")
        return steps

    def assistant_text(self) -> str:
        """Numbered steps, then ``Conclusion: ...``; the one format every thinking pair uses."""
        lines = ["Let me work through this step by step.", ""]
        lines += [f"{i}. {step.rstrip()}" for i, step in enumerate(self.steps, 1)]
        lines += ["", f"Conclusion: {' '.join(self.conclusion.split())}"]
        return "\n".join(lines)


class ClarificationPair(BaseModel):
    """An ambiguous question and the clarifying question that answers it."""

    question: str = Field(min_length=10, max_length=1000)
    clarifying_question: str = Field(min_length=15, max_length=1500)

    def assistant_text(self) -> str:
        """The clarifying question, ending in a question mark."""
        text = " ".join(self.clarifying_question.split())
        return text if text.endswith("?") else text.rstrip(".") + "?"


class RefusalCandidate(BaseModel):
    """A topic the model believes the corpus does not cover, with a user's question about it."""

    topic: str = Field(min_length=3, max_length=120)
    question: str = Field(min_length=10, max_length=500)


class RefusalCandidates(BaseModel):
    """The model's proposals of adjacent-but-absent topics."""

    candidates: list[RefusalCandidate] = Field(min_length=1, max_length=10)


OUTPUT_MODELS: dict[str, type[BaseModel]] = {
    "instruction": GeneratedPair,
    "multi_hop": GeneratedPair,
    "thinking": ThinkingPair,
    "clarification": ClarificationPair,
    "refusal": RefusalCandidates,
}

__all__ = [
    "OUTPUT_MODELS",
    "ClarificationPair",
    "GeneratedPair",
    "RefusalCandidate",
    "RefusalCandidates",
    "ThinkingPair",
]
