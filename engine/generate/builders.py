"""Pair builders: one per pair type, turning a job into a request and a model answer into a Pair.

A :class:`GenerationContext` is loaded once per run (prompt packs, the corpus index,
chunks, the corpus overview); builders are cheap and stateless apart from it.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel

from engine.errors import InvalidModelOutputError, NotFoundError, PairForgeError
from engine.generate.backends import ChatResult, parse_structured, schema_for
from engine.generate.coverage import coverage_phrase, default_coverage_items
from engine.generate.outputs import (
    OUTPUT_MODELS,
    ClarificationPair,
    GeneratedPair,
    RefusalCandidates,
    ThinkingPair,
)
from engine.generate.prompts import MAX_ASKED_CHARS, PromptPack, asked_block, load_packs
from engine.generate.refusals import (
    PROPOSAL_ROUNDS,
    TAKEN_LINE,
    RefusalTopicFilter,
    TopicDecision,
    absent_generic_topics,
    corpus_overview,
    follow_up_prompt,
    question_for,
)
from engine.generate.retrieval import CorpusIndex
from engine.models import Chunk, Document, Job, Pair, PairKind, PairOrigin
from engine.store import Store

# Ways a user comes at a topic; rotating them keeps the questions varied.
ANGLES: tuple[str, ...] = (
    "a practical how-to question",
    "a why question about the reasoning behind it",
    "a troubleshooting question from someone whose setup misbehaves",
    "a short, casual question",
    "a question from a newcomer who does not know the terms yet",
    "a what-if question about an edge case",
    "a question comparing two options the source mentions",
    "a question about a specific value, default or limit",
)

# Source text beyond this many characters is cut, so prompts fit small context windows.
MAX_SOURCE_CHARS = 6000
# Characters per token assumed when fitting a prompt into generation.num_ctx (English prose runs about 4).
PROMPT_CHARS_PER_TOKEN = 3


@dataclass
class PreparedRequest:
    """What to send for one job: messages, the answer's schema and output model, the temperature."""

    messages: list[dict[str, str]]
    output_model: type[BaseModel]
    schema: dict[str, Any]
    temperature: float


@dataclass(frozen=True)
class LogNote:
    """A decision a builder made about one job, for the pipeline log."""

    action: str
    count: int
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Exchange:
    """What a job's requests came back with: the validated answer, the last result, decisions to log."""

    output: BaseModel
    result: ChatResult
    notes: list[LogNote] = field(default_factory=list)


# Sends one request and returns its validated answer; raises InvalidModelOutputError for a bad one.
Ask = Callable[["PreparedRequest"], Awaitable[tuple[BaseModel, ChatResult]]]


def parse_answer(request: PreparedRequest, result: ChatResult) -> BaseModel:
    """The validated answer of ``result``; raises InvalidModelOutputError when it is cut off or off-schema."""
    if result.truncated:
        raise InvalidModelOutputError(
            "The model's answer was cut off at its token limit: raise generation.num_predict "
            "or ask for shorter answers."
        )
    return parse_structured(result.content, request.output_model, done_reason=result.done_reason)


