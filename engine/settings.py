"""Project settings: ``pairforge.toml`` validated by pydantic-settings.

Environment variables override the file: ``PAIRFORGE_GENERATION__MODEL=qwen2.5:7b``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from engine.errors import ConfigError

SETTINGS_FILE = "pairforge.toml"


class ChunkingSettings(BaseModel):
    size_chars: int = Field(1500, ge=200, le=50_000, description="Target chunk size in characters.")
    overlap_chars: int = Field(150, ge=0, le=5_000, description="Characters shared by neighbouring chunks.")
    min_chars: int = Field(120, ge=0, description="Shorter trailing chunks merge into their neighbour.")


class ImportSettings(BaseModel):
    ignore: list[str] = Field(
        default_factory=lambda: [
            ".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv",
            ".mypy_cache", ".pytest_cache", ".ruff_cache", "dist", "build", ".*",
        ],
        description="Glob patterns of file and folder names to skip.",
    )
    max_file_mb: int = Field(512, ge=1, description="Files larger than this are skipped.")


class GenerationSettings(BaseModel):
    backend: Literal["ollama", "llamacpp", "openai"] = "ollama"
    model: str = "qwen2.5:7b-instruct"
    hosts: list[str] = Field(default_factory=list, description="Ollama or OpenAI-compatible base URLs; empty means OLLAMA_HOST or the default.")
    concurrency: int = Field(2, ge=1, le=64, description="Requests in flight per host.")
    target: int | None = Field(None, ge=1, description="Pairs to plan; empty means the guide's figure for the corpus size.")
    min_refusals: int = Field(60, ge=0)
    min_multi_hop: int = Field(20, ge=0)
    modes: list[str] = Field(default_factory=lambda: ["developer", "thinker", "factual"])
    temperature: dict[str, float] = Field(
        default_factory=lambda: {
            "instruction": 0.7, "multi_hop": 0.6, "refusal": 0.8,
            "thinking": 0.5, "clarification": 0.8, "judge": 0.1,
        }
    )
    num_ctx: int = Field(8192, ge=512)
    num_predict: int = Field(1024, ge=16)
    seed: int | None = None
    keep_alive: str = "10m"
    timeout_s: float = Field(300.0, gt=0)
    max_attempts: int = Field(4, ge=1, le=20)
    model_path: str | None = Field(None, description="GGUF file for the embedded backend; empty means the bundled Gemma 3 270M.")
    api_key_env: str = "OPENAI_API_KEY"


class QualitySettings(BaseModel):
    profile: Literal["standard", "strict"] = "standard"
    min_pairs: int = Field(1000, ge=1)
    min_refusals: int = Field(60, ge=0)
    min_multi_hop: int = Field(20, ge=0)
    max_category_share: float = Field(0.8, gt=0, le=1)
    min_instruction_chars: int = Field(10, ge=1)
    min_response_chars: int = Field(20, ge=1)
    strict_min_response_chars: int = Field(50, ge=1)
    max_response_chars: int = Field(4000, ge=100)
    max_seq_length: int = Field(2048, ge=128)
    tokenizer: str | None = Field(None, description="Local tokenizer folder or tokenizer.json; empty means estimated counts.")
    near_duplicate_threshold: float = Field(90.0, ge=50, le=100)
    mimicry_threshold: float = Field(0.5, gt=0, le=1)
    judge_threshold: float = Field(7.0, ge=0, le=10)


class JudgeSettings(BaseModel):
    """The local judge; every empty value falls back to the generation settings."""

    backend: Literal["ollama", "llamacpp", "openai"] | None = Field(None, description="Empty means generation.backend.")
    model: str | None = Field(None, description="Empty means generation.model (generation.model_path for llamacpp).")
    hosts: list[str] = Field(default_factory=list, description="Empty means generation.hosts.")
    concurrency: int | None = Field(None, ge=1, le=64, description="Requests in flight per host; empty means generation.concurrency.")
    max_attempts: int | None = Field(None, ge=1, le=20, description="Tries per pair; empty means generation.max_attempts.")
    num_predict: int = Field(512, ge=64, description="Token limit of one verdict.")


class SplitSettings(BaseModel):
    validation_fraction: float = Field(0.1, ge=0.01, le=0.5)
    seed: int = 42
    group_by_document: bool = False


class ExportSettings(BaseModel):
    format: Literal["messages", "alpaca", "sharegpt", "completion", "hf", "all"] = "messages"
    system_prompt: str | None = None
    include_pending: bool = False


class TuiSettings(BaseModel):
    theme: str = "pairforge-dark"
    keymap: dict[str, str] = Field(default_factory=dict, description="Binding id to keys, e.g. accept = 'a,y'.")


class ProjectSettings(BaseSettings):
    """Everything configurable about a project."""

    model_config = SettingsConfigDict(
        env_prefix="PAIRFORGE_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    name: str = "pairforge-project"
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    imports: ImportSettings = Field(default_factory=ImportSettings)
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    split: SplitSettings = Field(default_factory=SplitSettings)
    export: ExportSettings = Field(default_factory=ExportSettings)
    tui: TuiSettings = Field(default_factory=TuiSettings)

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file so one run can be tweaked without editing it.
        return (env_settings, init_settings)


def _describe_validation_error(path: Path, error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    got = first.get("input")
    got_text = "" if isinstance(got, dict) else f" (got {got!r})"
    extra = f" and {error.error_count() - 1} more problem(s)" if error.error_count() > 1 else ""
    return f"{path}: {where}: {first['msg']}{got_text}{extra}; fix the value or delete the line to use the default."


def load_settings(project_dir: Path) -> ProjectSettings:
    """Read and validate ``pairforge.toml`` in ``project_dir``; raises ConfigError on bad values."""
    path = project_dir / SETTINGS_FILE
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML ({exc}); fix the syntax or delete the file to start from defaults.") from exc
        except OSError as exc:
            raise ConfigError(f"Cannot read {path}: {exc.strerror}; check its permissions.") from exc
    try:
        return ProjectSettings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(path, exc)) from exc


def save_settings(project_dir: Path, settings: ProjectSettings) -> Path:
    """Write settings to ``pairforge.toml`` atomically; returns the path written."""
    path = project_dir / SETTINGS_FILE
    data = settings.model_dump(mode="json", exclude_none=True)
    tmp = path.with_suffix(".toml.tmp")
    try:
        tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"Cannot write {path}: {exc.strerror}; check free space and permissions.") from exc
    return path
