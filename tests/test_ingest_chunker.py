"""The chunker: exact spans, structure awareness, size limits, key concepts."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from engine.ingest import chunk_text, extract_concepts, file_facts, load_document
from engine.ingest.chunker import iter_blocks
from engine.ingest.formats import detect_format
from engine.settings import ChunkingSettings

SMALL = ChunkingSettings(size_chars=300, overlap_chars=40, min_chars=50)


def _assert_spans(text: str, chunks: list) -> None:
    assert chunks, "expected at least one chunk"
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text.strip() == chunk.text and chunk.text
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    starts = [c.start for c in chunks]
    assert starts == sorted(starts)


@pytest.mark.parametrize("settings", [ChunkingSettings(), SMALL])
def test_every_sample_file_has_exact_spans(sample_docs: Path, settings: ChunkingSettings) -> None:
    checked = 0
    for path in sorted(sample_docs.iterdir()):
        fmt = detect_format(path)
        if path.name.startswith(".") or fmt == "dataset":
            continue
        loaded = load_document(path, fmt, file_facts(path))
        text = "".join(loaded.segments)
        chunks = list(chunk_text(text, style=loaded.style, settings=settings))
        _assert_spans(text, chunks)
        # Offsets are the same whether the text arrives whole or in small pieces.
        pieces = [text[i : i + 97] for i in range(0, len(text), 97)]
        streamed = list(chunk_text(pieces, style=loaded.style, settings=settings))
        assert [(c.start, c.end) for c in streamed] == [(c.start, c.end) for c in chunks]
        checked += 1
    assert checked >= 10


_WORDS = ["alpha", "beta", "gamma", "delta", "queue", "worker", "retry", "cache", "lease", "broker", "token.", "Then!", "Why?"]


def _random_document(rng: random.Random) -> str:
    parts: list[str] = []
    for _ in range(rng.randint(1, 40)):
        roll = rng.random()
        if roll < 0.15:
            parts.append("#" * rng.randint(1, 4) + " " + " ".join(rng.choices(_WORDS, k=3)))
        elif roll < 0.25:
            parts.append("```py\n" + "\n".join("x = 1" * rng.randint(1, 30) for _ in range(rng.randint(1, 60))) + "\n```")
        elif roll < 0.3:
            parts.append("Title\n" + rng.choice("=-~") * 8)
        elif roll < 0.35:
            parts.append("word" * rng.randint(100, 900))  # no spaces at all
        else:
            parts.append(" ".join(rng.choices(_WORDS, k=rng.randint(1, 400))))
    seps = ["\n\n", "\n", "\n\n\n", "\r\n", " \n \n"]
    return "".join(p + rng.choice(seps) for p in parts)


@pytest.mark.parametrize("style", ["markdown", "rst", "text", "code"])
def test_random_inputs_keep_exact_spans_and_size(style: str) -> None:
    rng = random.Random(1234 + len(style))
    for _ in range(60):
        text = _random_document(rng)
        settings = ChunkingSettings(
            size_chars=rng.choice([200, 500, 1500]), overlap_chars=rng.choice([0, 30, 150]), min_chars=rng.choice([0, 120])
        )
        chunks = list(chunk_text(text, style=style, settings=settings))
        if not text.strip():
            assert chunks == []
            continue
        _assert_spans(text, chunks)
        # The whole text is covered: nothing but whitespace falls between chunks.
        covered = 0
        for chunk in chunks:
            assert not text[covered : chunk.start].strip()
            covered = max(covered, chunk.end)
        assert not text[covered:].strip()
        for chunk in chunks[:-1]:
            assert len(chunk.text) <= settings.size_chars
        # A short last chunk is merged, so the tail may exceed the size by at most min_chars.
        assert len(chunks[-1].text) <= settings.size_chars + settings.min_chars


def test_markdown_headings_build_paths_and_code_blocks_stay_whole() -> None:
    code = "```python\n" + "\n".join(f"value_{i} = {i}" for i in range(20)) + "\n```\n"
    text = (
        "# Guide\n\nIntro paragraph about the guide.\n\n"
        "## Install\n\n" + "Step text. " * 20 + "\n\n" + code + "\n"
        "Setext Section\n--------------\n\nBody under setext.\n"
    )
    chunks = list(chunk_text(text, style="markdown", settings=ChunkingSettings(size_chars=400, overlap_chars=0, min_chars=0)))
    _assert_spans(text, chunks)
    assert any(c.heading_path == ["Guide", "Install"] for c in chunks)
    assert chunks[-1].heading_path == ["Guide", "Setext Section"]
    holding_code = [c for c in chunks if "value_0" in c.text]
    assert len(holding_code) == 1 and code.strip() in holding_code[0].text


def test_rst_headings_and_literal_blocks() -> None:
    text = (
        "=====\nTitle\n=====\n\nIntro.\n\nSection\n-------\n\nExample::\n\n    run()\n\n    more()\n\n"
        ".. code-block:: go\n\n   func main() {}\n\nAfter.\n"
    )
    blocks = list(iter_blocks([text], "rst"))
    headings = [b.heading_path for b in blocks if b.kind == "heading"]
    assert headings == [("Title",), ("Title", "Section")]
    code = [b.text for b in blocks if b.kind == "code"]
    assert any("run()" in c and "more()" in c for c in code)
    assert any("func main" in c for c in code)
    assert "".join(b.text for b in blocks) == text


def test_oversize_block_splits_at_sentences() -> None:
    text = " ".join(f"Sentence number {i} ends here." for i in range(200))
    chunks = list(chunk_text(text, style="text", settings=ChunkingSettings(size_chars=300, overlap_chars=0, min_chars=0)))
    _assert_spans(text, chunks)
    assert len(chunks) > 10
    assert all(c.text.endswith(".") for c in chunks)


def test_overlap_shares_text_between_neighbours() -> None:
    text = "\n\n".join(" ".join(f"w{p}x{i}" for i in range(30)) for p in range(20))
    chunks = list(chunk_text(text, style="text", settings=ChunkingSettings(size_chars=400, overlap_chars=80, min_chars=0)))
    _assert_spans(text, chunks)
    overlapping = sum(1 for a, b in itertools.pairwise(chunks) if b.start < a.end)
    assert overlapping >= len(chunks) // 2


def test_code_is_chunked_by_top_level_definitions() -> None:
    text = "\n\n".join(f"def handler_{i}(job):\n" + "    x = job\n" * 30 + "    return x" for i in range(4))
    chunks = list(chunk_text(text, style="code", settings=ChunkingSettings(size_chars=500, overlap_chars=0, min_chars=0)))
    _assert_spans(text, chunks)
    assert [c.heading_path for c in chunks] == [[f"handler_{i}"] for i in range(4)]
    assert "handler_2" in chunks[2].concepts


def test_concepts_favour_headings_terms_and_identifiers() -> None:
    text = (
        "## Leases\n\nA **lease** is a time-limited claim. The `lease_timeout` setting decides it.\n"
        "Tidewater is a job queue for Go workers.\n\n```go\nfunc RenewLease(id string) {}\n```\n"
    )
    concepts = extract_concepts(text, ["Guide", "Leases"])
    assert concepts[0] == "Leases"
    for expected in ("lease", "lease_timeout", "Tidewater", "RenewLease"):
        assert expected in concepts
    assert len(concepts) == len({c.lower() for c in concepts}) <= 15
