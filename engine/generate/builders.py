"""Pair builders: one per pair type, turning a job into a request and a model answer into a Pair.

A :class:`GenerationContext` is loaded once per run (prompt packs, the corpus index,
chunks, the corpus overview); builders are cheap and stateless apart from it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from engine.errors import NotFoundError, PairForgeError
from engine.generate.backends import ChatResult, schema_for
from engine.generate.outputs import (
    OUTPUT_MODELS,
    ClarificationPair,
    GeneratedPair,
    RefusalCandidates,
    ThinkingPair,
)
from engine.generate.prompts import MAX_ASKED_CHARS, PromptPack, asked_block, load_packs
from engine.generate.refusals import (
    absent_generic_topics,
    corpus_overview,
    coverage_phrase,
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


@dataclass
class GenerationContext:
    """Everything the builders need about a project, loaded once per run."""

    store: Store
    packs: dict[str, PromptPack]
    index: CorpusIndex
    chunks: dict[int, Chunk]
    documents: dict[int, Document]
    overview: str
    coverage: str
    fallback_topics: list[str]
    used_topics: set[str] = field(default_factory=set)
    absent: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def load(cls, store: Store) -> GenerationContext:
        """Read packs, chunks and documents of ``store`` and index the corpus."""
        documents = {d.id or 0: d for d in store.list_documents() if d.format != "dataset"}
        chunks = [c for c in store.list_chunks() if (c.document_id or 0) in documents]
        index = CorpusIndex.build(chunks)
        docs = list(documents.values())
        return cls(
            store=store,
            packs=load_packs(store.root),
            index=index,
            chunks={c.id or 0: c for c in chunks},
            documents=documents,
            overview=corpus_overview(docs, chunks),
            coverage=coverage_phrase(docs, chunks),
            fallback_topics=absent_generic_topics(index),
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


class RefusalPairBuilder(PairBuilder):
    """A question about an adjacent topic the corpus does not cover, politely declined.

    The model proposes topics from the corpus overview; each is searched for in the corpus
    and kept only if absent. When none survives, the built-in list supplies the topic.
    """

    kind = PairKind.REFUSAL

    def values(self, job: Job, sources: list[Chunk]) -> dict[str, Any]:
        return {"overview": self.context.overview, "coverage": self.context.coverage,
                "angle": ANGLES[_variant(job) % len(ANGLES)]}

    def choose(self, job: Job, candidates: RefusalCandidates) -> tuple[str, str]:
        """The (topic, question) to decline: the first verified-absent new proposal, else a built-in one."""
        is_absent = self.context.is_absent
        for candidate in candidates.candidates:
            topic = " ".join(candidate.topic.split())
            if topic.lower() in self.context.used_topics:
                continue
            if is_absent(topic) and is_absent(candidate.question):
                return topic, " ".join(candidate.question.split())
        fallback = self.context.fallback_topics
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
                if is_absent(question):
                    return topic, question
        raise PairForgeError("Every built-in refusal question matched the corpus: lower the refusal share.")

    def turns(self, job: Job, output: Any) -> tuple[str, str]:
        assert isinstance(output, RefusalCandidates)
        topic, question = self.choose(job, output)
        self.context.used_topics.add(topic.lower())
        pack = self.context.pack(job.mode)
        template = pack.declinations[_variant(job) % len(pack.declinations)]
        answer = template.format(topic=topic, coverage=self.context.coverage)
        return question, answer[:1].upper() + answer[1:]

    def build(self, job: Job, output: BaseModel, result: ChatResult) -> Pair:
        pair = super().build(job, output, result)
        pair.sources = []  # a refusal is grounded on nothing, by definition
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
    "ClarificationPairBuilder",
    "GenerationContext",
    "InstructionPairBuilder",
    "MultiHopPairBuilder",
    "PairBuilder",
    "PreparedRequest",
    "RefusalPairBuilder",
    "ThinkingPairBuilder",
    "builder_for",
]
