"""``export_dataset``: stream the chosen pairs once from the store into every format at once."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from engine.errors import ExportError
from engine.export.atomic import StagingFolder, describe_os_error, write_text_atomic
from engine.export.card import render_card
from engine.export.hf import HfDatasetWriter
from engine.export.options import (
    ALL_FORMATS,
    JSONL_FORMATS,
    SPLITS,
    ExportedFile,
    ExportOptions,
    ExportProgress,
    ExportResult,
)
from engine.export.recipes import (
    DEFAULT_BASE_MODEL,
    TRL_SCRIPT,
    UNSLOTH_SCRIPT,
    RecipeInputs,
    recipe_max_length,
    trl_script,
    unsloth_script,
)
from engine.export.rows import LINE_BUILDERS, Conversation, PairRecord
from engine.export.stats import ExportStats
from engine.export.trainers import (
    AXOLOTL_FILE,
    LLAMA_FACTORY_FILE,
    axolotl_snippet,
    dataset_slug,
    llama_factory_info,
)
from engine.export.trial import TrialDraw
from engine.models import PairStatus
from engine.store import PairFilter, Store

ProgressCallback = Callable[[ExportProgress], None]
CARD_FILE = "README.md"
_PROGRESS_EVERY = 1000
_UNANSWERED = "no user turn answered by an assistant turn"


def check_target(store: Store, out_dir: Path, force: bool) -> None:
    """Raise ExportError when ``out_dir`` cannot take an export (the project, a file, or full without force)."""
    if out_dir == store.root or out_dir in store.root.parents:
        raise ExportError(
            f"Cannot export into {out_dir}: it holds the project itself; choose a folder for the export alone."
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} is a file, not a folder: choose a folder path for the export.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ExportError(
            f"{out_dir} already exists and is not empty: pass --force to replace it, or choose another folder."
        )


def ensure_split(store: Store, notes: list[str]) -> None:
    """Compute a split with the project's split settings when none is stored."""
    from engine.quality import make_split

    stored = store.pair_counts("split")
    if any(name in stored for name in SPLITS):
        return
    make_split(store)
    notes.append("No split was stored, so one was computed for this export with the project's split settings.")


def _decoder() -> Callable[[str], Any]:
    """``json.loads`` that decodes each distinct text once: a project's origins repeat, and most
    pairs share the same empty ``[]`` for sources and warnings."""
    cache: dict[str, Any] = {}
    loads = json.loads

    def decode(text: str) -> Any:
        value = cache.get(text)
        if value is None:
            value = loads(text)
            if len(cache) < 10_000:
                cache[text] = value
        return value

    return decode


def _selected_pairs(
    store: Store, options: ExportOptions, only: frozenset[int] | None = None
) -> tuple[Iterator[PairRecord], int]:
    """The pairs of the chosen statuses, kinds and modes (and, with ``only``, of those ids),
    streamed in batches, and how many."""
    kinds = {k.value for k in options.kinds}
    modes = set(options.modes)
    # A single kind or mode filters in SQL; several are filtered as the rows stream by.
    kind = next(iter(kinds)) if len(kinds) == 1 else None
    mode = next(iter(modes)) if len(modes) == 1 else None
    filters = [PairFilter(status=s.value, kind=kind, mode=mode) for s in options.statuses]
    total = len(only) if only is not None else sum(store.count_pairs(f) for f in filters)
    # Decoded values shared between rows are only ever read, never changed.
    shared = _decoder()
    loads = json.loads

    def stream() -> Iterator[PairRecord]:
        for flt in filters:
            for row in store.iter_pair_rows(flt):
                if only is not None and row["id"] not in only:
                    continue
                if kinds and row["kind"] not in kinds:
                    continue
                if modes and row["mode"] not in modes:
                    continue
                yield PairRecord(
                    id=row["id"], kind=row["kind"], mode=row["mode"], status=row["status"],
                    sources=shared(row["sources"]), origin=shared(row["origin"]),
                    warnings=shared(row["warnings"]), score=row["score"], split=row["split"],
                    messages=loads(row["messages"]), context=row["context"],
                )

    return stream(), total


def _chunk_documents(store: Store) -> dict[int, str]:
    names = {d.id: d.path for d in store.list_documents() if d.id is not None}
    return {
        c.id: names.get(c.document_id or 0, f"document {c.document_id}")
        for c in store.list_chunks(include_retired=True)
        if c.id is not None
    }


def _token_counter(store: Store) -> Any:
    from engine.quality.tokens import TokenCounter

    return TokenCounter.from_settings(store.settings)


# The project-wide report re-reads every pair; past this size the card keeps only the export's own figures.
_QUALITY_REPORT_MAX_PAIRS = 20_000


def _quality_report(store: Store, notes: list[str]) -> Any:
    if store.count_pairs() > _QUALITY_REPORT_MAX_PAIRS:
        notes.append(
            "The project-wide quality report is left out of the card for projects over "
            f"{_QUALITY_REPORT_MAX_PAIRS} pairs; run `pairforge check` to see it."
        )
        return None
    from engine.quality import LiveReport

    try:
        return LiveReport.build(store).snapshot(contradictions=False)
    except Exception as exc:  # the card is still useful without the project-wide report
        notes.append(f"The project quality report could not be built ({type(exc).__name__}); its table is left out.")
        return None


