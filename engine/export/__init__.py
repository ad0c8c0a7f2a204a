"""Export: every format trainers read, Hugging Face datasets, the dataset card, trainer configs
and training scripts, for the full set or a trial subset.

``export_dataset(store, out_dir, options)`` is the one entry point the CLI and the app call;
``export_trial_set`` draws a trial subset and exports it through it.
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
from engine.export.recipes import TRL_SCRIPT, UNSLOTH_SCRIPT, recipe_max_length
from engine.export.rows import (
    ROW_BUILDERS,
    Conversation,
    alpaca_row,
    completion_row,
    fold_context,
    messages_row,
    sharegpt_row,
)
from engine.export.trial import DEFAULT_TRIAL_SIZE, TrialDraw, draw_trial_set, export_trial_set
from engine.export.writer import CARD_FILE, export_dataset

__all__ = [
    "ALL_FORMATS",
    "CARD_FILE",
    "DEFAULT_TRIAL_SIZE",
    "JSONL_FORMATS",
    "ROW_BUILDERS",
    "TRL_SCRIPT",
    "UNSLOTH_SCRIPT",
    "Conversation",
    "ExportOptions",
    "ExportProgress",
    "ExportResult",
    "ExportedFile",
    "StagingFolder",
    "TrialDraw",
    "alpaca_row",
    "completion_row",
    "draw_trial_set",
    "export_dataset",
    "export_trial_set",
    "fold_context",
    "messages_row",
    "recipe_max_length",
    "recover_interrupted",
    "sharegpt_row",
]
