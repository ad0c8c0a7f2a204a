"""The dataset card: ``README.md`` in Hugging Face's card format (YAML header, then Markdown)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from engine.export.options import ExportedFile, ExportOptions
from engine.export.stats import ExportStats
from engine.quality.review import review_verdict
from engine.store import Store

if TYPE_CHECKING:
    from engine.export.recipes import RecipeInputs
    from engine.export.trial import TrialDraw

_FORMAT_TITLES = {
    "messages": "OpenAI messages (`messages`: role/content)",
    "alpaca": "Alpaca (`instruction`, `input`, `output`, `system`, `history`)",
    "sharegpt": "ShareGPT (`conversations`: from/value, roles human/gpt/system)",
    "completion": "Prompt/completion (`prompt`, `completion`)",
    "hf": "Hugging Face datasets (Parquet + `save_to_disk`, with metadata columns)",
}

# The field's guide to pairs needed by corpus size: (max documents, minimum pairs).
_PAIRS_BY_CORPUS = ((5, 500), (20, 1000), (50, 2000))
_PAIRS_FOR_LARGE_CORPUS = 5000


@dataclass(frozen=True)
class Threshold:
    """One dataset-level target, the figure reached and whether it is met."""

    name: str
    target: str
    actual: str
    met: bool


def size_category(n: int) -> str:
    """Hugging Face's ``size_categories`` bucket for ``n`` rows."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]
    return next((label for limit, label in bounds if n < limit), "1M<n<10M")


def _q(value: str) -> str:
    # JSON strings are valid YAML scalars, and escape anything a title could hold.
    return json.dumps(value, ensure_ascii=False)


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _share(n: int, total: int) -> str:
    return f"{100 * n / total:.1f}%" if total else "-"


def _counter_table(title: str, counts: Counter[str], total: int) -> list[str]:
    rows = [(name, n, _share(n, total)) for name, n in counts.most_common()]
    return [f"### By {title}", "", *_table([title.capitalize(), "Pairs", "Share"], rows)]


def guess_dataset_language(stats: ExportStats) -> str:
    """The card's language code: the most common guess over a sample of answers, else "en"."""
    from engine.quality.textstats import guess_language

    guesses = Counter(guess_language(text) for text in stats.language_sample)
    guesses.pop("unknown", None)
    return guesses.most_common(1)[0][0] if guesses else "en"


def dataset_thresholds(store: Store, stats: ExportStats, n_documents: int) -> list[Threshold]:
    """The field's dataset targets (from the project's quality settings) checked on the exported pairs."""
    q = store.settings.quality
    total = stats.total
    refusals = stats.kinds.get("refusal", 0)
    multi_hop = stats.kinds.get("multi_hop", 0)
    out = [
        Threshold("Pairs", f">= {q.min_pairs}", str(total), total >= q.min_pairs),
        Threshold("Refusal pairs", f">= {q.min_refusals}", str(refusals), refusals >= q.min_refusals),
        Threshold("Multi-hop pairs", f">= {q.min_multi_hop}", str(multi_hop), multi_hop >= q.min_multi_hop),
    ]
    for label, counts in (("kind", stats.kinds), ("mode", stats.modes)):
        if counts and total:
            name, top = counts.most_common(1)[0]
            share = top / total
            out.append(
                Threshold(f"Largest {label} share ({name})", f"<= {q.max_category_share:.0%}", f"{share:.1%}",
                          share <= q.max_category_share)
            )
    if n_documents:
        needed = next((n for limit, n in _PAIRS_BY_CORPUS if n_documents <= limit), _PAIRS_FOR_LARGE_CORPUS)
        out.append(Threshold(f"Pairs for a corpus of {n_documents} document(s)", f">= {needed}", str(total),
                             total >= needed))
    if stats.tokens:
        over = stats.over_length(q.max_seq_length)
        out.append(Threshold(f"Pairs longer than max_seq_length {q.max_seq_length}", "0", str(over), over == 0))
    if stats.scores:
        low = sum(1 for s in stats.scores if s < q.judge_threshold)
        out.append(Threshold(f"Judged pairs below score {q.judge_threshold:g}", "0", str(low), low == 0))
    out.append(Threshold("System prompt on some pairs and not others", "never", "never (one rule on export)", True))
    return out


def _quality_report_lines(report: Any) -> list[str]:
    """The quality package's own targets over the whole project (every status), when it offers them."""
    thresholds = getattr(report, "thresholds", None)
    if not thresholds:
        return []
    rows = [
        (getattr(t, "name", ""), getattr(t, "target", ""), getattr(t, "value", ""), getattr(t, "status", ""),
         getattr(t, "message", ""))
        for t in thresholds
    ]
    lines = ["### Project quality report (every pair in the project, any status)", "",
             *_table(["Target", "Wanted", "Actual", "Status", "Detail"], rows)]
    warnings = list(getattr(report, "composition_warnings", []) or []) + list(
        getattr(report, "consistency_warnings", []) or []
    )
    if warnings:
        lines += [*[f"- {w}" for w in warnings], ""]
    return lines


