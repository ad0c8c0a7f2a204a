"""Deterministic projects for the app's tests and snapshots (and a test that they are what they say)."""

from __future__ import annotations

from pathlib import Path

from engine.models import Chunk, Document, Pair, PairKind, PairWarning
from engine.store import Store

HOSTILE_INSTRUCTION = "How do I [bold red]x[/] retry a job?\x1b[31m"


def build_review_project(root: Path, *, pairs: int = 30) -> Path:
    """A project with one document, two chunks and ``pairs`` fixed pairs (some warned, one hostile)."""
    store = Store.init(root, name="snapshot-project")
    try:
        store.save_document(
            Document(path="guide.md", format="markdown", sha256="0" * 64, size=120, title="Tidewater guide"),
            [
                Chunk(ordinal=0, text="Tidewater retries a failed job three times with backoff.", start=0, end=57,
                      heading_path=["Guide", "Retries"]),
                Chunk(ordinal=1, text="Queues are declared in tidewater.toml under [queues].", start=57, end=111,
                      heading_path=["Guide", "Configuration"]),
            ],
        )
        chunk_ids = [c.id for c in store.list_chunks()]
        built = []
        for i in range(pairs):
            kind = PairKind.REFUSAL if i % 7 == 6 else (PairKind.MULTI_HOP if i % 5 == 4 else PairKind.INSTRUCTION)
            instruction = HOSTILE_INSTRUCTION if i == 0 else f"How does Tidewater handle case {i} of retries?"
            warnings = [PairWarning(check="mimicry", reason="The answer copies long spans of its source.")] if i % 4 == 1 else []
            built.append(Pair.simple(
                instruction,
                f"Tidewater retries failed job number {i} three times, waiting longer each time before trying again.",
                kind=kind, mode=("developer", "thinker", "factual")[i % 3],
                sources=[] if kind is PairKind.REFUSAL else chunk_ids[: 1 + (kind is PairKind.MULTI_HOP)],
                warnings=warnings,
            ))
        store.add_pairs(built)
    finally:
        store.close()
    return root


def test_review_project_is_deterministic(tmp_path: Path) -> None:
    """Two builds hold the same pairs, so snapshots of them can be compared."""
    first = Store.open(build_review_project(tmp_path / "a"))
    second = Store.open(build_review_project(tmp_path / "b"))
    try:
        assert first.count_pairs() == second.count_pairs() == 30
        assert [p.instruction for p in first.iter_pairs()] == [p.instruction for p in second.iter_pairs()]
        assert first.warning_counts() == {"mimicry": 8}
        assert first.pair_counts("kind")["refusal"] == 4
    finally:
        first.close()
        second.close()