class _JsonlFiles:
    """One JSONL file per (format, split), opened on its first row; lines are gathered and written
    in large blocks."""

    _BLOCK_LINES = 2000

    def __init__(self, root: Path, formats: Sequence[str]) -> None:
        self.root = root
        self.formats = list(formats)
        self._builders = [(fmt, LINE_BUILDERS[fmt]) for fmt in formats]
        self._handles: dict[tuple[str, str], IO[str]] = {}
        self._lines: dict[tuple[str, str], list[str]] = {}
        self.rows: Counter[tuple[str, str]] = Counter()

    def write(self, conv: Conversation, split: str) -> None:
        for fmt, build in self._builders:
            key = (fmt, split)
            lines = self._lines.get(key)
            if lines is None:
                lines = self._lines[key] = []
            lines.append(build(conv))
            if len(lines) >= self._BLOCK_LINES:
                self._flush(key)

    def _flush(self, key: tuple[str, str]) -> None:
        lines = self._lines.get(key)
        if not lines:
            return
        handle = self._handles.get(key)
        if handle is None:
            fmt, split = key
            folder = self.root / fmt
            folder.mkdir(exist_ok=True)
            handle = self._handles[key] = open(  # noqa: SIM115 - closed in close()
                folder / f"{split}.jsonl", "w", encoding="utf-8", buffering=1 << 20
            )
        lines.append("")
        handle.write("\n".join(lines))
        self.rows[key] += len(lines) - 1
        self._lines[key] = []

    def finish(self) -> None:
        """Write the lines still gathered and close every file."""
        try:
            for key in list(self._lines):
                self._flush(key)
        finally:
            self.close()

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()


