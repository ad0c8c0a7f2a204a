"""Project settings in two layers, validated by pydantic-settings.

- The **file layer** is ``pairforge.toml``: what the person wrote, plus what they changed on purpose
  (in the app's Settings, a theme they picked, or a command documented to save, such as
  ``pairforge judge --threshold``). It is the only thing ever written, and a change writes only the
  values it changes.
- The **effective layer** is what every part of PairForge reads: the file layer with the
  environment (``PAIRFORGE_GENERATION__MODEL=qwen2.5:7b``) and one-off flags of this run
  (``pairforge open --backend llamacpp``) on top. It is read-only and never written.

Every settings model is frozen: a value is changed through ``SettingsLayers.changed`` (the file)
or ``SettingsLayers.with_flags`` (this run only), never by assigning to a field.
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from engine.errors import ConfigError

SETTINGS_FILE = "pairforge.toml"
ENV_PREFIX = "PAIRFORGE_"
ENV_NESTED_DELIMITER = "__"


# Requests in flight per host: a number, or "auto" (found per host by the job runner).
Concurrency = Annotated[int, Field(ge=1, le=64)] | Literal["auto"]


class _Section(BaseModel):
    """One ``[section]`` of ``pairforge.toml``: read-only, each field documented by the docstring under it."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)


class ChunkingSettings(_Section):
    """How documents are cut into chunks."""

    size_chars: int = Field(1500, ge=200, le=50_000)
    """Target chunk size in characters."""
    overlap_chars: int = Field(150, ge=0, le=5_000)
    """Characters shared by neighbouring chunks."""
    min_chars: int = Field(120, ge=0)
    """Shorter trailing chunks merge into their neighbour."""


class ImportSettings(_Section):
    """What an import reads and what it skips."""

    ignore: list[str] = Field(
        default_factory=lambda: [
            ".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv",
            ".mypy_cache", ".pytest_cache", ".ruff_cache", "dist", "build", ".*",
        ],
    )
    """Glob patterns of file and folder names to skip."""
    max_file_mb: int = Field(512, ge=1)
    """Files larger than this are skipped."""


class GenerationSettings(_Section):
    """The generation backend, its model and servers, and what a run plans."""

    backend: Literal["ollama", "llamacpp", "openai"] = "ollama"
    """Which kind of server generates pairs: Ollama, the embedded llama.cpp, or any OpenAI-compatible server."""
    model: str = "qwen2.5:7b-instruct"
    """The model name the backend serves."""
    hosts: list[str] = Field(default_factory=list)
    """Ollama or OpenAI-compatible base URLs; empty means OLLAMA_HOST or the default."""
    concurrency: Concurrency = "auto"
    """Requests in flight per host: a number from 1 to 64, or auto (found per host while a run goes, and remembered in the project)."""
    target: int | None = Field(None, ge=1)
    """Pairs to plan; empty means the guide's figure for the corpus size."""
    min_refusals: int = Field(60, ge=0)
    """Refusal pairs a plan includes at least."""
    min_multi_hop: int = Field(20, ge=0)
    """Multi-hop pairs a plan includes at least."""
    coverage: list[str] = Field(default_factory=list)
    """What the knowledge base covers, one subject per item (e.g. "closures", "thread safety"); each refusal answer names a few of them. Empty means built from the documents' titles and top-level headings."""
    modes: list[str] = Field(default_factory=lambda: ["developer", "thinker", "factual"])
    """Prompt modes a plan spreads its jobs over."""
    temperature: dict[str, float] = Field(
        default_factory=lambda: {
            "instruction": 0.7, "multi_hop": 0.6, "refusal": 0.8,
            "thinking": 0.5, "clarification": 0.8, "judge": 0.1,
        }
    )
    """Sampling temperature per pair kind (and for the judge)."""
    num_ctx: int = Field(8192, ge=512)
    """Context window asked of the model, in tokens."""
    num_predict: int = Field(1024, ge=16)
    """Most tokens one answer may have."""
    seed: int | None = None
    """A fixed sampling seed for repeatable runs; empty means random."""
    keep_alive: str = "10m"
    """How long Ollama keeps the model loaded after the last request."""
    timeout_s: float = Field(300.0, gt=0)
    """Seconds a server may stay silent (before an answer's first token or between two) before the request is retried; an answer that keeps streaming is never cut off."""
    max_attempts: int = Field(4, ge=1, le=20)
    """Tries per job before it is marked failed."""
    model_path: str | None = None
    """GGUF file for the embedded backend; empty means the bundled Gemma 3 270M."""
    api_key_env: str = "OPENAI_API_KEY"
    """The environment variable holding the OpenAI-compatible server's API key."""

    @field_validator("coverage", mode="before")
    @classmethod
    def _coverage_items(cls, value: Any) -> Any:
        # One text ("a; b; c", or one item per line) is accepted too, as the Settings form and a variable give it.
        items = value.replace("\n", ";").split(";") if isinstance(value, str) else value
        if isinstance(items, list):
            return [" ".join(str(item).split()) for item in items if str(item).strip()]
        return items


