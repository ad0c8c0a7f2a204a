"""A realistic project for the export tests, built directly with the store (no generation)."""

from __future__ import annotations

from engine.models import (
    Chunk,
    Document,
    Message,
    Pair,
    PairKind,
    PairOrigin,
    PairStatus,
    PairWarning,
    Role,
    Severity,
)
from engine.store import Store

KINDS = [PairKind.INSTRUCTION, PairKind.MULTI_HOP, PairKind.REFUSAL, PairKind.THINKING,
         PairKind.CLARIFICATION, PairKind.MANUAL]
MODES = ["developer", "thinker", "factual"]


def _pair(i: int, chunk_ids: list[int]) -> Pair:
    kind = KINDS[i % len(KINDS)]
    messages: list[Message] = []
    if i % 3 == 0:
        messages.append(Message(role=Role.SYSTEM, content=f"You are the Tidewater guide #{i % 2}."))
    question = f"How do I winterise the tidal pump number {i}? Explain the steps — «quoted» and ünïcode."
    answer = f"Drain the intake, close valve {i}, then flush the line with fresh water before storing it.\nDone."
    messages += [Message(role=Role.USER, content=question), Message(role=Role.ASSISTANT, content=answer)]
    if i % 5 == 0:
        messages += [
            Message(role=Role.USER, content=f"And what about pump {i} in spring, once the ice has gone?"),
            Message(role=Role.ASSISTANT, content=f"Reopen valve {i}, prime the pump and check for leaks first."),
        ]
    warnings = []
    if i % 7 == 0:
        warnings.append(PairWarning(check="pii", severity=Severity.ERROR, reason="an e-mail address"))
    elif i % 4 == 0:
        warnings.append(PairWarning(check="short_response", severity=Severity.WARNING, reason="short"))
    origin = (
        PairOrigin(backend="ollama", model="qwen2.5:7b-instruct", prompt_version=f"{kind.value}-v2")
        if kind is not PairKind.MANUAL
        else PairOrigin()
    )
    return Pair(
        messages=messages,
        context=f"Pump {i} manual, section 4: the valve sits under the housing." if i % 4 == 1 else None,
        mode=MODES[i % len(MODES)],
        kind=kind,
        sources=[] if kind is PairKind.REFUSAL else chunk_ids[: 2 if kind is PairKind.MULTI_HOP else 1],
        origin=origin,
        warnings=warnings,
        score=(i % 10) + 0.5 if i % 2 == 0 else None,
    )


def build_project(store: Store, n: int = 60, *, split: bool = True) -> list[Pair]:
    """Add a document with chunks and ``n`` pairs: every kind and mode, system prompts on some,
    contexts, multi-turn, warnings of two severities, scores; accept most, reject and leave a
    few pending; store a train/validation split (every fifth pair in validation) when ``split``."""
    text = "Tidewater pump guide. " * 40
    doc, _ = store.save_document(
        Document(path="guides/pumps.md", format="markdown", sha256="ab" * 32, size=len(text), title="Pumps"),
        [Chunk(ordinal=0, text=text[:400], start=0, end=400), Chunk(ordinal=1, text=text[400:], start=400, end=len(text))],
    )
    chunk_ids = [c.id for c in store.list_chunks(doc.id) if c.id is not None]
    added = store.add_pairs([_pair(i, chunk_ids) for i in range(n)])
    ids = [p.id for p in added if p.id is not None]
    store.set_status([i for k, i in enumerate(ids) if k % 10 not in (8, 9)], PairStatus.ACCEPTED)
    store.set_status([i for k, i in enumerate(ids) if k % 10 == 9], PairStatus.REJECTED)
    if split:
        store.set_splits({i: ("validation" if k % 5 == 2 else "train") for k, i in enumerate(ids)})
    store.log("dedup", "removed", 3, "3 near duplicates removed")
    return store.get_pairs(ids)
