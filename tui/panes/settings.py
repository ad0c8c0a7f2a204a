"""Settings: backend, hosts, model, coverage, thresholds, tokenizer, theme, keymap; validated, saved to pairforge.toml.

The form shows the effective settings; Save writes only the values the person changed in it,
so a value that came from the environment or a flag for this run never lands in the file.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from engine.errors import PairForgeError
from engine.generate.backends import BACKEND_KINDS
from engine.generate.coverage import default_coverage_items
from engine.settings import ProjectSettings, settings_changes
from engine.store import Store
from tui.messages import SettingsSaved
from tui.sections import Section, SectionPane
from tui.widgets.form import field, give_keys_back


def parse_keymap(text: str) -> dict[str, str]:
    """``id = keys`` lines into a keymap; raises ValueError naming the bad line."""
    keymap: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ValueError(f"keymap line {number} ({line!r}) needs the form 'binding_id = keys'")
        key, value = (part.strip().strip('"') for part in line.split("=", 1))
        keymap[key] = value
    return keymap


def _changed_names(changes: dict[str, Any]) -> list[str]:
    """``section.field`` for each changed value."""
    names: list[str] = []
    for section, value in changes.items():
        if isinstance(value, dict):
            names.extend(f"{section}.{name}" for name in value)
        else:
            names.append(section)
    return names


class SettingsPane(SectionPane, VerticalScroll):
    """A form over the project's settings; Save validates with the same model the engine uses."""

    SECTION = Section("settings", "Settings", "Settings", "Edit the project's settings.")

    # The form's values as last shown or saved: Save writes what differs from them.
    _shown: ProjectSettings | None = None

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="save_settings", tooltip="Validate and save to pairforge.toml."),
    ]

    def __init__(self, store: Store, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = store

    def compose(self) -> ComposeResult:
        s = self.store.settings
        yield Label("Generation", classes="detail-heading")
        with Horizontal(classes="form-row"):
            yield field("backend", Select([(b, b) for b in BACKEND_KINDS], value=s.generation.backend,
                                          allow_blank=False, id="set-backend"))
            yield field("model", Input(s.generation.model, placeholder="model name", id="set-model"))
        yield field("hosts", Input(",".join(s.generation.hosts), placeholder="comma separated (empty: default)", id="set-hosts"))
        yield field("coverage", Input("; ".join(s.generation.coverage), placeholder=self._coverage_placeholder(),
                                    id="set-coverage",
                                    tooltip="What the knowledge base covers, separated by ';'; refusal answers name a few."))
        yield Label("Thresholds", classes="detail-heading")
        with Horizontal(classes="form-row"):
            yield field("pairs", Input(str(s.quality.min_pairs), type="integer", id="set-min-pairs"))
            yield field("refusals", Input(str(s.quality.min_refusals), type="integer", id="set-min-refusals"))
            yield field("multi-hop", Input(str(s.quality.min_multi_hop), type="integer", id="set-min-multi-hop"))
            yield field("max chars", Input(str(s.quality.max_response_chars), type="integer", id="set-max-response"))
        yield field("tokenizer", Input(s.quality.tokenizer or "", placeholder="folder or tokenizer.json (empty: estimated)",
                                       id="set-tokenizer"))
        yield field("theme", Select([(t, t) for t in sorted(self.app.available_themes)], value=self.app.theme,
                                    allow_blank=False, id="set-theme"))
        yield Label("Keymap: one 'binding_id = keys' per line (see Help for ids)", classes="detail-heading")
        yield TextArea("\n".join(f"{k} = {v}" for k, v in s.tui.keymap.items()), id="set-keymap")
        with Horizontal(classes="form-row buttons"):
            yield Button("Save ^s", id="set-save", variant="primary")
        yield Static(self._overrides_note(), id="set-result")

    def _coverage_placeholder(self) -> str:
        """The coverage refusal answers name while the setting is empty: the documents' titles and headings."""
        items = default_coverage_items(self.store.list_documents(), self.store.list_chunks())
        if not items:
            return "subjects separated by ; (empty: from document titles and headings)"
        return "empty: " + "; ".join(items[:8]) + ("; ..." if len(items) > 8 else "")

    def _overrides_note(self) -> Text:
        overridden = self.store.settings_layers.overridden()
        if not overridden:
            return Text("")
        listed = ", ".join(f"{name} (from {source})" for name, source in sorted(overridden.items()))
        return Text(f"For this run only: {listed}. Saving keeps them out of pairforge.toml unless you change them here.")

    def on_mount(self) -> None:
        self._shown = self._validated(self.collect())

    @staticmethod
    def _validated(data: dict[str, Any]) -> ProjectSettings:
        data["quality"] = {k: v for k, v in data["quality"].items() if v is not None}
        return ProjectSettings.model_validate(data)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "set-save":
            event.stop()
            self.action_save()

    def _value(self, wid: str) -> str:
        return self.query_one(wid, Input).value.strip()

    def collect(self) -> dict[str, Any]:
        """The settings the form describes, as plain data."""
        data = self.store.settings.model_dump(mode="json")
        data["generation"].update(
            backend=self.query_one("#set-backend", Select).value,
            model=self._value("#set-model"),
            hosts=[h.strip() for h in self._value("#set-hosts").split(",") if h.strip()],
            coverage=self._value("#set-coverage"),
        )
        for key, wid in (("min_pairs", "#set-min-pairs"), ("min_refusals", "#set-min-refusals"),
                         ("min_multi_hop", "#set-min-multi-hop"), ("max_response_chars", "#set-max-response")):
            data["quality"][key] = self._value(wid) or None
        data["quality"]["tokenizer"] = self._value("#set-tokenizer") or None
        data["tui"]["theme"] = str(self.query_one("#set-theme", Select).value)
        data["tui"]["keymap"] = parse_keymap(self.query_one("#set-keymap", TextArea).text)
        return {k: v for k, v in data.items()}

    def action_save(self) -> None:
        """Validate the form and save it; a bad value is named with its fix."""
        result = self.query_one("#set-result", Static)
        try:
            settings = self._validated(self.collect())
            changes = settings_changes(self._shown or self.store.settings, settings)
            self.store.change_settings(changes)
        except ValueError as exc:
            if isinstance(exc, ValidationError):
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                message = f"{where}: {first['msg']}; fix the value and save again."
            else:
                message = f"{exc}; fix it and save again."
            result.update(Text(message))
            self.notify(message, severity="error")
            return
        except PairForgeError as exc:
            result.update(Text(str(exc)))
            self.notify(str(exc), severity="error")
            return
        self._shown = settings
        # The App applies the keymap, and the theme only if it was changed here: a theme picked
        # since the form was drawn stays otherwise.
        self.post_message(SettingsSaved(settings, theme_changed="theme" in changes.get("tui", {})))
        give_keys_back(self.query_one("#set-save", Button))
        if changes:
            result.update(Text(f"Saved {', '.join(_changed_names(changes))} to {self.store.root / 'pairforge.toml'}."))
            self.notify("Settings saved.")
        else:
            result.update(Text("Nothing to save: no value was changed."))


__all__ = ["SettingsPane", "parse_keymap"]