class QualitySettings(_Section):
    """The thresholds of the pair and dataset checks."""

    profile: Literal["standard", "strict"] = "standard"
    """The strict profile asks for longer answers (strict_min_response_chars)."""
    min_pairs: int = Field(1000, ge=1)
    """Pairs the dataset needs at least."""
    min_refusals: int = Field(60, ge=0)
    """Refusal pairs the dataset needs at least."""
    min_multi_hop: int = Field(20, ge=0)
    """Multi-hop pairs the dataset needs at least."""
    max_category_share: float = Field(0.8, gt=0, le=1)
    """Largest share of pairs one mode or kind may have."""
    min_instruction_chars: int = Field(10, ge=1)
    """Shortest instruction, in characters."""
    min_response_chars: int = Field(20, ge=1)
    """Shortest answer, in characters (standard profile)."""
    strict_min_response_chars: int = Field(50, ge=1)
    """Shortest answer, in characters (strict profile)."""
    max_response_chars: int = Field(4000, ge=100)
    """Longest answer, in characters."""
    max_seq_length: int = Field(2048, ge=128)
    """The training window: pairs with more tokens are flagged."""
    tokenizer: str | None = None
    """Local tokenizer folder or tokenizer.json; empty means estimated counts."""
    near_duplicate_threshold: float = Field(90.0, ge=50, le=100)
    """Similarity (0-100) from which two pairs are near duplicates."""
    embedding_model: str = ""
    """Embedding model of the generation backend's server (e.g. nomic-embed-text) for `dedup --embed`; empty means no embedding pass."""
    embedding_threshold: float = Field(0.92, ge=0.5, le=1)
    """Cosine similarity (0-1) of two instructions' embeddings from which `dedup --embed` counts them near duplicates."""
    mimicry_threshold: float = Field(0.4, gt=0, le=1)
    """Share of an answer's prose copied from its sources (in runs of 6 or more words) from which it is flagged."""
    mimicry_min_run_words: int = Field(12, ge=6, le=500)
    """A copied run of this many prose words (a few words changed, dropped or added included) flags the answer."""
    offensive_threshold: float = Field(0.8, gt=0, le=1)
    """Probability (0-1) from the offensive-language classifier from which a sentence of a pair is flagged."""
    judge_threshold: float = Field(7.0, ge=0, le=10)
    """Judge score below which a pair is flagged (and curated)."""


class JudgeSettings(_Section):
    """The local judge; every empty value falls back to the generation settings."""

    backend: Literal["ollama", "llamacpp", "openai"] | None = None
    """Empty means generation.backend."""
    model: str | None = None
    """Empty means generation.model (generation.model_path for llamacpp)."""
    hosts: list[str] = Field(default_factory=list)
    """Empty means generation.hosts."""
    concurrency: Concurrency | None = None
    """Requests in flight per host (a number or auto); empty means generation.concurrency."""
    max_attempts: int | None = Field(None, ge=1, le=20)
    """Tries per pair; empty means generation.max_attempts."""
    num_predict: int = Field(512, ge=64)
    """Token limit of one verdict."""


class SplitSettings(_Section):
    """How the dataset splits into train and validation."""

    validation_fraction: float = Field(0.1, ge=0.01, le=0.5)
    """Share of pairs held out for validation."""
    seed: int = 42
    """Seed of the split, so it is the same every time."""
    group_by_document: bool = False
    """Keep all pairs of a document on one side of the split."""


class ExportSettings(_Section):
    """What an export writes by default."""

    format: Literal["messages", "alpaca", "sharegpt", "completion", "hf", "all"] = "messages"
    """The format written when none is asked for."""
    system_prompt: str | None = None
    """A system prompt given to every exported pair; empty leaves pairs as they are."""
    include_pending: bool = False
    """Export pairs not yet reviewed as well as accepted ones."""
    base_model: str = "Qwen/Qwen2.5-0.5B-Instruct"
    """The model the training scripts next to an export fine-tune (a Hugging Face name or a local
    folder); its chat template formats the pairs."""


class TuiSettings(_Section):
    """The app's look and keys."""

    theme: str = "pairforge-dark"
    """The theme the app starts with (any from themes/)."""
    keymap: dict[str, str] = Field(default_factory=dict)
    """Binding id to keys, e.g. accept = 'a,y'."""


