"""Export: every format trainers read, Hugging Face datasets, the dataset card and trainer configs.

``export_dataset(store, out_dir, options)`` is the one entry point the CLI and the app call.
"""

from __future__ import annotations

from engine.export.atomic import StagingFolder, recover_interrupted
from engine.export.options import (
    ALL_FORMATS,
    JSONL_FORMATS,
    ExportedFile,
    ExportOptions,
    ExportProgress,
    ExportResult,
)
from engine.export.rows import (
    ROW_BUILDERS,
    Conversation,
    alpaca_row,
    completion_row,
    fold_context,
    messages_row,
    sharegpt_row,
)
from engine.export.writer import CARD_FILE, export_dataset

__all__ = [
    "ALL_FORMATS",
    "CARD_FILE",
    "JSONL_FORMATS",
    "ROW_BUILDERS",
    "Conversation",
    "ExportOptions",
    "ExportProgress",
    "ExportResult",
    "ExportedFile",
    "StagingFolder",
    "alpaca_row",
    "completion_row",
    "export_dataset",
    "fold_context",
    "messages_row",
    "recover_interrupted",
    "sharegpt_row",
]
