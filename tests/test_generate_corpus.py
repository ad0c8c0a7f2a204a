"""The sample corpus as a project for the generation tests, and tests of corpus search.

``load_sample_corpus`` uses the importer (``engine.ingest.import_paths``) when it
exists; otherwise it splits the text files of ``sample_docs/`` into paragraph
chunks itself, so these tests do not depend on the importer's progress.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from engine.generate.refusals import GENERIC_ADJACENT_TOPICS, absent_generic_topics
from engine.generate.retrieval import CorpusIndex, tokenize
from engine.models import Chunk, Document
from engine.resources import sample_docs_dir
from engine.store import Store

TEXT_SUFFIXES = {".md": "markdown", ".txt": "text", ".rst": "rst", ".py": "code", ".go": "code", ".html": "html"}
_TAG = re.compile(r"<[^>]+>")
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+)$", re.M)


def _concepts(text: str, heading: list[str]) -> list[str]:
    try:
        from engine.ingest.concepts import extract_concepts
    except ImportError:
        words = re.findall(r"\b[A-Z][a-zA-Z]{3,}\b", text)
        return list(dict.fromkeys([*heading[-1:], *words]))[:15]
    return extract_concepts(text, heading)


def _fallback_import(store: Store, folder: Path) -> None:
    for path in sorted(folder.iterdir()):
        fmt = TEXT_SUFFIXES.get(path.suffix)
        if fmt is None:
            continue
        raw = path.read_text(encoding="utf-8")
        text = _TAG.sub(" ", raw) if fmt == "html" else raw
        chunks: list[Chunk] = []
        heading: list[str] = [path.stem]
        start = 0
        for block in re.split(r"\n\s*\n", text):
            found = _MD_HEADING.findall(block)
            if found:
                heading = [path.stem, found[-1].strip()]
            if chunks and len(chunks[-1].text) + len(block) < 1200:
                last = chunks[-1]
                merged = last.text + "\n\n" + block
                chunks[-1] = last.model_copy(update={"text": merged, "end": last.start + len(merged)})
            elif block.strip():
                chunks.append(
                    Chunk(ordinal=len(chunks), text=block, start=start, end=start + len(block), heading_path=list(heading))
                )
            start += len(block) + 2
        chunks = [c.model_copy(update={"concepts": _concepts(c.text, c.heading_path)}) for c in chunks]
        document = Document(
            path=str(path), format=fmt, sha256=hashlib.sha256(raw.encode()).hexdigest(), size=len(raw), title=path.stem
        )
        store.save_document(document, chunks)


def load_sample_corpus(store: Store) -> Store:
    """Import ``sample_docs/`` into ``store``; returns the store."""
    try:
        from engine.ingest import import_paths  # type: ignore[attr-defined]
    except ImportError:
        _fallback_import(store, sample_docs_dir())
    else:
        import_paths(store, [sample_docs_dir()])
    return store


def test_tokenize_splits_identifiers_and_drops_stop_words() -> None:
    assert tokenize("The max_retries setting of tidewater.worker") == [
        "max_retries", "max", "retries", "setting", "tidewater", "worker"
    ]


def test_search_finds_the_chunk_about_a_term(project: Store) -> None:
    load_sample_corpus(project)
    index = CorpusIndex.build(project.list_chunks())
    assert len(index) > 20
    hit = index.search("retry backoff", k=1)[0]
    text = project.get_chunks([hit.chunk_id])[0].text.lower()
    assert "retr" in text and "backoff" in text


def test_related_chunks_come_from_other_documents(project: Store) -> None:
    load_sample_corpus(project)
    chunks = project.list_chunks()
    index = CorpusIndex.build(chunks)
    anchor = chunks[5]
    related = index.related(anchor.id or 0, k=3)
    assert related and all(hit.document_id != anchor.document_id for hit in related)


def test_present_topics_are_not_absent_and_generic_topics_mostly_are(project: Store) -> None:
    load_sample_corpus(project)
    index = CorpusIndex.build(project.list_chunks())
    for present in ("Tidewater worker retries", "dead letter queue", "caching"):
        assert not index.is_absent(present), present
    absent = absent_generic_topics(index)
    assert len(absent) >= len(GENERIC_ADJACENT_TOPICS) // 2
    assert "cooking recipes" in absent