class ProjectSettings(BaseSettings):
    """Everything configurable about a project: one layer, validated (see ``SettingsLayers``)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED_DELIMITER, extra="forbid", validate_default=True,
        frozen=True, use_attribute_docstrings=True,
    )

    name: str = "pairforge-project"
    """The project's name, shown in the app's title and the dataset card."""
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    """``[chunking]``: how documents are cut into chunks."""
    imports: ImportSettings = Field(default_factory=ImportSettings)
    """``[imports]``: what an import reads and skips."""
    generation: GenerationSettings = Field(default_factory=GenerationSettings)
    """``[generation]``: the backend, model, servers and plan."""
    quality: QualitySettings = Field(default_factory=QualitySettings)
    """``[quality]``: thresholds of the checks."""
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    """``[judge]``: the local judge."""
    split: SplitSettings = Field(default_factory=SplitSettings)
    """``[split]``: train and validation."""
    export: ExportSettings = Field(default_factory=ExportSettings)
    """``[export]``: export defaults."""
    tui: TuiSettings = Field(default_factory=TuiSettings)
    """``[tui]``: the app's theme and keymap."""

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
        # Exactly the values given: the layers are merged before validation, so the
        # environment can never slip into the file layer.
        return (init_settings,)


def _is_section(name: str) -> bool:
    annotation = ProjectSettings.model_fields[name].annotation if name in ProjectSettings.model_fields else None
    return isinstance(annotation, type) and issubclass(annotation, _Section)


def _merged(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, section by section; a field's value (even a list or table) is replaced whole.

    None removes a value (TOML has no null: an emptied value falls back to its default).
    """
    result = {key: dict(value) if isinstance(value, Mapping) else value for key, value in base.items()}
    for key, value in top.items():
        if _is_section(key) and isinstance(value, Mapping):
            section = result.get(key)
            section = dict(section) if isinstance(section, Mapping) else {}
            for name, item in value.items():
                if item is None:
                    section.pop(name, None)
                else:
                    section[name] = item
            if section:
                result[key] = section
            else:
                result.pop(key, None)
        elif value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def settings_changes(before: ProjectSettings, after: ProjectSettings) -> dict[str, Any]:
    """The values that differ between two settings, as ``{section: {field: value}}`` (None for an emptied value).

    A form over the settings saves ``settings_changes(shown, edited)``: only what the person
    changed, not every value the form showed (some of which came from the environment).
    """
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    changes: dict[str, Any] = {}
    for key, value in new.items():
        if _is_section(key):
            section = {name: item for name, item in value.items() if old[key].get(name) != item}
            if section:
                changes[key] = section
        elif old.get(key) != value:
            changes[key] = value
    return changes


Layer = Literal["file", "environment", "flag"]


def _validated(path: Path, data: Mapping[str, Any], layer: Layer) -> ProjectSettings:
    try:
        return ProjectSettings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(path, exc, layer)) from exc


def _describe_validation_error(path: Path, error: ValidationError, layer: Layer = "file") -> str:
    first = error.errors()[0]
    field_path = ".".join(str(part) for part in first["loc"]) or "(top level)"
    got = first.get("input")
    got_text = "" if isinstance(got, dict) else f" (got {got!r})"
    extra = f" and {error.error_count() - 1} more problem(s)" if error.error_count() > 1 else ""
    if layer == "environment":
        variable = ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(part) for part in first["loc"]).upper()
        return f"{variable}: {first['msg']}{got_text}{extra}; fix the environment variable or unset it."
    if layer == "flag":
        return f"{field_path} given on the command line: {first['msg']}{got_text}{extra}; fix the option's value."
    return f"{path}: {field_path}: {first['msg']}{got_text}{extra}; fix the value or delete the line to use the default."


def environment_layer(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``PAIRFORGE_*`` settings in ``environ`` (default: this process's), as ``{section: {field: value}}``.

    Raises ConfigError when a variable holding a list or table is not valid JSON.
    """
    source = EnvSettingsSource(
        ProjectSettings, env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_NESTED_DELIMITER, case_sensitive=False,
    )
    if environ is not None:
        source.env_vars = {key.lower(): value for key, value in environ.items()}
    try:
        return dict(source())
    except SettingsError as exc:
        raise ConfigError(f"A {ENV_PREFIX}* environment variable is not valid ({exc}); lists and tables need JSON, e.g. '[\"a\"]'.") from exc


def _read_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix the syntax or delete the file to start from defaults.") from exc
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}; check its permissions.") from exc


def _write_file(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".toml.tmp")
    try:
        tmp.write_text(tomli_w.dumps(dict(data)), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"Cannot write {path}: {exc.strerror}; check free space and permissions.") from exc


