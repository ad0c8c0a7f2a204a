"""Importing files: each format, datasets, re-import, and every bad input the spec lists."""

from __future__ import annotations

import json
import os
import sqlite3
import tracemalloc
from pathlib import Path

import pytest

from engine.errors import ProjectReadOnlyError
from engine.ingest import ImportProgress, import_paths
from engine.models import PairKind
from engine.store import DB_FILE, PairFilter, Store


def _write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _log_messages(store: Store, action: str) -> list[str]:
    return [e.message for e in store.log_tail(500, step="import") if e.action == action]


def test_sample_corpus_imports_every_file(project: Store, sample_docs: Path) -> None:
    seen: list[ImportProgress] = []
    report = import_paths(project, [sample_docs], on_progress=seen.append)
    assert not report.failed
    assert len(report.imported) == 12
    docs = {d.path: d for d in project.list_documents()}
    for name in ("caching.md", "architecture.rst", "api-reference.html", "release-notes.pdf", "client.py", "worker.go", "deployment-notes.txt"):
        doc = docs[f"sample_docs/{name}"]
        assert doc.n_chunks > 0
    assert docs["sample_docs/release-notes.pdf"].meta["pages"] >= 1
    assert docs["sample_docs/client.py"].meta["language"] == "python"
    assert docs["sample_docs/caching.md"].title == "Result Caching"
    html_text = " ".join(c.text for c in project.list_chunks(docs["sample_docs/api-reference.html"].id))
    assert "Tidewater HTTP API Reference" in html_text
    assert "addEventListener" not in html_text and "font-family" not in html_text
    assert seen[-1].done_files == seen[-1].total_files == 12
    assert _log_messages(project, "imported")


def test_dataset_rows_are_imported_with_flaws_and_lines(project: Store, sample_docs: Path) -> None:
    import_paths(project, [sample_docs / "legacy-dataset.jsonl"])
    pairs = list(project.iter_pairs(PairFilter(kind="imported")))
    assert len(pairs) == 16
    flaws = json.loads((sample_docs / ".flaws.json").read_text())
    by_line = {p.origin.source_line: p for p in pairs}
    assert "As an AI language model" in by_line[3].response  # the planted flaw stays
    assert {f["line"] for f in flaws} <= set(by_line)
    assert all(p.origin.source_format == "alpaca" and p.mode == "factual" for p in pairs)
    assert by_line[4].context and "ErrCardDeclined" in by_line[4].context