@dataclass
class GenerationContext:
    """Everything the builders need about a project, loaded once per run."""

    store: Store
    packs: dict[str, PromptPack]
    index: CorpusIndex
    chunks: dict[int, Chunk]
    documents: dict[int, Document]
    overview: str
    coverage: list[str]
    fallback_topics: list[str]
    topics: RefusalTopicFilter | None = None
    used_topics: set[str] = field(default_factory=set)
    absent: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def load(cls, store: Store) -> GenerationContext:
        """Read packs, chunks and documents of ``store`` and index the corpus.

        The coverage refusal answers name is ``generation.coverage`` when the person set it,
        else what the documents' titles and top-level headings say.
        """
        documents = {d.id or 0: d for d in store.list_documents() if d.format != "dataset"}
        chunks = [c for c in store.list_chunks() if (c.document_id or 0) in documents]
        index = CorpusIndex.build(chunks)
        docs = list(documents.values())
        coverage = list(store.settings.generation.coverage) or default_coverage_items(docs, chunks)
        return cls(
            store=store,
            packs=load_packs(store.root),
            index=index,
            chunks={c.id or 0: c for c in chunks},
            documents=documents,
            overview=corpus_overview(docs, chunks, coverage),
            coverage=coverage,
            fallback_topics=absent_generic_topics(index),
            topics=RefusalTopicFilter.build(index, docs, chunks),
            # Topics earlier runs (and the pre-flight probe) declined are taken: a topic is declined once.
            used_topics=store.pairs.refusal_topics(),
        )

    def pack(self, mode: str) -> PromptPack:
        """The prompt pack of ``mode``; raises PairForgeError when it is missing."""
        try:
            return self.packs[mode]
        except KeyError:
            raise PairForgeError(
                f"Mode {mode!r} has no prompt pack: add prompts/{mode}.toml to the project or re-plan the run."
            ) from None

    def chunks_of(self, job: Job) -> list[Chunk]:
        """The job's source chunks, in order; raises NotFoundError if one was deleted."""
        missing = [cid for cid in job.chunk_ids if cid not in self.chunks]
        if missing:
            # Chunks re-imported since planning may be retired; the store still knows them.
            found = {c.id: c for c in self.store.get_chunks(missing)}
            for cid in missing:
                if cid not in found:
                    raise NotFoundError(
                        f"Chunk {cid} of job {job.id} no longer exists (its document was removed): "
                        "cancel the job with `pairforge jobs --cancel` and plan again."
                    )
                self.chunks[cid] = found[cid]
        return [self.chunks[cid] for cid in job.chunk_ids]

    def is_absent(self, text: str) -> bool:
        """True when the corpus does not cover ``text``; remembered, as the corpus is fixed during a run."""
        found = self.absent.get(text)
        if found is None:
            # Refusal proposals and the built-in questions repeat across jobs; each search costs milliseconds.
            found = self.absent[text] = self.index.is_absent(text)
        return found

    def temperature(self, kind: str) -> float:
        return self.store.settings.generation.temperature.get(kind, 0.7)


def _heading(chunk: Chunk, documents: dict[int, Document]) -> str:
    if chunk.heading_path:
        return " > ".join(chunk.heading_path)
    doc = documents.get(chunk.document_id or 0)
    return doc.title or doc.path if doc else "(untitled)"


def _document_title(chunk: Chunk, documents: dict[int, Document]) -> str:
    doc = documents.get(chunk.document_id or 0)
    return (doc.title or doc.path) if doc else ""


def _source(chunk: Chunk) -> str:
    return chunk.text if len(chunk.text) <= MAX_SOURCE_CHARS else chunk.text[:MAX_SOURCE_CHARS] + "\n[...]"


_LENGTH_KEYWORDS = ("minLength", "maxLength")


def _without_length_bounds(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_length_bounds(v) for k, v in node.items() if k not in _LENGTH_KEYWORDS}
    if isinstance(node, list):
        return [_without_length_bounds(v) for v in node]
    return node