def _leaves(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in data.items():
        if _is_section(key) and isinstance(value, Mapping) and not prefix:
            found.update(_leaves(value, f"{key}."))
        else:
            found[f"{prefix}{key}"] = value
    return found


# One change at a time per process: a change reads the file, then writes it.
_WRITE_LOCK = threading.Lock()


@dataclass(frozen=True)
class SettingsLayers:
    """A project's settings: the file layer, and the effective layer read at run time."""

    path: Path
    """The ``pairforge.toml`` the file layer lives in."""
    written: Mapping[str, Any]
    """The file's values as written (by the person, or by a change they made on purpose)."""
    environment: Mapping[str, Any]
    """``PAIRFORGE_*`` environment variables of this process, as ``{section: {field: value}}``."""
    flags: Mapping[str, Any]
    """One-off values of this run (command-line flags), as ``{section: {field: value}}``."""
    file: ProjectSettings
    """The file layer, validated (defaults fill what it leaves out)."""
    effective: ProjectSettings
    """What PairForge reads: the file layer with the environment and the flags on top."""

    @classmethod
    def build(
        cls, path: Path, written: Mapping[str, Any], environment: Mapping[str, Any], flags: Mapping[str, Any],
    ) -> SettingsLayers:
        """Validate each layer; raises ConfigError naming the file, variable or flag at fault."""
        file = effective = _validated(path, written, "file")
        with_env = _merged(written, environment)
        if environment:
            effective = _validated(path, with_env, "environment")
        if flags:
            effective = _validated(path, _merged(with_env, flags), "flag")
        return cls(path, dict(written), dict(environment), dict(flags), file, effective)

    @classmethod
    def load(cls, project_dir: Path, *, flags: Mapping[str, Any] | None = None,
             environ: Mapping[str, str] | None = None) -> SettingsLayers:
        """Read ``pairforge.toml`` in ``project_dir`` and this process's environment; raises ConfigError on bad values."""
        path = project_dir / SETTINGS_FILE
        return cls.build(path, _read_file(path), environment_layer(environ), dict(flags or {}))

    def changed(self, changes: Mapping[str, Any]) -> SettingsLayers:
        """Write ``changes`` (``{section: {field: value}}``; None empties a value) to the file; returns the new layers.

        The file is read again first, so a hand edit made meanwhile is kept; only the changed
        values are written, and nothing from the environment or the flags. Raises ConfigError
        (and writes nothing) when a value is invalid or the file cannot be read or written.
        """
        with _WRITE_LOCK:
            current = _read_file(self.path)
            written = _merged(current, changes)
            layers = SettingsLayers.build(self.path, written, self.environment, self.flags)
            if written != current:
                _write_file(self.path, written)
            return layers

    def with_flags(self, flags: Mapping[str, Any]) -> SettingsLayers:
        """These layers with one-off ``flags`` on top (never written); raises ConfigError on a bad value."""
        return SettingsLayers.build(self.path, self.written, self.environment, _merged(self.flags, flags))

    def overridden(self) -> dict[str, str]:
        """Effective values that do not come from the file: dotted field name -> where they come from."""
        found = {
            name: f"{ENV_PREFIX}{name.replace('.', ENV_NESTED_DELIMITER).upper()}" for name in _leaves(self.environment)
        }
        found.update({name: "a command-line flag" for name in _leaves(self.flags)})
        return found


def create_settings_file(project_dir: Path, name: str) -> Path:
    """Write a new project's ``pairforge.toml`` (every default spelt out, nothing from the environment); returns its path."""
    path = project_dir / SETTINGS_FILE
    _write_file(path, ProjectSettings(name=name).model_dump(mode="json", exclude_none=True))
    return path


def load_settings(project_dir: Path) -> ProjectSettings:
    """The effective settings of the project in ``project_dir`` (file and environment); raises ConfigError on bad values."""
    return SettingsLayers.load(project_dir).effective


def load_file_settings(project_dir: Path) -> ProjectSettings:
    """The file layer of ``pairforge.toml`` in ``project_dir``, without the environment; raises ConfigError on bad values."""
    path = project_dir / SETTINGS_FILE
    return _validated(path, _read_file(path), "file")


def settings_without_project(environ: Mapping[str, str] | None = None) -> ProjectSettings:
    """The defaults with the environment on top, for commands that run without a project."""
    return SettingsLayers.build(Path(SETTINGS_FILE), {}, environment_layer(environ), {}).effective


__all__ = [
    "SETTINGS_FILE",
    "ChunkingSettings",
    "ExportSettings",
    "GenerationSettings",
    "ImportSettings",
    "JudgeSettings",
    "ProjectSettings",
    "QualitySettings",
    "SettingsLayers",
    "SplitSettings",
    "TuiSettings",
    "create_settings_file",
    "environment_layer",
    "load_file_settings",
    "load_settings",
    "settings_changes",
    "settings_without_project",
]
