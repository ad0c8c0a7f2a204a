"""Prompt packs: one TOML file per mode, built in or overridden per project.

A pack fixes one voice for a mode: the system prompt its pairs carry, the ideal
answer's structure (described output-first), one template per pair type and the
declinations refusal pairs use. Projects override a built-in pack, or add a new
mode, with a same-named ``*.toml`` file in their ``prompts/`` folder.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.errors import ConfigError
from engine.resources import prompts_dir

PROJECT_PROMPTS_DIR = "prompts"

# The pair types a pack must template (imported/manual pairs are never generated).
GENERATED_KINDS: tuple[str, ...] = ("instruction", "multi_hop", "refusal", "thinking", "clarification")

# Placeholders a template may use; anything else is a typo the loader names.
PLACEHOLDERS = frozenset(
    {"source", "heading", "concepts", "other_topics", "style", "overview", "topic", "coverage",
     "angle", "system", "other_source", "other_heading", "document", "asked"}
)

# The questions a source already has, listed in its prompt so the model asks something else:
# the newest few, each cut short, the list within a share of the context the prompt may use.
MAX_ASKED_QUESTIONS = 8
MAX_ASKED_QUESTION_CHARS = 200
MAX_ASKED_CHARS = 1200
ASKED_HEADER = "Questions already asked about this source (write a different one, not a rewording of these):"


def asked_block(questions: Sequence[str], max_chars: int = MAX_ASKED_CHARS) -> str:
    """The list of questions already asked, capped at MAX_ASKED_QUESTIONS and ``max_chars``; "" when none fit."""
    lines: list[str] = []
    used = len(ASKED_HEADER)
    for question in questions[:MAX_ASKED_QUESTIONS]:
        text = " ".join(question.split())
        if len(text) > MAX_ASKED_QUESTION_CHARS:
            text = text[: MAX_ASKED_QUESTION_CHARS - 3].rstrip() + "..."
        line = f"- {text}"
        if not text or used + len(line) + 1 > max_chars:
            continue
        lines.append(line)
        used += len(line) + 1
    return "\n".join([ASKED_HEADER, *lines]) if lines else ""


class PairTemplate(BaseModel):
    """The user prompt sent to the generating model for one pair type."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=20)

    @field_validator("prompt")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        unknown = sorted(
            {name for _, name, _, _ in string.Formatter().parse(value) if name is not None} - PLACEHOLDERS
        )
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{unknown[0]}}}; use one of {', '.join(sorted(PLACEHOLDERS))}"
            )
        return value


class PromptPack(BaseModel):
    """A mode's prompts, validated from its TOML file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    version: str = Field(pattern=r"^\d+(\.\d+){0,2}$")
    description: str = ""
    system: str = Field(min_length=10)
    generator: str = Field(min_length=10)
    style: str = Field(min_length=10)
    declinations: list[str] = Field(min_length=1)
    templates: dict[str, PairTemplate]

    @field_validator("templates")
    @classmethod
    def _every_kind(cls, value: dict[str, PairTemplate]) -> dict[str, PairTemplate]:
        missing = [k for k in GENERATED_KINDS if k not in value]
        if missing:
            raise ValueError(f"missing template for {missing[0]}")
        extra = [k for k in value if k not in GENERATED_KINDS]
        if extra:
            raise ValueError(f"unknown pair type {extra[0]!r}; use one of {', '.join(GENERATED_KINDS)}")
        return value

    @field_validator("declinations")
    @classmethod
    def _declinations_name_both(cls, value: list[str]) -> list[str]:
        for text in value:
            if "{topic}" not in text or "{coverage}" not in text:
                raise ValueError("every declination must contain {topic} and {coverage}")
        return value

    @property
    def prompt_version(self) -> str:
        """The version recorded on each pair, e.g. ``factual@1.0``."""
        return f"{self.name}@{self.version}"

    def render(self, kind: str, values: Mapping[str, Any]) -> str:
        """The user prompt for ``kind`` with ``values`` filled in (missing ones left empty).

        The questions already asked (``asked``) go where the template puts ``{asked}``, else at its end.
        """
        fields = {name: "" for name in PLACEHOLDERS}
        fields.update({"style": self.style, "system": self.system})
        fields.update({k: str(v) for k, v in values.items()})
        template = self.templates[kind].prompt
        prompt = template.format_map(fields)
        if fields["asked"] and "{asked}" not in template:
            prompt = f"{prompt.rstrip()}\n\n{fields['asked']}"
        return prompt


def _load_file(path: Path) -> PromptPack:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Prompt pack {path} is not valid TOML ({exc}); fix its syntax.") from exc
    except OSError as exc:
        raise ConfigError(f"Cannot read prompt pack {path}: {exc.strerror}; check its permissions.") from exc
    data.setdefault("name", path.stem)
    try:
        pack = PromptPack.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ConfigError(
            f"Prompt pack {path}: {key}: {first['msg']}; fix that key or delete the file to use the built-in pack."
        ) from exc
    if pack.name != path.stem:
        raise ConfigError(
            f"Prompt pack {path}: name: {pack.name!r} differs from the file name; "
            f"rename the file to {pack.name}.toml or set name = {path.stem!r}."
        )
    return pack


def load_packs(project_root: Path | None = None) -> dict[str, PromptPack]:
    """Every available pack by mode name: built-ins, then the project's ``prompts/`` overrides.

    Raises ConfigError naming the file and key of the first invalid pack.
    """
    packs = {path.stem: _load_file(path) for path in sorted(prompts_dir().glob("*.toml"))}
    if project_root is not None:
        folder = Path(project_root) / PROJECT_PROMPTS_DIR
        if folder.is_dir():
            packs.update({path.stem: _load_file(path) for path in sorted(folder.glob("*.toml"))})
    return packs


def require_modes(packs: Mapping[str, PromptPack], modes: list[str]) -> list[str]:
    """Check every mode has a pack; returns the modes or raises ConfigError naming the missing one."""
    if not modes:
        raise ConfigError("No generation modes are configured: set generation.modes, e.g. [\"factual\"].")
    for mode in modes:
        if mode not in packs:
            raise ConfigError(
                f"Mode {mode!r} has no prompt pack: add prompts/{mode}.toml to the project "
                f"or choose one of {', '.join(sorted(packs))}."
            )
    return modes


__all__ = ["ASKED_HEADER", "GENERATED_KINDS", "MAX_ASKED_QUESTIONS", "PLACEHOLDERS", "PairTemplate", "PromptPack", "asked_block", "load_packs", "require_modes"]
