"""SIGKILL in the middle of a large import leaves only whole documents behind."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from engine.ingest import chunk_text, file_facts, load_document
from engine.ingest.formats import detect_format
from engine.store import DB_FILE, Store

REPO = Path(__file__).resolve().parent.parent


def _make_corpus(folder: Path, files: int) -> None:
    folder.mkdir()
    body = "\n\n".join(
        f"## Section {s}\n\n" + "Workers lease jobs from the broker and renew the lease. " * 40 for s in range(60)
    )
    for i in range(files):
        (folder / f"doc{i:03d}.md").write_text(f"# Document {i}\n\n{body}\n", encoding="utf-8")


def _documents_done(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_sigkill_mid_import_leaves_whole_documents(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    _make_corpus(corpus, 200)
    root = tmp_path / "project"
    Store.init(root).close()
    script = (
        "import sys\n"
        "from engine.store import Store\n"
        "from engine.ingest import import_paths\n"
        "import_paths(Store.open(sys.argv[1]), [sys.argv[2]])\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(root), str(corpus)], cwd=REPO)
    deadline = time.monotonic() + 30
    while _documents_done(root / DB_FILE) < 5 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL

    store = Store.open(root)
    try:
        documents = store.list_documents()
        assert 5 <= len(documents) < 200
        for document in documents:
            path = Path(document.meta["source_path"])
            fmt = detect_format(path)
            loaded = load_document(path, fmt, file_facts(path))
            expected = list(chunk_text(loaded.segments, style=loaded.style, settings=store.settings.chunking))
            stored = store.list_chunks(document.id)
            assert [(c.start, c.end, c.text) for c in stored] == [(c.start, c.end, c.text) for c in expected]
    finally:
        store.close()
