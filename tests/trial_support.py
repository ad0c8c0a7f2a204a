"""A project of distinct pairs over several documents, for the trial-subset and recipe tests.

Questions and answers are random word sequences, so no two are near duplicates by accident; a few
deliberate clusters (the same question with a typo) are added so the draw has clusters to keep whole.
The split is the real one (``make_split``).
"""

from __future__ import annotations

import random
from pathlib import Path

from engine.models import Chunk, Document, Message, Pair, PairKind, PairOrigin, PairStatus, Role
from engine.quality.split import make_split
from engine.store import Store

TOKENIZER_DIR = Path(__file__).parent / "data" / "tokenizer"

_SYLLABLES = ["ka", "to", "ri", "mu", "se", "lo", "va", "ne", "di", "po", "ha", "zu", "fe", "gi", "ba", "wo"]
# Pseudo-words: three distinct syllables each, so any two texts share few words.
VOCABULARY = sorted({a + b + c for a in _SYLLABLES for b in _SYLLABLES[::3] for c in _SYLLABLES[1::4]})
KIND_WEIGHTS = [(PairKind.INSTRUCTION, 55), (PairKind.MULTI_HOP, 10), (PairKind.REFUSAL, 15),
                (PairKind.THINKING, 12), (PairKind.CLARIFICATION, 8)]
MODES = [("developer", 5), ("thinker", 3), ("factual", 2)]
DOCUMENTS = ["guides/pumps.md", "guides/valves.rst", "notes/tides.txt", "api/client.py"]


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.sample(VOCABULARY, n))


def _pick(rng: random.Random, weighted: list[tuple[object, int]]) -> object:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def build_diverse_project(store: Store, n: int = 400, *, clusters: int = 6, big_cluster: int = 0, seed: int = 7,
                          tokenizer: bool = False) -> list[Pair]:
    """``n`` distinct pairs plus ``clusters`` near-duplicate clusters of up to three (and, with
    ``big_cluster``, one more of that many pairs), over four documents; about 5% rejected, the rest
    accepted; split with the project's split settings."""
    if tokenizer:
        toml = store.root / "pairforge.toml"
        text = toml.read_text(encoding="utf-8")
        toml.write_text(text.replace("[quality]\n", f"[quality]\ntokenizer = {str(TOKENIZER_DIR)!r}\n", 1),
                        encoding="utf-8")
        store.reload_settings()
    rng = random.Random(seed)
    chunks_of: list[list[int]] = []
    for index, path in enumerate(DOCUMENTS):
        body = " ".join(_words(rng, 12) for _ in range(20))
        doc, _ = store.save_document(
            Document(path=path, format="markdown", sha256=f"{index:02d}" * 32, size=len(body), title=path),
            [Chunk(ordinal=0, text=body[:600], start=0, end=600), Chunk(ordinal=1, text=body[600:], start=600, end=len(body))],
        )
        chunks_of.append([c.id for c in store.list_chunks(doc.id) if c.id is not None])
    pairs: list[Pair] = []
    for _ in range(n):
        kind = _pick(rng, KIND_WEIGHTS)
        assert isinstance(kind, PairKind)
        document = rng.randrange(len(DOCUMENTS))
        if kind is PairKind.REFUSAL:
            sources: list[int] = []
        elif kind is PairKind.MULTI_HOP:
            other = (document + 1 + rng.randrange(len(DOCUMENTS) - 1)) % len(DOCUMENTS)
            sources = [chunks_of[document][0], chunks_of[other][1]]
        else:
            sources = [rng.choice(chunks_of[document])]
        pairs.append(Pair(
            messages=[Message(role=Role.USER, content=f"How does {_words(rng, 6)} work?"),
                      Message(role=Role.ASSISTANT, content=f"It {_words(rng, 18)}.")],
            mode=str(_pick(rng, MODES)), kind=kind, sources=sources,
            origin=PairOrigin(backend="ollama", model="qwen2.5:7b-instruct", prompt_version=f"{kind.value}-v2"),
        ))
    for c in range(clusters):
        base = pairs[c * 7]
        question = base.instruction
        words = question.split(" ")
        for typo in range(2):
            # A typo inside one of the asked words (a letter dropped, a letter doubled), as a person makes it.
            at = 3 + typo
            words_typo = list(words)
            words_typo[at] = words[at][:-1] if typo == 0 else words[at][0] + words[at]
            variant = " ".join(words_typo)
            pairs.append(base.model_copy(update={"messages": [
                Message(role=Role.USER, content=variant),
                Message(role=Role.ASSISTANT, content=f"It {_words(rng, 18)}.")]}))
    if big_cluster:
        base = pairs[1]
        for j in range(big_cluster - 1):
            pairs.append(base.model_copy(update={"messages": [
                Message(role=Role.USER, content=f"{base.instruction} ({j})"),
                Message(role=Role.ASSISTANT, content=f"It {_words(rng, 18)}.")]}))
    added = store.add_pairs(pairs)
    ids = [p.id for p in added if p.id is not None]
    rejected = [i for k, i in enumerate(ids) if k % 20 == 19]
    store.set_status([i for i in ids if i not in set(rejected)], PairStatus.ACCEPTED)
    store.set_status(rejected, PairStatus.REJECTED)
    make_split(store)
    return store.get_pairs(ids)
