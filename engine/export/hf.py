"""Hugging Face ``datasets`` output: Parquet files per split, written in batches, then a
``DatasetDict`` saved with ``save_to_disk``. pyarrow and datasets are imported only here,
inside functions, so the rest of the engine starts fast."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import Any

from engine.export.rows import Conversation
from engine.models import Pair

HF_COLUMNS = ("id", "messages", "kind", "mode", "sources", "status", "warnings", "score")
_BATCH_ROWS = 5000


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


class HfDatasetWriter:
    """Streams rows into ``parquet/<split>.parquet`` and finishes with ``save_to_disk`` into ``dataset/``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.parquet_dir = folder / "parquet"
        self.dataset_dir = folder / "dataset"
        self.parquet_dir.mkdir(parents=True, exist_ok=True)
        self._schema = _schema()
        self._writers: dict[str, Any] = {}
        self._columns: dict[str, dict[str, list[Any]]] = {}
        self.rows: dict[str, int] = {}

    def add(self, split: str, pair: Pair, conv: Conversation) -> None:
        """Queue one pair's row; a full batch is written out at once."""
        columns = self._columns.get(split)
        if columns is None:
            columns = self._columns[split] = {name: [] for name in HF_COLUMNS}
        columns["id"].append(pair.id)
        columns["messages"].append([{"role": role, "content": content} for role, content in conv.chat()])
        columns["kind"].append(pair.kind.value)
        columns["mode"].append(pair.mode)
        columns["sources"].append(list(pair.sources))
        columns["status"].append(pair.status.value)
        columns["warnings"].append([w.check for w in pair.warnings])
        columns["score"].append(pair.score)
        self.rows[split] = self.rows.get(split, 0) + 1
        if len(columns["id"]) >= _BATCH_ROWS:
            self._flush(split)

    def _flush(self, split: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = self._columns.get(split)
        if not columns or not columns["id"]:
            return
        table = pa.Table.from_pydict(columns, schema=self._schema)
        writer = self._writers.get(split)
        if writer is None:
            writer = self._writers[split] = pq.ParquetWriter(self.parquet_path(split), self._schema)
        writer.write_table(table)
        self._columns[split] = {name: [] for name in HF_COLUMNS}

    def parquet_path(self, split: str) -> Path:
        """Where the Parquet file of ``split`` is written."""
        return self.parquet_dir / f"{split}.parquet"

    def finish(self) -> dict[str, int]:
        """Close the Parquet files and save the ``DatasetDict``; returns rows per split."""
        import pyarrow.parquet as pq
        from datasets import Dataset, DatasetDict, NamedSplit

        for split in list(self._columns):
            self._flush(split)
        for writer in self._writers.values():
            writer.close()
        splits: dict[str, Any] = {}
        for split in self._writers:
            # Memory-mapped read: the table is backed by the file just written, not a second copy.
            table = pq.read_table(self.parquet_path(split), memory_map=True)
            splits[split] = Dataset(table, split=NamedSplit(split))
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
        """Close any open Parquet writer (the staging folder is then deleted)."""
        for writer in self._writers.values():
            # Closing after a failed write may raise again; the staging folder is deleted anyway.
            with suppress(Exception):
                writer.close()
