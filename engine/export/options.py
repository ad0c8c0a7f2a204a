"""What an export writes (options) and what it wrote (result)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, field_validator

from engine.models import PairKind, PairStatus, Severity

if TYPE_CHECKING:
    from engine.export.trial import TrialDraw

FormatName = Literal["messages", "alpaca", "sharegpt", "completion", "hf"]

# Every format, in the order files are listed; "all" expands to this.
ALL_FORMATS: tuple[FormatName, ...] = ("messages", "alpaca", "sharegpt", "completion", "hf")
JSONL_FORMATS: tuple[FormatName, ...] = ("messages", "alpaca", "sharegpt", "completion")
SPLITS: tuple[str, ...] = ("train", "validation")


class ExportOptions(BaseModel):
    """Which pairs go out, in which formats, under which system-prompt rule.

    ``system_prompt`` is one rule for every pair: None strips every system turn, a string
    puts exactly that system prompt on every pair. A dataset is never exported mixed.
    """

    formats: list[str] = Field(default_factory=lambda: ["messages"])
    include_pending: bool = False
    exclude_severities: list[Severity] = Field(default_factory=list)
    kinds: list[PairKind] = Field(default_factory=list, description="Only these kinds; empty means every kind.")
    modes: list[str] = Field(default_factory=list, description="Only these modes; empty means every mode.")
    system_prompt: str | None = None
    base_model: str | None = Field(None, description="The model the training scripts fine-tune; None: the project's.")
    force: bool = False

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("choose at least one format")
        expanded: list[str] = []
        for name in value:
            if name == "all":
                expanded.extend(ALL_FORMATS)
            elif name in ALL_FORMATS:
                expanded.append(name)
            else:
                raise ValueError(f"unknown format {name!r}; choose from {', '.join((*ALL_FORMATS, 'all'))}")
        # Keep the canonical order and drop repeats.
        return [name for name in ALL_FORMATS if name in expanded]

    @field_validator("system_prompt")
    @classmethod
    def _blank_means_none(cls, value: str | None) -> str | None:
        return value if value and value.strip() else None

    @property
    def statuses(self) -> list[PairStatus]:
        """The review statuses exported: accepted, plus pending when asked."""
        return [PairStatus.ACCEPTED, PairStatus.PENDING] if self.include_pending else [PairStatus.ACCEPTED]


@dataclass
class ExportedFile:
    """One file written: its format, split, path (inside the export folder) and row count."""

    format: str
    split: str
    path: Path
    rows: int


@dataclass
class ExportProgress:
    """Progress of a running export: pairs written so far out of the total, and the stage."""

    done: int
    total: int
    stage: str


@dataclass
class ExportResult:
    """What an export wrote and what it left out, and why."""

    out_dir: Path
    files: list[ExportedFile] = field(default_factory=list)
    card_path: Path | None = None
    trainer_configs: list[Path] = field(default_factory=list)
    recipes: list[Path] = field(default_factory=list)
    recipe_max_length: int | None = None
    trial: TrialDraw | None = None
    hf_dataset_dir: Path | None = None
    exported: int = 0
    split_sizes: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        """The result as plain JSON-ready data (paths as strings)."""
        return {
            "out_dir": str(self.out_dir),
            "files": [
                {"format": f.format, "split": f.split, "path": str(f.path), "rows": f.rows} for f in self.files
            ],
            "card": str(self.card_path) if self.card_path else None,
            "trainer_configs": [str(p) for p in self.trainer_configs],
            "recipes": [str(p) for p in self.recipes],
            "recipe_max_length": self.recipe_max_length,
            "trial": self.trial.to_json() if self.trial is not None else None,
            "hf_dataset_dir": str(self.hf_dataset_dir) if self.hf_dataset_dir else None,
            "exported": self.exported,
            "split_sizes": self.split_sizes,
            "skipped": self.skipped,
            "notes": self.notes,
            "seconds": round(self.seconds, 3),
        }
