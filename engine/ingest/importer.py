"""Importing files into a project: one transaction per document, every decision logged.

A file whose content hash matches the stored document is left alone. A changed file
replaces its document's chunks; the store flags pairs grounded on the old chunks (and
rows imported from an old version of a dataset file) as stale, and the new rows are
added. Chunks are generated lazily inside the document's transaction, so a big file is
streamed into the database and a crash leaves either the whole document or none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from engine.errors import IngestError, PairForgeError, ProjectBusyError, ProjectReadOnlyError
from engine.ingest.boilerplate import SharedLines, find_shared_keys
from engine.ingest.chunker import chunk_text
from engine.ingest.datasets import NotADatasetError, load_dataset_file
from engine.ingest.formats import detect_format
from engine.ingest.loaders import load_document
from engine.ingest.loaders.base import INVALID_UTF8_WARNING
from engine.ingest.loaders.html import html_line_keys
from engine.ingest.reading import FileFacts, clean_text, file_facts
from engine.ingest.report import BoilerplateDropped, FileProblem, ImportProgress, ImportReport
from engine.ingest.walker import FoundFile, SkippedPath, discover
from engine.models import Chunk, Document, Pair
from engine.store import PairChange, Store

ProgressCallback = Callable[[ImportProgress], None]

# Dataset files are parsed whole; beyond this size they would need a streaming parser.
MAX_DATASET_BYTES = 256 * 1024 * 1024
_LOG_DETAIL_LIMIT = 200
_BOILERPLATE_SAMPLES = 20


class _NoTextError(Exception):
    """Raised inside a document's transaction when cleaning left no text, to roll it back."""


def _require_text(chunks: Iterable[Chunk]) -> Iterator[Chunk]:
    produced = 0
    for chunk in chunks:
        produced += 1
        yield chunk
    if not produced:
        raise _NoTextError


