"""Hugging Face ``datasets`` output: Parquet files per split, written in batches, then a
``DatasetDict`` saved with ``save_to_disk``. pyarrow and datasets are imported only here,
inside functions, so the rest of the engine starts fast."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

from engine.export.rows import Conversation, PairRecord

HF_COLUMNS = ("id", "messages", "kind", "mode", "sources", "status", "warnings", "score")
_BATCH_ROWS = 20_000
_QUEUED_BATCHES = 2


def _schema() -> Any:
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    return pa.schema(
        [
            ("id", pa.int64()),
            ("messages", pa.list_(message)),
            ("kind", pa.string()),
            ("mode", pa.string()),
            ("sources", pa.list_(pa.int64())),
            ("status", pa.string()),
            ("warnings", pa.list_(pa.string())),
            ("score", pa.float64()),
        ]
    )


class _SplitColumns:
    """One split's pending rows, column by column, with list columns kept flat (values + offsets)
    so Arrow builds them without a Python object per row."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.roles: list[str] = []
        self.contents: list[str] = []
        self.message_offsets: list[int] = [0]
        self.kinds: list[str] = []
        self.modes: list[str] = []
        self.sources: list[int] = []
        self.source_offsets: list[int] = [0]
        self.statuses: list[str] = []
        self.warnings: list[str] = []
        self.warning_offsets: list[int] = [0]
        self.scores: list[float | None] = []

    def add(self, pair: PairRecord, conv: Conversation) -> None:
        self.ids.append(pair.id)
        for role, content in conv._chat:
            self.roles.append(role)
            self.contents.append(content)
        self.message_offsets.append(len(self.roles))
        self.kinds.append(pair.kind)
        self.modes.append(pair.mode)
        if pair.sources:
            self.sources.extend(pair.sources)
        self.source_offsets.append(len(self.sources))
        self.statuses.append(pair.status)
        for warning in pair.warnings:
            self.warnings.append(warning["check"])
        self.warning_offsets.append(len(self.warnings))
        self.scores.append(pair.score)

    def table(self, schema: Any) -> Any:
        import pyarrow as pa

        def listed(offsets: list[int], values: Any, field: str) -> Any:
            return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, type=schema.field(field).type)

        message_type = schema.field("messages").type.value_type
        messages = pa.StructArray.from_arrays(
            [pa.array(self.roles, pa.string()), pa.array(self.contents, pa.string())],
            fields=list(message_type),
        )
        return pa.Table.from_arrays(
            [
                pa.array(self.ids, pa.int64()),
                listed(self.message_offsets, messages, "messages"),
                pa.array(self.kinds, pa.string()),
                pa.array(self.modes, pa.string()),
                listed(self.source_offsets, pa.array(self.sources, pa.int64()), "sources"),
                pa.array(self.statuses, pa.string()),
                listed(self.warning_offsets, pa.array(self.warnings, pa.string()), "warnings"),
                pa.array(self.scores, pa.float64()),
            ],
            schema=schema,
        )


class HfDatasetWriter:
    """Streams rows into ``parquet/<split>.parquet`` and finishes with ``save_to_disk`` into ``dataset/``.

    Full batches are turned into Arrow tables and written on one worker thread, so the Parquet
    encoding (which releases the GIL) overlaps the caller's own work.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.parquet_dir = folder / "parquet"
        self.dataset_dir = folder / "dataset"
        self.parquet_dir.mkdir(parents=True, exist_ok=True)
        self._schema = _schema()
        self._writers: dict[str, Any] = {}
        self._columns: dict[str, _SplitColumns] = {}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hf-export")
        self._pending: list[Future[None]] = []
        self.rows: dict[str, int] = {}

    def add(self, split: str, pair: PairRecord, conv: Conversation) -> None:
        """Queue one pair's row; a full batch is written out on the worker thread."""
        columns = self._columns.get(split)
        if columns is None:
            columns = self._columns[split] = _SplitColumns()
        columns.add(pair, conv)
        self.rows[split] = self.rows.get(split, 0) + 1
        if len(columns.ids) >= _BATCH_ROWS:
            self._flush(split)

    def _flush(self, split: str) -> None:
        columns = self._columns.pop(split, None)
        if columns is None or not columns.ids:
            return
        # Surface a failed earlier batch (a full disk) now rather than at the end, and keep at most
        # one batch queued behind the one being written, so memory stays bounded.
        for done in [f for f in self._pending if f.done()]:
            done.result()
            self._pending.remove(done)
        while len(self._pending) >= _QUEUED_BATCHES:
            self._pending.pop(0).result()
        self._pending.append(self._worker.submit(self._write_batch, split, columns))

    def _write_batch(self, split: str, columns: _SplitColumns) -> None:
        import pyarrow.parquet as pq

        table = columns.table(self._schema)
        writer = self._writers.get(split)
        if writer is None:
            writer = self._writers[split] = pq.ParquetWriter(self.parquet_path(split), self._schema)
        writer.write_table(table)

    def parquet_path(self, split: str) -> Path:
        """Where the Parquet file of ``split`` is written."""
        return self.parquet_dir / f"{split}.parquet"

    def finish(self) -> dict[str, int]:
        """Close the Parquet files and save the ``DatasetDict``; returns rows per split."""
        import pyarrow.parquet as pq
        from datasets import Dataset, DatasetDict, NamedSplit
        from datasets.fingerprint import generate_random_fingerprint

        for split in list(self._columns):
            self._flush(split)
        self._worker.shutdown(wait=True)
        for future in self._pending:
            future.result()
        for writer in self._writers.values():
            writer.close()
        splits: dict[str, Any] = {}
        for split in self._writers:
            # Memory-mapped read: the table is backed by the file just written, not a second copy.
            table = pq.read_table(self.parquet_path(split), memory_map=True)
            # A fresh fingerprint: deriving one would hash the whole table for nothing.
            splits[split] = Dataset(table, split=NamedSplit(split), fingerprint=generate_random_fingerprint())
        from datasets.utils import (
            are_progress_bars_disabled,
            disable_progress_bars,
            enable_progress_bars,
        )

        # The engine reports its own progress; datasets' bars would write into the caller's terminal.
        was_disabled = are_progress_bars_disabled()
        disable_progress_bars()
        try:
            DatasetDict(splits).save_to_disk(str(self.dataset_dir))
        finally:
            if not was_disabled:
                enable_progress_bars()
        return dict(self.rows)

    def abort(self) -> None:
        """Stop the worker and close any open Parquet writer (the staging folder is then deleted)."""
        self._worker.shutdown(wait=True, cancel_futures=True)
        for writer in self._writers.values():
            # Closing after a failed write may raise again; the staging folder is deleted anyway.
            with suppress(Exception):
                writer.close()