def export_dataset(
    store: Store,
    out_dir: str | Path,
    options: ExportOptions | None = None,
    *,
    on_progress: ProgressCallback | None = None,
    trial: TrialDraw | None = None,
) -> ExportResult:
    """Export the chosen pairs of ``store`` into ``out_dir``: one JSONL file per format and split,
    the Hugging Face dataset, the dataset card, the trainer configs and training scripts.

    With ``trial`` (from ``draw_trial_set``) only the drawn pairs go out, and the card says so.

    Everything is written beside ``out_dir`` first and swapped in at the end, so a failure or a
    kill leaves the previous export whole. Returns what was written and what was left out, and
    why; raises ExportError (one sentence naming the problem and the fix) on expected failures.
    """
    started = time.perf_counter()
    options = options or ExportOptions()
    out_dir = Path(out_dir).expanduser().resolve()
    check_target(store, out_dir, options.force)
    result = ExportResult(out_dir=out_dir, trial=trial)
    if trial is not None:
        result.notes.extend(trial.notes)
    ensure_split(store, result.notes)
    pairs, total = _selected_pairs(store, options, trial.pair_ids if trial is not None else None)
    if on_progress:
        on_progress(ExportProgress(0, total, "writing"))

    excluded = {s.value for s in options.exclude_severities}
    stats = ExportStats(chunk_documents=_chunk_documents(store), token_counter=_token_counter(store))
    jsonl_formats = [f for f in options.formats if f in JSONL_FORMATS]
    unsplit = 0
    seen = 0
    try:
        with StagingFolder(out_dir) as staging:
            files = _JsonlFiles(staging.path, jsonl_formats)
            hf = HfDatasetWriter(staging.path / "hf") if "hf" in options.formats else None
            try:
                for pair in pairs:
                    seen += 1
                    if on_progress and seen % _PROGRESS_EVERY == 0:
                        on_progress(ExportProgress(seen, total, "writing"))
                    if excluded and pair.warnings:
                        severities = sorted({w.get("severity", "warning") for w in pair.warnings} & excluded)
                        if severities:
                            reason = f"has a warning of severity {severities[-1]}"
                            result.skipped[reason] = result.skipped.get(reason, 0) + 1
                            continue
                    conv = Conversation.from_turns(
                        ((m["role"], m["content"]) for m in pair.messages), pair.context, options.system_prompt
                    )
                    if conv is None:
                        result.skipped[_UNANSWERED] = result.skipped.get(_UNANSWERED, 0) + 1
                        continue
                    split = pair.split if pair.split in SPLITS else "train"
                    unsplit += pair.split not in SPLITS
                    files.write(conv, split)
                    if hf is not None:
                        hf.add(split, pair, conv)
                    stats.add(pair, conv, split)
                files.finish()
            except BaseException:
                files.close()
                if hf is not None:
                    hf.abort()
                raise
            if stats.total == 0:
                if hf is not None:
                    hf.abort()
                raise ExportError(_nothing_to_export(store, options, result.skipped))
            if on_progress:
                on_progress(ExportProgress(seen, total, "saving the Hugging Face dataset" if hf else "finishing"))
            for fmt in jsonl_formats:
                for split in SPLITS:
                    if files.rows[(fmt, split)]:
                        result.files.append(ExportedFile(fmt, split, Path(fmt) / f"{split}.jsonl",
                                                         files.rows[(fmt, split)]))
            if hf is not None:
                for split, rows in sorted(hf.finish().items(), key=lambda kv: SPLITS.index(kv[0])):
                    result.files.append(ExportedFile("hf", split, Path("hf/parquet") / f"{split}.parquet", rows))
                result.hf_dataset_dir = out_dir / "hf" / "dataset"
            if unsplit:
                result.notes.append(
                    f"{unsplit} pair(s) had no stored split (added after the last split) and went to train; "
                    "run `pairforge split` to place them."
                )
            result.exported = stats.total
            result.split_sizes = dict(sorted(stats.splits.items()))
            _add_left_out(store, options, result.skipped)
            if trial is not None and trial.eligible > trial.drawn:
                result.skipped["not drawn into the trial subset"] = trial.eligible - trial.drawn
            slug = dataset_slug(store.settings.name)
            info = llama_factory_info(result.files, slug, has_system=options.system_prompt is not None)
            write_text_atomic(staging.path / LLAMA_FACTORY_FILE, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
            write_text_atomic(staging.path / AXOLOTL_FILE, axolotl_snippet(result.files, out_dir))
            recipes = _recipe_inputs(store, options, stats, result.files, trial is not None)
            if recipes.source_format is not None:
                write_text_atomic(staging.path / TRL_SCRIPT, trl_script(recipes))
                write_text_atomic(staging.path / UNSLOTH_SCRIPT, unsloth_script(recipes))
                result.recipes = [out_dir / TRL_SCRIPT, out_dir / UNSLOTH_SCRIPT]
                result.recipe_max_length = recipes.max_length
            else:
                result.notes.append(
                    "No training scripts were written: they read conversations, and this export has no messages, "
                    "hf or sharegpt files; add --format messages for them."
                )
            card = render_card(store, options, stats, result.files, notes=result.notes, skipped=result.skipped,
                               quality_report=_quality_report(store, result.notes), trial=trial,
                               recipes=recipes if result.recipes else None)
            write_text_atomic(staging.path / CARD_FILE, card)
            staging.commit()
    except OSError as exc:
        raise ExportError(describe_os_error(exc, out_dir)) from exc
    result.card_path = out_dir / CARD_FILE
    result.trainer_configs = [out_dir / LLAMA_FACTORY_FILE, out_dir / AXOLOTL_FILE]
    result.files = [ExportedFile(f.format, f.split, out_dir / f.path, f.rows) for f in result.files]
    result.seconds = time.perf_counter() - started
    what = f"a trial subset of {result.exported} pair(s)" if trial is not None else f"{result.exported} pair(s)"
    detail: dict[str, Any] = {"out_dir": str(out_dir), "formats": options.formats, "split_sizes": result.split_sizes,
                              "skipped": result.skipped, "system_prompt": options.system_prompt}
    if trial is not None:
        detail["trial"] = trial.to_json()
    store.log("export", "trial" if trial is not None else "exported", result.exported,
              f"exported {what} as {', '.join(options.formats)} to {out_dir}", detail)
    if on_progress:
        on_progress(ExportProgress(total, total, "done"))
    return result


def _recipe_inputs(store: Store, options: ExportOptions, stats: ExportStats, files: list[ExportedFile],
                   trial: bool) -> RecipeInputs:
    """What the training scripts need: the files, the base model and max_length from the p95 tokens."""
    summary = stats.token_summary()
    counter = stats.token_counter
    counted = getattr(counter, "name", "tokenizer") if summary else "nothing (no token counts)"
    return RecipeInputs(
        name=store.settings.name,
        base_model=options.base_model or store.settings.export.base_model or DEFAULT_BASE_MODEL,
        files=[f for f in files if f.format in ALL_FORMATS],
        max_length=recipe_max_length(summary.get("p95"), store.settings.quality.max_seq_length),
        p95_tokens=summary.get("p95"),
        max_tokens=summary.get("max"),
        tokens_counted_with=str(counted),
        trial=trial,
    )


def _add_left_out(store: Store, options: ExportOptions, skipped: dict[str, int]) -> None:
    """Count the pairs left out by review status, so the summary says why they are missing."""
    if not options.include_pending:
        pending = store.count_pairs(PairFilter(status=PairStatus.PENDING.value))
        if pending:
            skipped["pending review (include them with --include-pending)"] = pending
    rejected = store.count_pairs(PairFilter(status=PairStatus.REJECTED.value))
    if rejected:
        skipped["rejected in review"] = rejected


def _nothing_to_export(store: Store, options: ExportOptions, skipped: dict[str, int]) -> str:
    if skipped:
        reasons = "; ".join(f"{n} {why}" for why, n in skipped.items())
        return f"No pair is left to export ({reasons}): fix those pairs or relax the filters, then export again."
    what = "accepted or pending" if options.include_pending else "accepted"
    filters = " of the chosen kinds and modes" if options.kinds or options.modes else ""
    hint = "" if options.include_pending else ", or pass --include-pending"
    return f"No {what} pairs{filters} to export: accept pairs in review{hint}, then export again."