def import_paths(
    store: Store,
    paths: Sequence[str | Path],
    *,
    on_progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import files and folders into ``store``; returns what was imported, skipped and why.

    Per-file problems never stop the import: they land in the report and the pipeline
    log. Raises ProjectReadOnlyError or ProjectBusyError when the project itself cannot
    be written, since then no file can be.
    """
    report = ImportReport()
    items = list(
        discover(paths, ignore=store.settings.imports.ignore, project_root=store.root)
    )
    files = [item for item in items if isinstance(item, FoundFile)]
    shared_html, earlier_html = _shared_html_lines(store, files)
    total_bytes = sum(f.size for f in files)
    done_bytes = 0
    done_files = 0
    collected: list[PairChange] = []
    unsubscribe = store.subscribe(collected.extend)
    try:
        for item in items:
            if isinstance(item, SkippedPath):
                problem = FileProblem(item.path, item.reason)
                (report.failed if item.failed else report.skipped).append(problem)
                continue
            if on_progress:
                on_progress(ImportProgress(done_files, len(files), done_bytes, total_bytes, item.key))
            _import_file(store, item, report, shared_html)
            done_files += 1
            done_bytes += item.size
        for found in _pages_to_rechunk(earlier_html, shared_html):
            _import_file(store, found, report, shared_html, rechunk=True)
        if on_progress:
            on_progress(ImportProgress(done_files, len(files), done_bytes, total_bytes, ""))
    finally:
        unsubscribe()
    report.bytes_read = done_bytes
    report.new_pair_ids = [c.pair_id for c in collected if c.before is None and c.after is not None]
    _log_report(store, report)
    return report


def _html_keys(path: Path) -> set[str] | None:
    """The line keys of one HTML page, or None when it cannot be read."""
    try:
        _, keyed = html_line_keys(path.read_bytes().decode("utf-8-sig", errors="replace"))
    except (OSError, MemoryError):
        return None
    return {key for _, _, keys in keyed for key in keys}


def _shared_html_lines(
    store: Store, files: Sequence[FoundFile]
) -> tuple[SharedLines, list[tuple[Document, Path]]]:
    """Lines repeated across many of the project's HTML pages (navigation, footers), and the earlier pages.

    The pages being imported and the HTML documents already in the project whose files
    are still on disk all count, so a page imported on its own is judged with the rest.
    The second value lists those earlier documents with their files.
    """
    limit = store.settings.imports.max_file_mb * 1024 * 1024
    paths = {f.path.resolve() for f in files if f.size <= limit and detect_format(f.path) == "html"}
    earlier: list[tuple[Document, Path]] = []
    for document in store.list_documents():
        source = document.meta.get("source_path")
        if document.format == "html" and isinstance(source, str):
            path = Path(source).resolve()
            if path not in paths and path.is_file() and path.stat().st_size <= limit:
                paths.add(path)
                earlier.append((document, path))
    keysets = [keys for path in sorted(paths) if (keys := _html_keys(path)) is not None]
    return (find_shared_keys(keysets, len(keysets)) if keysets else SharedLines()), earlier


def _pages_to_rechunk(earlier: Sequence[tuple[Document, Path]], shared: SharedLines) -> Iterator[FoundFile]:
    """Earlier HTML pages whose boilerplate changes with the pages just imported.

    A page whose file changed on disk since its import is left alone: re-importing it
    is the person's call, not a side effect of importing another page.
    """
    for document, path in earlier:
        try:
            markup = path.read_bytes()
            facts = file_facts(path)
        except OSError:
            continue
        if facts.sha256 != document.sha256:
            continue
        _, keyed = html_line_keys(markup.decode("utf-8-sig", errors="replace"))
        dropped = sum(1 for _, _, keys in keyed if shared.matches(keys))
        if dropped != document.meta.get("boilerplate_lines", 0):
            yield FoundFile(path, document.path, facts.size)


def _import_file(
    store: Store, found: FoundFile, report: ImportReport, shared_html: SharedLines, *, rechunk: bool = False
) -> None:
    try:
        _import_file_or_raise(store, found, report, shared_html, rechunk=rechunk)
    except (ProjectReadOnlyError, ProjectBusyError):
        raise
    except _NoTextError:
        report.skipped.append(
            FileProblem(found.key, f"{found.key} has no text left after removing control characters.")
        )
    except PairForgeError as exc:
        report.failed.append(FileProblem(found.key, str(exc)))
    except OSError as exc:
        report.failed.append(
            FileProblem(found.key, f"{found.key} cannot be read ({exc.strerror or exc}): check its permissions.")
        )
    except MemoryError:
        report.failed.append(
            FileProblem(found.key, f"{found.key} is too large to import here: split it into smaller files.")
        )


def _document_key(store: Store, found: FoundFile) -> str:
    """The stored path; the absolute path when the relative one belongs to another file."""
    existing = store.find_document(found.key)
    source = str(found.path)
    if existing is not None and existing.meta.get("source_path", source) != source:
        return source
    return found.key


def _import_file_or_raise(
    store: Store, found: FoundFile, report: ImportReport, shared_html: SharedLines, *, rechunk: bool = False
) -> None:
    """Import one file; ``rechunk`` re-chunks an unchanged document (its boilerplate changed)."""
    path = found.path
    limits = store.settings.imports
    if found.size == 0:
        report.skipped.append(FileProblem(found.key, f"{found.key} is empty."))
        return
    if found.size > limits.max_file_mb * 1024 * 1024:
        report.skipped.append(FileProblem(
            found.key,
            f"{found.key} is larger than {limits.max_file_mb} MB: raise imports.max_file_mb in "
            "pairforge.toml or split the file.",
        ))
        return
    fmt = detect_format(path)
    if fmt == "binary":
        report.skipped.append(FileProblem(found.key, f"{found.key} is a binary file ({path.suffix})."))
        return
    facts = file_facts(path)
    if facts.looks_binary and fmt != "pdf":
        report.skipped.append(FileProblem(found.key, f"{found.key} is a binary file (it contains NUL bytes)."))
        return
    key = _document_key(store, found)
    existing = store.find_document(key)
    if existing is not None and existing.sha256 == facts.sha256 and not rechunk:
        report.unchanged.append(key)
        return

    pairs: list[Pair] = []
    warnings: list[str] = []
    meta: dict[str, object] = {"source_path": str(path)}
    if fmt == "dataset":
        dataset = _load_dataset(path, key, facts)
        if dataset is None:
            fmt = "code"
        else:
            source_format, pairs, rows, warnings = dataset
            meta.update({"dataset_format": source_format, "rows": rows, "pairs": len(pairs)})
            if not facts.valid_utf8:
                warnings.insert(0, f"{key} {INVALID_UTF8_WARNING}.")
    chunks: Iterable[Chunk] = ()
    title = None
    dropped: BoilerplateDropped | None = None
    if fmt != "dataset":
        loaded = load_document(path, fmt, facts)
        if shared_html:
            loaded.skip_shared(shared_html)
        warnings = loaded.warnings
        meta.update(loaded.meta)
        title = loaded.title
        if loaded.skip_lines:
            dropped = BoilerplateDropped(key, len(loaded.skip_lines), loaded.boilerplate[:_BOILERPLATE_SAMPLES])
            meta["boilerplate_lines"] = dropped.lines
            meta["boilerplate"] = dropped.texts
        chunks = _require_text(chunk_text(
            loaded.segments, style=loaded.style, settings=store.settings.chunking,
            skip_lines=loaded.skip_lines, headings=loaded.headings,
        ))
    if warnings:
        meta["warnings"] = warnings[:50]
    document = Document(
        path=key, format=fmt, sha256=facts.sha256, size=facts.size,
        title=(title or path.name)[:300], meta=meta,
    )
    saved, stale = store.save_document(document, chunks, pairs=pairs)
    if rechunk:
        report.rechunked.append(key)
    else:
        (report.replaced if existing is not None else report.imported).append(key)
    report.chunks += saved.n_chunks
    report.pairs_imported += len(pairs)
    report.stale_pairs += stale
    report.warnings.extend(warnings)
    if dropped is not None:
        report.boilerplate.append(dropped)


def _load_dataset(path: Path, key: str, facts: FileFacts) -> tuple[str, list[Pair], int, list[str]] | None:
    """A dataset file's pairs, or None when the JSON is not a dataset (import it as code)."""
    if facts.size > MAX_DATASET_BYTES:
        raise IngestError(
            f"{key} is a dataset over {MAX_DATASET_BYTES // (1024 * 1024)} MB: split it into smaller files."
        )
    text = clean_text(path.read_bytes().decode("utf-8-sig", errors="replace"))
    try:
        dataset = load_dataset_file(path, source_file=key, text=text)
    except NotADatasetError:
        return None
    return dataset.source_format, dataset.pairs, dataset.rows, dataset.warnings


def _capped(values: Sequence[str]) -> list[str]:
    return list(values[:_LOG_DETAIL_LIMIT])


def _log_report(store: Store, report: ImportReport) -> None:
    """Record every decision of the import in the pipeline log."""
    if report.imported:
        store.log(
            "import", "imported", len(report.imported),
            f"imported {len(report.imported)} file(s): {report.chunks} chunk(s), "
            f"{report.pairs_imported} dataset row(s)",
            {"paths": _capped(report.imported)},
        )
    if report.replaced:
        store.log(
            "import", "replaced", len(report.replaced),
            f"re-imported {len(report.replaced)} changed file(s); {report.stale_pairs} pair(s) flagged stale",
            {"paths": _capped(report.replaced), "stale_pairs": report.stale_pairs},
        )
    if report.rechunked:
        store.log(
            "import", "rechunked", len(report.rechunked),
            f"re-chunked {len(report.rechunked)} earlier HTML page(s): the lines the project's pages share changed",
            {"paths": _capped(report.rechunked)},
        )
    if report.unchanged:
        store.log(
            "import", "unchanged", len(report.unchanged),
            f"skipped {len(report.unchanged)} unchanged file(s) (same content hash)",
            {"paths": _capped(report.unchanged)},
        )
    for problem in report.skipped:
        store.log("import", "skipped", 1, problem.reason, {"path": problem.path})
    for problem in report.failed:
        store.log("import", "failed", 1, problem.reason, {"path": problem.path})
    for dropped in report.boilerplate:
        shown = "; ".join(f"'{text[:80]}'" for text in dropped.texts[:5])
        store.log(
            "import", "boilerplate", dropped.lines,
            f"left {dropped.lines} boilerplate line(s) out of the chunks of {dropped.path}: {shown}",
            {"path": dropped.path, "lines": dropped.texts},
        )
    for warning in report.warnings[:_LOG_DETAIL_LIMIT]:
        store.log("import", "warning", 1, warning)
    if len(report.warnings) > _LOG_DETAIL_LIMIT:
        extra = len(report.warnings) - _LOG_DETAIL_LIMIT
        store.log("import", "warning", extra, f"{extra} more warning(s) not listed")