def _diversity_lines(stats: ExportStats) -> list[str]:
    """Openers per kind and mode, distinct-2 and length spread of the exported instructions, with warnings."""
    report = stats.diversity()
    if not report.instructions:
        return []
    rows = [(g.kind, g.mode, g.pairs, f'"{g.opener}"', f"{g.share:.0%}", f"{g.length_mean:.1f}", f"{g.length_cv:.2f}")
            for g in report.groups]
    lines = ["### Diversity of instructions", "",
             *_table(["Kind", "Mode", "Pairs", "Commonest opener", "Share", "Mean words", "Length spread"], rows),
             f"Distinct-2: {report.distinct_2:.2f} ({report.distinct_bigrams} distinct of {report.bigrams} bigrams); "
             f"{report.distinct_2_rarefied:.2f} per 1000 bigrams, the figure comparable across dataset sizes. "
             f"Length spread over all instructions: {report.length_cv:.2f} (stdev over mean of their words).", ""]
    if report.warnings:
        lines += [*[f"- {w}" for w in report.warnings], ""]
    else:
        lines += ["No diversity warning: no opener holds more than half of a kind and mode, wording and lengths vary.", ""]
    return lines


def _review_lines(store: Store) -> list[str]:
    """The verdict of the project's 20-pair review sample (more than 2 failed: not ready)."""
    verdict = review_verdict(store)
    lines = ["### Review sample", "", f"{verdict.message.rstrip('.')}."]
    if verdict.failed_ids:
        lines.append("Failed pairs: " + ", ".join(f"#{i}" for i in verdict.failed_ids) + ".")
    return [*lines, ""]


def _recipe_lines(recipes: RecipeInputs | None) -> list[str]:
    if recipes is None:
        return []
    return [
        f"Training scripts: `train_trl.py` (TRL `SFTTrainer` with LoRA via peft) and `train_unsloth.py` (the same "
        f"recipe on Unsloth), both reading the `{recipes.source_format}` files, fine-tuning `{recipes.base_model}` "
        f"(`--model` changes it) with its chat template, `max_length` {recipes.max_length} (the p95 token length, "
        "rounded up to a multiple of 64), evaluating on the validation split and stopping early on eval loss.",
        "",
    ]


def _trial_lines(trial: TrialDraw) -> list[str]:
    kinds = sorted(set(trial.full_kinds) | set(trial.trial_kinds), key=lambda k: -trial.full_kinds.get(k, 0))
    full_total = sum(trial.full_kinds.values())
    rows = [(k, trial.full_kinds.get(k, 0), _share(trial.full_kinds.get(k, 0), full_total),
             trial.trial_kinds.get(k, 0), _share(trial.trial_kinds.get(k, 0), trial.drawn)) for k in kinds]
    splits = sorted(set(trial.full_splits) | set(trial.trial_splits))
    rows += [(f"split: {s}", trial.full_splits.get(s, 0), _share(trial.full_splits.get(s, 0), full_total),
              trial.trial_splits.get(s, 0), _share(trial.trial_splits.get(s, 0), trial.drawn)) for s in splits]
    return [
        "## Trial subset", "", trial.method(), "",
        "Train on this subset first, test the result, then grow the dataset where the model fails. The dataset "
        "size targets under Thresholds are for the full set; a trial subset is meant to miss them.", "",
        *_table(["Kind / split", "Full set", "Share", "Trial subset", "Share"], rows),
    ]


def _refusal_sources_line(sources: Counter[str]) -> str:
    from engine.generate.refusals import describe_refusal_sources

    return describe_refusal_sources(sources)


