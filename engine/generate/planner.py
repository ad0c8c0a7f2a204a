"""The generation planner: how many pairs of which kind and mode, grounded on which chunks.

The plan follows the field's guides: a target sized to the corpus (never under the
1000-pair dataset minimum), at least 60 refusals and 20 multi-hop pairs, a share of
thinking and clarification pairs, modes balanced, every document covered and
pairs per chunk proportional to its length, so no part of a long document is skipped.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from engine.errors import ConfigError, PairForgeError
from engine.generate.prompts import GENERATED_KINDS, load_packs, require_modes
from engine.generate.refusals import describe_refusal_sources
from engine.generate.retrieval import CorpusIndex
from engine.models import Chunk, Document, Job, PairKind
from engine.store import Store

DATASET_MINIMUM = 1000

# Shares of the target per kind; instruction takes what is left.
DEFAULT_MIX: dict[str, float] = {"refusal": 0.06, "multi_hop": 0.05, "thinking": 0.12, "clarification": 0.05}

# (documents up to, pairs at the low end, pairs at the high end) from the guides' table.
_GUIDE_TABLE: tuple[tuple[int, int, int, int], ...] = ((1, 5, 500, 1000), (5, 20, 1000, 2000), (20, 50, 2000, 5000))

# Minimums never take more than this share of a small target.
_MAX_MINIMUM_SHARE = 0.3

CHUNK_KINDS = ("instruction", "thinking", "clarification")


class DocumentPlan(BaseModel):
    """How many jobs draw on one document."""

    document_id: int
    path: str
    chunks: int
    jobs: int


class Plan(BaseModel):
    """A generation plan: composition, coverage and the jobs that realise it."""

    target: int
    composition: dict[str, int]
    by_mode: dict[str, int]
    composition_by_mode: dict[str, dict[str, int]]
    documents: list[DocumentPlan]
    jobs: list[Job] = Field(default_factory=list, repr=False)
    notes: list[str] = Field(default_factory=list)
    seed: int = 0
    refusal_sources: dict[str, int] = Field(default_factory=dict)
    """The project's refusal pairs so far by where their topic came from (model, fallback)."""

    def summary(self) -> dict[str, Any]:
        """The plan without its jobs, for display and JSON."""
        return self.model_dump(mode="json", exclude={"jobs"})


def guide_target(n_documents: int) -> int:
    """The guides' pair count for a corpus of ``n_documents``, never under the dataset minimum."""
    for low_docs, high_docs, low_pairs, high_pairs in _GUIDE_TABLE:
        if n_documents <= high_docs:
            span = max(1, high_docs - low_docs)
            share = min(1.0, max(0.0, (n_documents - low_docs) / span))
            return max(DATASET_MINIMUM, round(low_pairs + share * (high_pairs - low_pairs)))
    return max(5000, 100 * n_documents)


def parse_mix(text: str) -> dict[str, float]:
    """Parse ``refusal=0.06,multi_hop=0.05`` into shares; raises ConfigError naming the bad item."""
    mix: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, sep, value = item.partition("=")
        kind = kind.strip()
        if not sep or kind not in GENERATED_KINDS:
            raise ConfigError(
                f"--mix item {item!r} is not KIND=SHARE; use kinds {', '.join(GENERATED_KINDS)}, e.g. refusal=0.06."
            )
        try:
            share = float(value)
        except ValueError:
            raise ConfigError(f"--mix share {value!r} for {kind} is not a number; use a fraction such as 0.05.") from None
        if not 0 <= share <= 1:
            raise ConfigError(f"--mix share {share} for {kind} is outside 0..1; use a fraction such as 0.05.")
        mix[kind] = share
    return mix


def _composition(target: int, mix: Mapping[str, float], settings_min: Mapping[str, int], n_docs: int,
                 notes: list[str]) -> dict[str, int]:
    shares = {**DEFAULT_MIX, **{k: v for k, v in mix.items() if k != "instruction"}}
    if sum(shares.values()) > 1:
        raise ConfigError(
            f"The mix shares add up to {sum(shares.values()):.2f}, more than 1; lower some of them."
        )
    counts = {kind: round(target * share) for kind, share in shares.items()}
    for kind, minimum in settings_min.items():
        capped = min(minimum, int(target * _MAX_MINIMUM_SHARE))
        if capped < minimum:
            notes.append(f"{kind}: the minimum of {minimum} is capped at {capped} for a target of {target}.")
        counts[kind] = max(counts.get(kind, 0), capped)
    if n_docs < 2 and counts.get("multi_hop"):
        notes.append("multi_hop: needs two or more documents; none planned.")
        counts["multi_hop"] = 0
    counts["instruction"] = target - sum(counts.values())
    if counts["instruction"] < 0:
        raise ConfigError(f"The mix leaves no room for instruction pairs at a target of {target}; raise --target.")
    return {kind: counts.get(kind, 0) for kind in GENERATED_KINDS}


