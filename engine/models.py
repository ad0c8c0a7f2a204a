"""Pydantic models shared by every part of the engine: documents, chunks, pairs, jobs."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class PairKind(StrEnum):
    INSTRUCTION = "instruction"
    MULTI_HOP = "multi_hop"
    REFUSAL = "refusal"
    THINKING = "thinking"
    CLARIFICATION = "clarification"
    IMPORTED = "imported"
    MANUAL = "manual"


class PairStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


# Built-in modes; prompt packs may add more, so a pair's mode is a plain string.
BUILTIN_MODES: tuple[str, ...] = ("developer", "thinker", "factual")


class Message(BaseModel):
    """One turn of a conversation in OpenAI's role format."""

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str


class Document(BaseModel):
    """An imported file."""

    id: int | None = None
    path: str
    format: str
    sha256: str
    size: int
    title: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    n_chunks: int = 0


class Chunk(BaseModel):
    """A span of a document's text; ``text == document_text[start:end]``."""

    id: int | None = None
    document_id: int | None = None
    ordinal: int
    text: str
    start: int
    end: int
    heading_path: list[str] = Field(default_factory=list)
    concepts: list[str] = Field(default_factory=list)
    retired: bool = False


class PairOrigin(BaseModel):
    """Where a pair came from: a model call, or a file and line."""

    backend: str | None = None
    model: str | None = None
    host: str | None = None
    prompt_version: str | None = None
    latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    job_id: int | None = None
    source_file: str | None = None
    source_line: int | None = None
    source_format: str | None = None
    refusal_topic: str | None = None
    refusal_source: str | None = None  # "model" (a proposed neighbouring topic) or "fallback" (the built-in list)


class WarningSpan(BaseModel):
    """A stretch of a pair's answer that a warning is about (a copied run), and where it sits in a source chunk."""

    model_config = ConfigDict(frozen=True)

    answer_start: int
    """Character offsets in the pair's response (``Pair.response``)."""
    answer_end: int
    chunk_id: int | None = None
    """The source chunk the stretch comes from, when it comes from one."""
    source_start: int | None = None
    """Character offsets in that chunk's text."""
    source_end: int | None = None


class PairWarning(BaseModel):
    """A failed check on a pair: its id, severity and a reason a person understands.

    ``spans`` point at the text the warning is about (the copied runs of a mimicry warning);
    None for checks without one, and for warnings stored before spans were kept.
    """

    model_config = ConfigDict(frozen=True)

    check: str
    severity: Severity = Severity.WARNING
    reason: str
    spans: tuple[WarningSpan, ...] | None = None


_WS = re.compile(r"\s+")


class Pair(BaseModel):
    """A training conversation plus metadata."""

    id: int | None = None
    messages: list[Message]
    context: str | None = None
    mode: str = "factual"
    kind: PairKind = PairKind.INSTRUCTION
    sources: list[int] = Field(default_factory=list)
    status: PairStatus = PairStatus.PENDING
    origin: PairOrigin = Field(default_factory=PairOrigin)
    warnings: list[PairWarning] = Field(default_factory=list)
    stale: bool = False
    score: float | None = None
    split: str | None = None
    revision: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def system(self) -> str | None:
        """The system prompt, if the conversation has one."""
        for message in self.messages:
            if message.role is Role.SYSTEM:
                return message.content
        return None

    @property
    def instruction(self) -> str:
        """The first user turn."""
        for message in self.messages:
            if message.role is Role.USER:
                return message.content
        return ""

    @property
    def response(self) -> str:
        """The last assistant turn."""
        for message in reversed(self.messages):
            if message.role is Role.ASSISTANT:
                return message.content
        return ""

    def content_hash(self) -> str:
        """A hash of the conversation, insensitive to case and whitespace."""
        text = "\x1f".join(f"{m.role}:{_WS.sub(' ', m.content.strip().lower())}" for m in self.messages)
        text += "\x1e" + _WS.sub(" ", (self.context or "").strip().lower())
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    @classmethod
    def simple(
        cls,
        instruction: str,
        response: str,
        *,
        system: str | None = None,
        **fields: Any,
    ) -> Pair:
        """Build a single-turn pair from an instruction and a response."""
        messages = []
        if system:
            messages.append(Message(role=Role.SYSTEM, content=system))
        messages.append(Message(role=Role.USER, content=instruction))
        messages.append(Message(role=Role.ASSISTANT, content=response))
        return cls(messages=messages, **fields)


class Job(BaseModel):
    """A unit of queued work: generate one pair from given chunks, or judge or repair one pair."""

    id: int | None = None
    run_id: int | None = None
    task: str = "generate"  # generate | judge | repair
    kind: PairKind = PairKind.INSTRUCTION
    mode: str = "factual"
    chunk_ids: list[int] = Field(default_factory=list)
    pair_id: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    status: JobStatus = JobStatus.QUEUED
    attempts: int = 0
    error: str | None = None
    host: str | None = None
    result_pair_ids: list[int] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class LogEntry(BaseModel):
    """One decision of the pipeline: what step did what to how many items, and why."""

    id: int | None = None
    ts: datetime = Field(default_factory=utcnow)
    step: str
    action: str
    count: int = 0
    message: str = ""
    detail: dict[str, Any] = Field(default_factory=dict)


class Verdict(BaseModel):
    """A judge model's score of one pair revision."""

    pair_id: int
    pair_revision: int
    model: str
    rubric_version: str
    scores: dict[str, float]
    total: float
    reason: str
    created_at: datetime = Field(default_factory=utcnow)
