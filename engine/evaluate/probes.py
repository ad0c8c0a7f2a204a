"""The probes a fine-tuned model is tested on, built once per project and kept, so runs compare over time.

* **validation**: the questions of the validation split (never trained on), with the split's
  answers as references and their source chunks;
* **paraphrase**: two rewordings of each validation question written by the generation
  model (a paraphrase job per question, through the one job runner), kept only when they
  keep the question's meaning (:func:`keeps_meaning`);
* **out_of_corpus**: questions on neighbouring topics the corpus does not cover, verified
  absent by the refusal topic search (:mod:`engine.generate.refusals`), closest neighbours
  first; they are never written as training pairs, and should be declined;
* **ambiguous**: questions with no subject to answer about; they should get a question back.

A validation pair of kind refusal becomes an out-of-corpus probe and one of kind
clarification an ambiguous probe: the split kept them out of training too.

Meaning is checked by content words, not by the judge (:mod:`engine.evaluate.meaning`): a
rewording that drifts to another subject, drops or swaps what was asked about, or flips a
negation is not kept; the paraphrases are shown next to their original in the Eval section.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from engine.errors import InvalidModelOutputError, PairForgeError
from engine.evaluate.handler import trained_on
from engine.evaluate.meaning import keeps_meaning, meaning_overlap
from engine.generate.backends import ChatBackend, ChatOptions, parse_structured, schema_for
from engine.generate.refusals import absent_generic_topics, question_for
from engine.generate.retrieval import CorpusIndex
from engine.jobs import Answer, Finished, JobHandler, JobResult, JobSummary, TokenSink
from engine.models import Job, PairKind, PairStatus
from engine.quality.split import VALIDATION as SPLIT_VALIDATION
from engine.store.evals import AMBIGUOUS, OUT_OF_CORPUS, PARAPHRASE, VALIDATION, Probe

if TYPE_CHECKING:
    from engine.store import Store

PARAPHRASE_TASK = "eval_paraphrase"
PARAPHRASES_PER_QUESTION = 2
# Out-of-corpus probes: half the validation questions, within these bounds.
OUT_OF_CORPUS_MIN, OUT_OF_CORPUS_MAX = 10, 40

# Questions with no subject: a good assistant asks what "it" is before answering.
AMBIGUOUS_QUESTIONS: tuple[str, ...] = (
    "How do I set it up?",
    "What should the value be?",
    "Which one should I use?",
    "Why doesn't it work anymore?",
    "Is it on by default?",
    "What happens when it fails?",
    "How long does that take?",
    "Can I change that later?",
    "Is this the right way to do it?",
    "What's the limit?",
)


@dataclass(frozen=True)
class ProbeSet:
    """What building the probes added, by kind, and the counts now stored."""

    added: dict[str, int]
    stored: dict[str, int]


def _validation_pairs(store: Store) -> list[tuple[int, str, str, str, list[int]]]:
    """(id, kind, question, reference, sources) of the validation split's pairs that were not rejected."""
    rows = store.db.read(
        "SELECT id, kind, instruction, response, sources FROM pairs WHERE split = ? AND status != ? ORDER BY id",
        (SPLIT_VALIDATION, str(PairStatus.REJECTED)),
    )
    return [(r["id"], r["kind"], r["instruction"], r["response"], json.loads(r["sources"])) for r in rows]