@pytest.mark.parametrize(
    ("name", "content", "expected_format"),
    [
        ("share.jsonl", json.dumps({"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "What is a lease?"}, {"from": "gpt", "value": "A time-limited claim on a job."}]}) + "\n", "sharegpt"),
        ("chat.jsonl", json.dumps({"messages": [{"role": "user", "content": "What is a lease?"}, {"role": "assistant", "content": "A claim on a job."}]}) + "\n", "messages"),
        ("pc.jsonl", json.dumps({"prompt": "Define lease.", "completion": "A claim on a job."}) + "\n", "prompt_completion"),
        ("alpaca.json", '[\n  {"instruction": "Q1?", "input": "", "output": "A1."},\n  {"instruction": "Q2?", "input": "ctx", "output": "A2.",\n   "history": [["hi", "hello"]], "system": "sys"}\n]\n', "alpaca"),
    ],
)
def test_dataset_formats_are_detected(project: Store, tmp_path: Path, name: str, content: str, expected_format: str) -> None:
    path = _write(tmp_path / "in", name, content)
    report = import_paths(project, [path])
    assert report.pairs_imported >= 1 and not report.failed
    pairs = list(project.iter_pairs())
    assert all(p.kind is PairKind.IMPORTED and p.origin.source_format == expected_format for p in pairs)
    if name == "alpaca.json":
        second = pairs[1]
        assert second.origin.source_line == 3  # the line the element starts on
        assert second.system == "sys" and second.context == "ctx"
        assert [m.content for m in second.messages][1:3] == ["hi", "hello"]
    if name == "share.jsonl":
        assert pairs[0].system == "Be brief."


def test_json_that_is_not_a_dataset_is_a_document(project: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "in", "package.json", json.dumps({"name": "demo", "version": "1.0.0", "scripts": {"test": "jest"}}, indent=2))
    report = import_paths(project, [path])
    assert report.imported == ["package.json"] and report.pairs_imported == 0
    doc = project.find_document("package.json")
    assert doc is not None and doc.format == "code" and doc.n_chunks == 1


def test_reimport_unchanged_is_a_no_op_and_changed_flags_stale(project: Store, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    guide = _write(folder, "guide.md", "# Guide\n\nFirst version of the guide text.\n")
    data = _write(folder, "rows.jsonl", json.dumps({"instruction": "Q?", "output": "A."}) + "\n")
    import_paths(project, [folder])
    doc = project.find_document("docs/guide.md")
    assert doc is not None
    chunk = project.list_chunks(doc.id)[0]
    grounded = project.add_pairs([_pair(chunk.id)])[0]

    again = import_paths(project, [folder])
    assert sorted(again.unchanged) == ["docs/guide.md", "docs/rows.jsonl"] and not again.imported
    assert project.count_pairs(PairFilter(kind="imported")) == 1

    guide.write_text("# Guide\n\nSecond version, rewritten.\n", encoding="utf-8")
    data.write_text(json.dumps({"instruction": "Q2?", "output": "A2."}) + "\n", encoding="utf-8")
    changed = import_paths(project, [folder])
    assert sorted(changed.replaced) == ["docs/guide.md", "docs/rows.jsonl"]
    assert changed.stale_pairs == 2
    assert project.get_pair(grounded.id or 0).stale
    assert [c.text for c in project.list_chunks(doc.id)] == ["# Guide\n\nSecond version, rewritten."]
    imported = list(project.iter_pairs(PairFilter(kind="imported")))
    assert [(p.instruction, p.stale) for p in imported] == [("Q?", True), ("Q2?", False)]


def _pair(chunk_id: int | None):
    from engine.models import Pair

    return Pair.simple("What does the guide say?", "It says the first version.", sources=[chunk_id or 0])


def test_ignore_patterns_and_project_folder_are_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "work"
    _write(folder, "keep.md", "# Keep\n\ntext\n")
    _write(folder, "node_modules/lib/index.js", "module.exports = 1;\n")
    _write(folder, ".git/config", "[core]\n")
    store = Store.init(folder / "project")
    try:
        report = import_paths(store, [folder])
        assert report.imported == ["work/keep.md"]
        reasons = " ".join(p.reason for p in report.skipped)
        assert "node_modules" in reasons and ".git" in reasons and "project folder" in reasons
    finally:
        store.close()


# ---------------------------------------------------------------- bad inputs


def test_binary_files_are_skipped(project: Store, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _write(folder, "image.png", b"\x89PNG\r\n\x1a\n\x00\x00")
    _write(folder, "blob.dat", b"abc\x00\x01\x02def" * 10)
    _write(folder, "ok.txt", "fine text\n")
    report = import_paths(project, [folder])
    assert report.imported == ["in/ok.txt"]
    reasons = {p.path: p.reason for p in report.skipped}
    assert "binary" in reasons["in/image.png"] and "NUL" in reasons["in/blob.dat"]
    assert any("binary" in m for m in _log_messages(project, "skipped"))


def test_invalid_utf8_is_replaced_and_warned(project: Store, tmp_path: Path) -> None:
    path = _write(tmp_path, "latin.txt", "caf\xe9 au lait\n".encode("latin-1"))
    report = import_paths(project, [path])
    assert report.imported == ["latin.txt"]
    assert any("latin.txt" in w and "UTF-8" in w for w in report.warnings)
    assert project.list_chunks()[0].text == "caf\ufffd au lait"
    assert _log_messages(project, "warning")


def test_empty_file_is_skipped_with_a_reason(project: Store, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _write(folder, "empty.md", "")
    _write(folder, "blank.md", "\x1b[0m\x07\n")
    _write(folder, "real.md", "# Real\n")
    report = import_paths(project, [folder])
    assert report.imported == ["in/real.md"]
    reasons = {p.path: p.reason for p in report.skipped}
    assert reasons["in/empty.md"] == "in/empty.md is empty."
    assert "no text" in reasons["in/blank.md"]
    assert project.find_document("in/blank.md") is None  # rolled back, not half-written


def test_control_characters_and_ansi_are_stripped(project: Store, tmp_path: Path) -> None:
    path = _write(tmp_path, "term.md", "# \x1b[31mRed\x1b[0m title\n\nBell\x07 and \x1b]0;owned\x07osc and\r\nCRLF \x9b2J done\n")
    import_paths(project, [path])
    text = "\n".join(c.text for c in project.list_chunks())
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text and "\x9b" not in text
    assert "# Red title" in text and "owned" not in text
    assert project.find_document("term.md").title == "Red title"


def test_encrypted_and_corrupt_pdfs_fail_with_one_sentence(project: Store, tmp_path: Path, sample_docs: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    folder = tmp_path / "in"
    folder.mkdir()
    writer = PdfWriter()
    for page in PdfReader(sample_docs / "release-notes.pdf").pages:
        writer.add_page(page)
    writer.encrypt(user_password="secret", owner_password="owner")
    with (folder / "locked.pdf").open("wb") as handle:
        writer.write(handle)
    _write(folder, "broken.pdf", b"%PDF-1.4\nthis is not really a pdf\n%%EOF\n")
    _write(folder, "fine.md", "# Fine\n")
    report = import_paths(project, [folder])
    assert report.imported == ["in/fine.md"]
    reasons = {p.path: p.reason for p in report.failed}
    assert "encrypted PDF" in reasons["in/locked.pdf"] and "password" in reasons["in/locked.pdf"]
    assert all("\n" not in r and r.endswith(".") for r in reasons.values())
    assert "not a readable PDF" in reasons["in/broken.pdf"]
    assert len(_log_messages(project, "failed")) == 2


def test_malformed_jsonl_line_is_reported_and_rest_imported(project: Store, tmp_path: Path) -> None:
    rows = [json.dumps({"instruction": f"Q{i}?", "output": f"A{i}."}) for i in range(4)]
    rows.insert(2, '{"instruction": "broken", ')
    path = _write(tmp_path, "rows.jsonl", "\n".join(rows) + "\n")
    report = import_paths(project, [path])
    assert report.pairs_imported == 4
    assert any(w.startswith("rows.jsonl:3:") for w in report.warnings)
    assert any("rows.jsonl:3" in m for m in _log_messages(project, "warning"))
    assert sorted(p.origin.source_line for p in project.iter_pairs()) == [1, 2, 4, 5]


def test_unknown_dataset_format_fails_clearly(project: Store, tmp_path: Path) -> None:
    path = _write(tmp_path, "odd.jsonl", json.dumps({"question": "Q?", "answer": "A."}) + "\n")
    report = import_paths(project, [path])
    assert report.should_fail
    reason = report.failed[0].reason
    assert "unknown format" in reason and "question" in reason and "Alpaca" in reason


def test_symlink_loop_is_skipped(project: Store, tmp_path: Path) -> None:
    folder = tmp_path / "loop"
    _write(folder, "a.md", "# A\n")
    (folder / "back").symlink_to(folder, target_is_directory=True)
    (folder / "self").symlink_to(folder / "self")
    report = import_paths(project, [folder])
    assert report.imported == ["loop/a.md"]
    loops = [p for p in report.skipped if "symlink loop" in p.reason]
    assert len(loops) == 2


def test_missing_path_fails_but_the_rest_imports(project: Store, tmp_path: Path) -> None:
    real = _write(tmp_path, "real.md", "# Real\n")
    report = import_paths(project, [tmp_path / "nope", real])
    assert report.imported == ["real.md"] and not report.should_fail
    assert "does not exist" in report.failed[0].reason
    only_missing = import_paths(project, [tmp_path / "nope"])
    assert only_missing.should_fail


def test_read_only_project_raises_one_sentence(tmp_path: Path) -> None:
    """Uses a read-only SQLite connection when running as root, where chmod blocks nothing."""
    doc = _write(tmp_path, "doc.md", "# Doc\n")
    root = tmp_path / "project"
    Store.init(root).close()
    if os.geteuid() == 0:
        conn = sqlite3.connect(f"file:{root / DB_FILE}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        store = Store.open(root)
        store.db.conn.close()
        store.db.conn = conn
    else:
        (root / DB_FILE).chmod(0o444)
        root.chmod(0o555)
        store = Store.open(root)
    try:
        with pytest.raises(ProjectReadOnlyError) as caught:
            import_paths(store, [doc])
        assert "cannot be written" in str(caught.value)
    finally:
        store.close()
        root.chmod(0o755)


def test_big_file_is_streamed_in_bounded_memory(project: Store, tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    paragraph = ("The broker leases each job to one worker and renews the lease while it runs. " * 12 + "\n\n").encode()
    target = 32 * 1024 * 1024
    with path.open("wb") as handle:
        block = paragraph * (1024 * 1024 // len(paragraph) + 1)
        written = 0
        while written < target:
            handle.write(block)
            written += len(block)
    tracemalloc.start()
    try:
        report = import_paths(project, [path])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.imported == ["big.txt"] and report.chunks > 20_000
    # A 32 MB file read whole would need well over 64 MB as Python text.
    assert peak < 24 * 1024 * 1024, f"peak traced memory {peak / 1e6:.1f} MB"