def render_card(
    store: Store,
    options: ExportOptions,
    stats: ExportStats,
    files: Sequence[ExportedFile],
    *,
    notes: Sequence[str] = (),
    skipped: dict[str, int] | None = None,
    quality_report: Any = None,
    trial: TrialDraw | None = None,
    recipes: RecipeInputs | None = None,
) -> str:
    """The whole ``README.md`` text of an export (a trial subset's says so, and how it was drawn)."""
    name = store.settings.name
    total = stats.total
    formats = [f for f in options.formats]
    documents = store.list_documents()
    yaml = [
        "---",
        f"pretty_name: {_q(name)}",
        "language:",
        f"- {guess_dataset_language(stats)}",
        "license: other",
        "task_categories:",
        "- text-generation",
        "size_categories:",
        f"- {size_category(total)}",
        "tags:",
        "- pairforge",
        "- synthetic",
        "- instruction-tuning",
        "- fine-tuning",
        *(["- trial-subset"] if trial is not None else []),
        "configs:",
    ]
    by_format: dict[str, list[ExportedFile]] = {}
    for exported in files:
        by_format.setdefault(exported.format, []).append(exported)
    first = True
    for fmt in formats:
        entries = by_format.get(fmt, [])
        if not entries:
            continue
        yaml.append(f"- config_name: {fmt}")
        if first:
            yaml.append("  default: true")
            first = False
        yaml.append("  data_files:")
        for exported in entries:
            yaml += [f"  - split: {exported.split}", f"    path: {_q(exported.path.as_posix())}"]
    yaml.append("---")

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    statuses = " and ".join(s.value for s in options.statuses)
    body = [
        f"# {name}" + (" (trial subset)" if trial is not None else ""),
        "",
        *([f"**Trial subset**: {total} of the {trial.eligible} pairs the full export holds, to train on "
           "before scaling up; see Trial subset below.", ""] if trial is not None else []),
        f"A fine-tuning dataset of {total} conversation(s) built with PairForge from the project's own "
        f"documents, exported {now}. It holds the {statuses} pairs"
        + (f" of kind {', '.join(k.value for k in options.kinds)}" if options.kinds else "")
        + (f" in mode {', '.join(options.modes)}" if options.modes else "")
        + ".",
        "",
        "## Files",
        "",
        *_table(["Format", "Split", "Path", "Rows"],
                [(_FORMAT_TITLES.get(f.format, f.format), f.split, f"`{f.path.as_posix()}`", f.rows) for f in files]),
        "Trainer configs: `dataset_info.json` (LLaMA-Factory, set `dataset_dir` to this folder) and "
        "`axolotl-datasets.yml` (Axolotl `datasets:` and `test_datasets:` entries).",
        "",
        *_recipe_lines(recipes),
        "## Conventions",
        "",
        ("- System prompt: every conversation starts with the same system prompt: "
         f"{_q(options.system_prompt)}." if options.system_prompt is not None
         else "- System prompt: none; every system turn was removed, so no pair has one."),
        "- Context: Alpaca rows keep a pair's context in `input`; every chat format (and Alpaca rows with "
        "`history`) folds it into the first user turn as the instruction, a blank line, then the context.",
        "- Turns always alternate user and assistant and end with the assistant's answer.",
        "",
        "## Split",
        "",
        *_table(["Split", "Pairs", "Share"], [(s, n, _share(n, total)) for s, n in sorted(stats.splits.items())]),
    ]
    if trial is not None:
        body += _trial_lines(trial)
    body += ["## Composition", "", *_counter_table("kind", stats.kinds, total),
             *_counter_table("mode", stats.modes, total), *_counter_table("status", stats.statuses, total)]
    if stats.refusal_sources:
        body += ["### Refusal topics", "",
                 f"{_refusal_sources_line(stats.refusal_sources)}. A model-proposed topic is kept only when it is a "
                 "real noun phrase, not a piece of the prompt or a document's name, and absent from the documents.", ""]
    body += ["### By source document", "",
             *_table(["Document", "Pairs"], [(d, n) for d, n in stats.documents.most_common(50)])]
    if len(stats.documents) > 50:
        body += [f"({len(stats.documents) - 50} more document(s) not listed.)", ""]
    body += [f"Multi-turn conversations: {stats.multi_turn}. Pairs with a context: {stats.with_context}.", ""]
    if stats.warnings:
        body += ["### Quality warnings still on exported pairs", "",
                 *_table(["Check", "Pairs"], stats.warnings.most_common())]

    body += ["## Thresholds", "", *_table(
        ["Target", "Wanted", "Actual", "Result"],
        [(t.name, t.target, t.actual, "met" if t.met else "**missed**")
         for t in dataset_thresholds(store, stats, len(documents))],
    )]
    body += _quality_report_lines(quality_report)
    body += _diversity_lines(stats)
    body += _review_lines(store)

    body += ["## Tokens", ""]
    summary = stats.token_summary()
    if summary:
        counter = stats.token_counter
        label = getattr(counter, "name", "tokenizer")
        body += [f"Counted with {label}, chat framing included.", "",
                 *_table(["Min", "Mean", "Median", "p95", "p99", "Max"], [tuple(summary.values())]),
                 f"Recommended `max_seq_length`: **{stats.recommended_max_seq_length()}** (holds every "
                 f"conversation; the project's setting is {store.settings.quality.max_seq_length}).", ""]
    else:
        body += ["No token counts are available.", ""]

    body += ["## Generation", "", *_table(
        ["Backend", "Model", "Prompt version", "Pairs"],
        [(*key, n) for key, n in stats.models.most_common()],
    )]
    if stats.scores:
        mean = sum(stats.scores) / len(stats.scores)
        body += ["## Judge scores", "", f"{len(stats.scores)} pair(s) scored by the local judge; mean {mean:.2f}.", "",
                 *_table(["Score", "Pairs"], stats.score_histogram())]

    body += ["## Pipeline log", "", "What each step of the pipeline did, over the project's whole history.", ""]
    log_rows = [(r["step"], r["action"], r["total"], r["entries"]) for r in store.log_summary()]
    body += _table(["Step", "Action", "Items", "Times"], log_rows) if log_rows else ["Nothing logged yet.", ""]
    if skipped:
        body += ["### Left out of this export", "", *_table(["Reason", "Pairs"], sorted(skipped.items()))]
    if notes:
        body += ["## Notes", "", *[f"- {note}" for note in notes], ""]
    return "\n".join([*yaml, "", *body]).rstrip() + "\n"