def build_probes(store: Store) -> ProbeSet:
    """Add the probes the project does not have yet; returns what was added and what is stored.

    Probes already stored are kept as they are. Raises PairForgeError when the project has
    no validation split to take questions from.
    """
    pairs = _validation_pairs(store)
    if not pairs:
        raise PairForgeError(
            "The project has no validation pairs to evaluate on: run `pairforge split` first "
            "(the validation split is never trained on)."
        )
    new: list[Probe] = []
    for pair_id, kind, question, reference, sources in pairs:
        if kind == PairKind.REFUSAL:
            new.append(Probe(OUT_OF_CORPUS, question, reference, pair_id=pair_id))
        elif kind == PairKind.CLARIFICATION:
            new.append(Probe(AMBIGUOUS, question, reference, pair_id=pair_id, chunk_ids=tuple(sources)))
        else:
            new.append(Probe(VALIDATION, question, reference, pair_id=pair_id, chunk_ids=tuple(sources)))
    in_corpus = sum(1 for p in new if p.kind == VALIDATION)
    wanted = max(OUT_OF_CORPUS_MIN, min(OUT_OF_CORPUS_MAX, in_corpus // 2))
    index = CorpusIndex.build(store.list_chunks())
    # Closest neighbours first: an absent topic sharing words with the corpus is the harder test.
    # Topics the dataset already asks about were trained on: not a test of declining.
    candidates = [t for t in absent_generic_topics(index) if not trained_on(store, t)]
    topics = sorted(candidates, key=index.topic_coverage, reverse=True)[:wanted]
    new += [Probe(OUT_OF_CORPUS, question_for(topic, i), topic=topic) for i, topic in enumerate(topics)]
    new += [Probe(AMBIGUOUS, question) for question in AMBIGUOUS_QUESTIONS]
    added = store.evals.add_probes(new)
    counts: dict[str, int] = {}
    for probe in added:
        counts[probe.kind] = counts.get(probe.kind, 0) + 1
    if added:
        store.log("eval", "probes", len(added), f"added {len(added)} eval probe(s)", {"by_kind": counts})
    return ProbeSet(added=counts, stored=store.evals.probe_counts())


def plan_paraphrases(store: Store, params: dict[str, Any] | None = None) -> int | None:
    """Queue a paraphrase job per validation probe that never had one; returns the run id, or None if none needs one."""
    asked = {
        r["probe_id"] for r in store.db.read(
            "SELECT json_extract(params, '$.probe_id') AS probe_id FROM jobs WHERE task = ?", (PARAPHRASE_TASK,)
        )
    }
    probes = [p for p in store.evals.probes(VALIDATION) if p.id not in asked]
    if not probes:
        return None
    jobs = [Job(task=PARAPHRASE_TASK, chunk_ids=list(p.chunk_ids), params={"probe_id": p.id}) for p in probes]
    run_id, count = store.jobs.create_run(PARAPHRASE_TASK, dict(params or {}), jobs)
    store.log("eval", "planned", count, f"queued {count} question(s) to paraphrase", {"run_id": run_id})
    return run_id


class ParaphraseOutput(BaseModel):
    """What the model is asked for: rewordings of one question."""

    questions: list[str] = Field(min_length=PARAPHRASES_PER_QUESTION, max_length=PARAPHRASES_PER_QUESTION + 2)


PARAPHRASE_SYSTEM = (
    "You reword questions. Keep exactly what is asked and every name, number and term it depends on; "
    "change the wording and the sentence structure, as different people would ask the same thing."
)


def paraphrase_messages(question: str) -> list[dict[str, str]]:
    """The prompt asking for PARAPHRASES_PER_QUESTION rewordings of ``question``."""
    return [
        {"role": "system", "content": PARAPHRASE_SYSTEM},
        {"role": "user", "content": (
            f"Write {PARAPHRASES_PER_QUESTION} different ways to ask this question, as JSON "
            f'{{"questions": [...]}}.\n\nQuestion:\n{question}'
        )},
    ]


@dataclass
class ParaphraseWork:
    """A prepared paraphrase job: the validation probe and its prompt."""

    job: Job
    probe: Probe
    messages: list[dict[str, str]]


class ParaphraseHandler(JobHandler[ParaphraseWork, list[Probe]]):
    """Ask the generation model for rewordings of one validation question; keep those that keep its meaning."""

    task = PARAPHRASE_TASK

    def __init__(self, store: Store, *, options: ChatOptions | None = None) -> None:
        super().__init__(store)
        self.options = options or ChatOptions(temperature=0.8)
        self.schema = schema_for(ParaphraseOutput)

    def prepare(self, job: Job) -> ParaphraseWork:
        """Load the probe; raises PairForgeError when it was deleted."""
        probe = self.store.evals.get_probe(int(job.params.get("probe_id") or 0))
        if probe is None:
            raise PairForgeError("The validation probe was deleted before it was paraphrased.")
        return ParaphraseWork(job, probe, paraphrase_messages(probe.question))

    async def attempt(
        self, work: ParaphraseWork, backend: ChatBackend, attempt: int, on_token: TokenSink | None
    ) -> Answer[list[Probe]]:
        """One request; an answer none of whose rewordings keeps the meaning is a bad answer, asked again."""
        result = await backend.chat(work.messages, self.schema, self.options, on_token)
        output = parse_structured(result.content, ParaphraseOutput, done_reason=result.done_reason)
        kept: list[Probe] = []
        for text in dict.fromkeys(" ".join(q.split()) for q in output.questions):
            meaning = keeps_meaning(work.probe.question, text)
            if meaning is not None and len(kept) < PARAPHRASES_PER_QUESTION:
                kept.append(Probe(
                    PARAPHRASE, text, work.probe.reference, pair_id=work.probe.pair_id, parent_id=work.probe.id,
                    chunk_ids=work.probe.chunk_ids, meaning=meaning,
                ))
        if not kept:
            raise InvalidModelOutputError(
                f"No rewording kept the meaning of {work.probe.question!r} (content words lost or changed)."
            )
        return Answer(kept, result.completion_tokens or 0)

    def commit(self, batch: Sequence[Finished[ParaphraseWork, list[Probe]]]) -> list[JobResult | None]:
        """Store the kept paraphrases and mark each job done, in one transaction."""
        results: list[JobResult | None] = []
        with self.store.transaction():
            for item in batch:
                if self.store.jobs.status(item.job.id or 0) != "running":
                    results.append(None)
                    continue
                self.store.evals.add_probes(item.answer.value)
                self.store.jobs.mark_done(item.job.id or 0)
                results.append(JobResult(pair_id=item.work.probe.id))
        return results

    def describe(self, summary: JobSummary) -> str:
        """How many questions were paraphrased."""
        return f"paraphrased {summary.done} question(s), {summary.failed} failed"


__all__ = [
    "AMBIGUOUS_QUESTIONS",
    "PARAPHRASE_TASK",
    "ParaphraseHandler",
    "ParaphraseOutput",
    "ProbeSet",
    "build_probes",
    "keeps_meaning",
    "meaning_overlap",
    "paraphrase_messages",
    "plan_paraphrases",
]