def _proportional(weights: Sequence[float], total: int) -> list[int]:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder)."""
    if total <= 0 or not weights:
        return [0] * len(weights)
    weight_sum = sum(weights) or float(len(weights))
    exact = [total * (w if sum(weights) else 1.0) / weight_sum for w in weights]
    counts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _evenly(items: Sequence[Chunk], n: int) -> list[Chunk]:
    """``n`` items spread evenly over ``items`` (start, middle and end of a document)."""
    if n >= len(items):
        # More slots than chunks: each chunk once, the rest by length.
        extra = _proportional([len(c.text) for c in items], n - len(items))
        return [c for c, k in zip(items, extra, strict=True) for _ in range(1 + k)]
    return [items[int((i + 0.5) * len(items) / n)] for i in range(n)]


def allocate_chunk_slots(chunks_by_doc: Mapping[int, Sequence[Chunk]], total: int) -> list[Chunk]:
    """One chunk per slot: every document first, then every chunk, the rest by content length."""
    docs = [d for d in chunks_by_doc if chunks_by_doc[d]]
    all_chunks = [c for d in docs for c in chunks_by_doc[d]]
    if total <= 0 or not all_chunks:
        return []
    if total >= len(all_chunks):
        extra = _proportional([len(c.text) for c in all_chunks], total - len(all_chunks))
        return [c for c, n in zip(all_chunks, extra, strict=True) for _ in range(1 + n)]
    # Fewer slots than chunks: each document gets a share by length (at least one), spread over it.
    per_doc = [1] * len(docs) if total >= len(docs) else [0] * len(docs)
    rest = total - sum(per_doc)
    lengths = [sum(len(c.text) for c in chunks_by_doc[d]) for d in docs]
    extra = _proportional(lengths, rest)
    slots: list[Chunk] = []
    for i, doc in enumerate(docs):
        slots.extend(_evenly(chunks_by_doc[doc], per_doc[i] + extra[i]))
    return slots[:total]


def _plannable(store: Store) -> tuple[list[Document], dict[int, list[Chunk]]]:
    documents = [d for d in store.list_documents() if d.format != "dataset" and d.n_chunks > 0]
    chunks_by_doc: dict[int, list[Chunk]] = defaultdict(list)
    for chunk in store.list_chunks():
        chunks_by_doc[chunk.document_id or 0].append(chunk)
    documents = [d for d in documents if chunks_by_doc.get(d.id or 0)]
    return documents, {d.id or 0: chunks_by_doc[d.id or 0] for d in documents}


def make_plan(
    store: Store,
    *,
    target: int | None = None,
    mix: dict[str, float] | None = None,
    modes: list[str] | None = None,
    seed: int = 0,
) -> Plan:
    """Plan a generation run over the project's documents; returns the Plan (nothing is saved).

    Raises PairForgeError when there is nothing to generate from and ConfigError for a
    bad mix or an unknown mode.
    """
    settings = store.settings.generation
    documents, chunks_by_doc = _plannable(store)
    if not documents:
        raise PairForgeError(
            "There are no documents to generate from: run `pairforge import PATH` with your documents first."
        )
    modes = require_modes(load_packs(store.root), list(modes or settings.modes))
    target = target or settings.target or guide_target(len(documents))
    notes: list[str] = []
    minimums = {"refusal": settings.min_refusals, "multi_hop": settings.min_multi_hop}
    composition = _composition(target, mix or {}, minimums, len(documents), notes)
    rng = random.Random(seed)

    # Kinds grounded on one chunk share slots allocated by length, then are shuffled over them.
    n_chunk_jobs = sum(composition[k] for k in CHUNK_KINDS)
    slots = allocate_chunk_slots(chunks_by_doc, n_chunk_jobs)
    kinds = [k for k in CHUNK_KINDS for _ in range(composition[k])]
    rng.shuffle(kinds)
    planned: list[tuple[str, list[int]]] = [(kind, [chunk.id or 0]) for kind, chunk in zip(kinds, slots, strict=True)]

    # Multi-hop anchors rotate over documents; partners are the most related chunks elsewhere.
    if composition["multi_hop"]:
        index = CorpusIndex.build(c for chunks in chunks_by_doc.values() for c in chunks)
        related_of = {c.id or 0: index.related(c.id or 0, k=4) for chunks in chunks_by_doc.values() for c in chunks}
        # Only chunks that share vocabulary with another document can anchor a multi-hop question.
        anchorable = {
            d: [c for c in chunks if related_of[c.id or 0]] for d, chunks in chunks_by_doc.items()
        }
        anchors = allocate_chunk_slots(anchorable, composition["multi_hop"])
        rng.shuffle(anchors)
        uses: Counter[int] = Counter()
        for anchor in anchors:
            related = related_of[anchor.id or 0]
            # Vary the partner when the same anchor comes back, so pairs do not repeat.
            partner = related[uses[anchor.id or 0] % len(related)]
            uses[anchor.id or 0] += 1
            planned.append(("multi_hop", [anchor.id or 0, partner.chunk_id]))
        missing = composition["multi_hop"] - sum(1 for kind, _ in planned if kind == "multi_hop")
        if missing:
            notes.append(f"multi_hop: {missing} planned pair(s) found no related chunk and became instruction pairs.")
            planned += [("instruction", [c.id or 0]) for c in allocate_chunk_slots(chunks_by_doc, missing)]
            composition["multi_hop"] -= missing
            composition["instruction"] += missing
    planned += [("refusal", []) for _ in range(composition["refusal"])]
    rng.shuffle(planned)

    # Modes round-robin within each kind, so every kind is balanced across modes.
    seen: Counter[str] = Counter()
    jobs: list[Job] = []
    composition_by_mode: dict[str, dict[str, int]] = {kind: dict.fromkeys(modes, 0) for kind in GENERATED_KINDS}
    doc_of = {c.id: d for d, chunks in chunks_by_doc.items() for c in chunks}
    doc_jobs: Counter[int] = Counter()
    for variant, (kind, chunk_ids) in enumerate(planned):
        mode = modes[(seen[kind] + seed) % len(modes)]
        params: dict[str, Any] = {"variant": variant, "seed": seed * 1_000_003 + variant}
        if kind == "refusal":
            params["refusal_index"] = seen[kind]
        seen[kind] += 1
        composition_by_mode[kind][mode] += 1
        for doc in {doc_of[c] for c in chunk_ids}:
            doc_jobs[doc] += 1
        jobs.append(Job(kind=PairKind(kind), mode=mode, chunk_ids=chunk_ids, params=params))
    by_mode = Counter(job.mode for job in jobs)
    refusal_sources = store.pairs.refusal_sources()
    if composition["refusal"]:
        so_far = f" So far: {describe_refusal_sources(refusal_sources)}." if refusal_sources else ""
        notes.append(
            f"refusal: topics are the model's proposals of neighbouring topics, each checked absent from the "
            f"documents; the built-in list fills in only when none passes.{so_far}"
        )
    return Plan(
        target=target,
        composition=composition,
        by_mode={mode: by_mode.get(mode, 0) for mode in modes},
        composition_by_mode=composition_by_mode,
        documents=[
            DocumentPlan(document_id=d.id or 0, path=d.path, chunks=len(chunks_by_doc[d.id or 0]), jobs=doc_jobs[d.id or 0])
            for d in documents
        ],
        jobs=jobs,
        notes=notes,
        seed=seed,
        refusal_sources=refusal_sources,
    )


def save_plan(store: Store, plan: Plan) -> int:
    """Write the plan's jobs as a queued generation run; returns the run id."""
    params = {"target": plan.target, "composition": plan.composition, "by_mode": plan.by_mode, "seed": plan.seed}
    run_id, _ = store.create_run("generate", params, plan.jobs)
    store.log("plan", "saved", len(plan.jobs), f"run {run_id}: {len(plan.jobs)} generation job(s) queued")
    return run_id


__all__ = [
    "DATASET_MINIMUM",
    "DEFAULT_MIX",
    "DocumentPlan",
    "Plan",
    "allocate_chunk_slots",
    "guide_target",
    "make_plan",
    "parse_mix",
    "save_plan",
]