@functools.cache
def request_schema(output_model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema sent with a request: the output model's, without string length bounds.

    Length bounds are still enforced when the answer is validated; sent to llama.cpp they
    become grammar repetitions thousands of states long, which crash it. Cached per
    model (building it costs about a millisecond); callers must not modify it.
    """
    return _without_length_bounds(schema_for(output_model))  # type: ignore[no-any-return]


def _variant(job: Job) -> int:
    return int(job.params.get("variant", job.id or 0))


class PairBuilder:
    """Base of the per-type builders: the request for a job and the Pair from the answer."""

    kind: PairKind = PairKind.INSTRUCTION

    def __init__(self, context: GenerationContext) -> None:
        self.context = context

    def values(self, job: Job, sources: list[Chunk]) -> dict[str, Any]:
        """Placeholder values for the job's template."""
        first = sources[0]
        return {
            "source": _source(first),
            "heading": _heading(first, self.context.documents),
            "concepts": ", ".join(first.concepts[:10]) or "(none listed)",
            "angle": ANGLES[_variant(job) % len(ANGLES)],
            "document": _document_title(first, self.context.documents),
        }

    def prepare(self, job: Job, asked: Sequence[str] = ()) -> PreparedRequest:
        """The request for ``job``, listing the questions its sources were ``asked`` already; raises NotFoundError when a source chunk is gone.

        The list is cut to what the context window leaves: generation.num_ctx less the answer's
        num_predict and the rest of the prompt.
        """
        pack = self.context.pack(job.mode)
        sources = self.context.chunks_of(job)
        values = self.values(job, sources)
        prompt = pack.render(str(self.kind), values)
        if asked:
            settings = self.context.store.settings.generation
            spare_tokens = settings.num_ctx - settings.num_predict - (len(prompt) + len(pack.generator)) // PROMPT_CHARS_PER_TOKEN
            block = asked_block(asked, min(MAX_ASKED_CHARS, spare_tokens * PROMPT_CHARS_PER_TOKEN))
            if block:
                prompt = pack.render(str(self.kind), {**values, "asked": block})
        output_model = OUTPUT_MODELS[str(self.kind)]
        return PreparedRequest(
            messages=[{"role": "system", "content": pack.generator}, {"role": "user", "content": prompt}],
            output_model=output_model,
            schema=request_schema(output_model),
            temperature=self.context.temperature(str(self.kind)),
        )

    async def exchange(self, job: Job, request: PreparedRequest, ask: Ask) -> Exchange:
        """Send the job's request through ``ask`` and return the answer (a builder may ask more than once)."""
        output, result = await ask(request)
        return Exchange(output, result)

    def turns(self, job: Job, output: Any) -> tuple[str, str]:
        """The user and assistant turns from a validated answer."""
        return output.question, output.assistant_text()

    def build(self, job: Job, output: BaseModel, result: ChatResult) -> Pair:
        """The Pair for a validated answer, with its grounding and origin."""
        pack = self.context.pack(job.mode)
        question, answer = self.turns(job, output)
        return Pair.simple(
            question,
            answer,
            system=pack.system,
            mode=job.mode,
            kind=self.kind,
            sources=list(job.chunk_ids),
            origin=PairOrigin(
                backend=result.backend,
                model=result.model,
                host=result.host,
                prompt_version=pack.prompt_version,
                latency_s=round(result.latency_s, 4),
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                job_id=job.id,
            ),
        )


class InstructionPairBuilder(PairBuilder):
    """A question answered from one chunk, in the mode's style."""

    kind = PairKind.INSTRUCTION


class ThinkingPairBuilder(PairBuilder):
    """A question answered by numbered reasoning steps ending in a conclusion."""

    kind = PairKind.THINKING

    def turns(self, job: Job, output: Any) -> tuple[str, str]:
        assert isinstance(output, ThinkingPair)
        return output.question, output.assistant_text()


class ClarificationPairBuilder(PairBuilder):
    """An ambiguous question answered with a clarifying question."""

    kind = PairKind.CLARIFICATION

    def turns(self, job: Job, output: Any) -> tuple[str, str]:
        assert isinstance(output, ClarificationPair)
        return output.question, output.assistant_text()


class MultiHopPairBuilder(PairBuilder):
    """A question that needs two chunks of different documents."""

    kind = PairKind.MULTI_HOP

    def values(self, job: Job, sources: list[Chunk]) -> dict[str, Any]:
        if len(sources) < 2:
            raise PairForgeError(
                f"Multi-hop job {job.id} has {len(sources)} source chunk(s), not two or more: re-plan the run."
            )
        values = super().values(job, sources)
        second = sources[1]
        values.update(
            other_source="\n\n".join(_source(c) for c in sources[1:]),
            other_heading=_heading(second, self.context.documents),
            concepts=", ".join(dict.fromkeys([*sources[0].concepts[:6], *second.concepts[:6]])),
        )
        return values

    def turns(self, job: Job, output: Any) -> tuple[str, str]:
        assert isinstance(output, GeneratedPair)
        return output.question, output.assistant_text()


class RefusalChoice(BaseModel):
    """The topic a refusal declines, its question, and where the topic came from (model or fallback)."""

    topic: str
    question: str
    source: str


class RefusalPairBuilder(PairBuilder):
    """A question about a neighbouring topic the corpus does not cover, politely declined.

    The model proposes topics from the corpus overview; each passes
    :class:`~engine.generate.refusals.RefusalTopicFilter` or is dropped (the pipeline log
    says why). When a round keeps none, the model is asked again with the rejected topics
    listed; only then does the built-in list supply the topic.
    """

    kind = PairKind.REFUSAL

    def values(self, job: Job, sources: list[Chunk]) -> dict[str, Any]:
        return {"overview": self.context.overview, "coverage": "; ".join(self.context.coverage),
                "angle": ANGLES[_variant(job) % len(ANGLES)]}

    def _instructions(self, mode: str) -> str:
        """What the model was told besides the corpus: a topic found in it is a piece of the prompt."""
        pack = self.context.pack(mode)
        return "\n".join([pack.generator, pack.render(str(self.kind), {}), TAKEN_LINE.format(topics="")])

    def _taken(self) -> list[str]:
        return sorted(self.context.used_topics)

    def _with_taken(self, request: PreparedRequest, topics: list[str]) -> PreparedRequest:
        if not topics:
            return request
        messages = [dict(m) for m in request.messages]
        messages[-1]["content"] = follow_up_prompt(messages[-1]["content"], topics[-40:])
        return replace(request, messages=messages)

    def _keep(self, job: Job, candidates: RefusalCandidates, decisions: list[TopicDecision]) -> TopicDecision | None:
        """The first proposal the filter keeps (every proposal's decision is appended to ``decisions``)."""
        assert self.context.topics is not None, "the context builds its topic filter"
        prompt = self._instructions(job.mode)
        kept = None
        for candidate in candidates.candidates:
            decision = self.context.topics.decide(
                candidate.topic, candidate.question, prompt,
                taken=[*self.context.used_topics, *(d.topic for d in decisions)], variant=_variant(job),
            )
            decisions.append(decision)
            if decision.kept:
                kept = decision
                break
        return kept

    def _fallback(self, job: Job) -> tuple[str, str]:
        """A built-in topic not yet taken, with a question the corpus does not match."""
        fallback = [t for t in self.context.fallback_topics if t.lower() not in self.context.used_topics]
        fallback = fallback or self.context.fallback_topics
        if not fallback:
            raise PairForgeError(
                "No refusal topic is absent from this corpus, not even the built-in ones: "
                "lower the refusal share with --mix refusal=0."
            )
        position = int(job.params.get("refusal_index", _variant(job)))
        variant = _variant(job)
        for step in range(len(fallback)):
            topic = fallback[(position + step) % len(fallback)]
            # Try the phrasings in turn: some may name a word the corpus does use.
            for shift in range(8):
                question = question_for(topic, variant + shift)
                if self.context.is_absent(question):
                    return topic, question
        raise PairForgeError("Every built-in refusal question matched the corpus: lower the refusal share.")

    def choose(self, job: Job, candidates: RefusalCandidates) -> tuple[str, str]:
        """The (topic, question) to decline from one round of proposals: the first kept one, else a built-in one."""
        kept = self._keep(job, candidates, [])
        return (kept.topic, kept.question) if kept else self._fallback(job)

    async def exchange(self, job: Job, request: PreparedRequest, ask: Ask) -> Exchange:
        """Ask for proposals (again, with the rejected ones listed, when a round keeps none), else fall back."""
        decisions: list[TopicDecision] = []
        kept: TopicDecision | None = None
        output: BaseModel | None = None
        result: ChatResult | None = None
        notes: list[LogNote] = []
        for round_ in range(PROPOSAL_ROUNDS):
            rejected = [d.topic for d in decisions if d.topic]
            try:
                output, result = await ask(self._with_taken(request, [*self._taken(), *rejected]))
            except InvalidModelOutputError as exc:
                if round_ == 0:
                    raise  # nothing usable yet: the job is tried again as any other
                notes.append(LogNote("refusal_round_failed", 1, f"job {job.id}: asking again for refusal topics failed ({exc})"))
                break
            assert isinstance(output, RefusalCandidates)
            kept = self._keep(job, output, decisions)
            if kept is not None:
                break
        assert output is not None and result is not None
        dropped = [d for d in decisions if not d.kept]
        if dropped:
            notes.append(LogNote(
                "refusal_topic_dropped", len(dropped),
                f"job {job.id} dropped {len(dropped)} proposed refusal topic(s): "
                + "; ".join(f"{d.topic!r} ({d.reason})" for d in dropped[:12]),
                {"job_id": job.id, "dropped": [{"topic": d.topic, "reason": d.reason} for d in dropped]},
            ))
        if kept is not None:
            choice = RefusalChoice(topic=kept.topic, question=kept.question, source="model")
            if kept.rewritten_from is not None:
                notes.append(LogNote(
                    "refusal_question_rewritten", 1,
                    f"job {job.id}: {kept.reason} for {kept.topic!r}: {kept.question!r} (was {kept.rewritten_from!r})",
                    {"job_id": job.id, "topic": kept.topic, "question": kept.question, "was": kept.rewritten_from},
                ))
        else:
            topic, question = self._fallback(job)
            choice = RefusalChoice(topic=topic, question=question, source="fallback")
            notes.append(LogNote(
                "refusal_fallback", 1,
                f"job {job.id} took the built-in topic {topic!r}: none of the model's {len(decisions)} proposal(s) "
                "was a neighbouring topic the documents do not cover",
                {"job_id": job.id, "topic": topic},
            ))
        self.context.used_topics.add(choice.topic.lower())
        return Exchange(choice, result, notes)

    def turns(self, job: Job, output: Any) -> tuple[str, str]:
        if isinstance(output, RefusalCandidates):  # one round, no follow-up (a caller without exchange)
            topic, question = self.choose(job, output)
            output = RefusalChoice(topic=topic, question=question, source="model")
            self.context.used_topics.add(topic.lower())
        assert isinstance(output, RefusalChoice)
        pack = self.context.pack(job.mode)
        template = pack.declinations[_variant(job) % len(pack.declinations)]
        # Each answer names a few covered subjects in its own words: no coverage sentence repeats.
        rng = random.Random(f"{job.params.get('seed', _variant(job))}:{job.id}:coverage")
        index = int(job.params.get("refusal_index", _variant(job)))
        answer = template.format(topic=output.topic, coverage=coverage_phrase(self.context.coverage, index, rng))
        # A topic opening the answer starts it with a capital, unless it is written like "iOS".
        return output.question, answer if answer[1:2].isupper() else answer[:1].upper() + answer[1:]

    def build(self, job: Job, output: BaseModel, result: ChatResult) -> Pair:
        pair = super().build(job, output, result)
        pair.sources = []  # a refusal is grounded on nothing, by definition
        if isinstance(output, RefusalChoice):
            pair.origin.refusal_topic = output.topic
            pair.origin.refusal_source = output.source
        return pair


BUILDERS: dict[str, type[PairBuilder]] = {
    "instruction": InstructionPairBuilder,
    "multi_hop": MultiHopPairBuilder,
    "refusal": RefusalPairBuilder,
    "thinking": ThinkingPairBuilder,
    "clarification": ClarificationPairBuilder,
}


def builder_for(context: GenerationContext, kind: str) -> PairBuilder:
    """The builder of pair type ``kind``; raises PairForgeError for a type that is not generated."""
    try:
        return BUILDERS[str(kind)](context)
    except KeyError:
        raise PairForgeError(f"Pair type {kind!r} cannot be generated: re-plan the run.") from None


__all__ = [
    "ANGLES",
    "BUILDERS",
    "Ask",
    "ClarificationPairBuilder",
    "Exchange",
    "GenerationContext",
    "InstructionPairBuilder",
    "LogNote",
    "MultiHopPairBuilder",
    "PairBuilder",
    "PreparedRequest",
    "RefusalChoice",
    "RefusalPairBuilder",
    "ThinkingPairBuilder",
    "builder_for",
    "parse_answer",
]
