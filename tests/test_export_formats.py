"""Export formats checked by the libraries that read them: datasets, a real tokenizer, the importer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from engine.cli import main
from engine.export import ExportOptions, export_dataset
from engine.models import Pair, PairStatus, Role, Severity
from engine.store import Store
from tests.test_export_support import build_project

TOKENIZER_DIR = Path(__file__).parent / "data" / "tokenizer"

# Keys each trainer's loader reads, from their documentation:
# LLaMA-Factory data/README.md: Alpaca rows instruction/input/output/system/history, with
# "columns" prompt/query/response/system/history; ShareGPT rows "conversations" of from/value with
# formatting "sharegpt" and tags role_tag/content_tag/user_tag/assistant_tag/system_tag.
LLAMA_FACTORY_ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "history": "history"}
LLAMA_FACTORY_SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                               "assistant_tag": "gpt", "system_tag": "system"}
LLAMA_FACTORY_MESSAGES_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                               "assistant_tag": "assistant", "system_tag": "system"}
# Axolotl docs (dataset formats): type alpaca reads instruction/input/output; type chat_template reads
# field_messages with message_property_mappings role/content.
AXOLOTL_ALPACA_KEYS = {"instruction", "input", "output"}


@pytest.fixture
def exported(project: Store, tmp_path: Path) -> tuple[Store, Path, list[Pair]]:
    pairs = build_project(project)
    out = tmp_path / "out"
    export_dataset(project, out, ExportOptions(formats=["all"]))
    return project, out, pairs


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _accepted(pairs: list[Pair], split: str) -> list[Pair]:
    return [p for p in pairs if p.status is PairStatus.ACCEPTED and p.split == split]


def test_every_format_written_per_split_with_matching_row_counts(exported):
    store, out, pairs = exported
    for split in ("train", "validation"):
        expected = len(_accepted(pairs, split))
        assert expected > 0
        for fmt in ("messages", "alpaca", "sharegpt", "completion"):
            assert len(_jsonl(out / fmt / f"{split}.jsonl")) == expected, (fmt, split)
    assert (out / "README.md").is_file()
    assert (out / "dataset_info.json").is_file()
    assert (out / "axolotl-datasets.yml").is_file()
    assert store.log_tail(1, step="export")[0].count == len([p for p in pairs if p.status is PairStatus.ACCEPTED])


def test_datasets_json_loader_reads_each_jsonl(exported, tmp_path):
    from datasets import load_dataset

    _, out, pairs = exported
    columns = {
        "messages": {"messages"},
        "alpaca": {"instruction", "input", "output", "history"},
        "sharegpt": {"conversations"},
        "completion": {"prompt", "completion"},
    }
    for fmt, expected_columns in columns.items():
        files = {s: str(out / fmt / f"{s}.jsonl") for s in ("train", "validation")}
        loaded = load_dataset("json", data_files=files, cache_dir=str(tmp_path / "cache"))
        for split in ("train", "validation"):
            assert set(loaded[split].column_names) == expected_columns, fmt
            assert loaded[split].num_rows == len(_accepted(pairs, split))


def test_hf_output_loads_from_disk_and_parquet_with_metadata(exported):
    import pyarrow.parquet as pq
    from datasets import load_from_disk

    _, out, pairs = exported
    dataset = load_from_disk(str(out / "hf" / "dataset"))
    assert set(dataset) == {"train", "validation"}
    by_id = {p.id: p for p in pairs}
    train = dataset["train"]
    assert set(train.column_names) == {"id", "messages", "kind", "mode", "sources", "status", "warnings", "score"}
    assert train.num_rows == len(_accepted(pairs, "train"))
    for row in train:
        pair = by_id[row["id"]]
        assert row["kind"] == pair.kind.value and row["mode"] == pair.mode
        assert row["sources"] == pair.sources
        assert row["warnings"] == [w.check for w in pair.warnings]
        assert row["score"] == pair.score
        assert row["messages"][-1] == {"role": "assistant", "content": pair.response}
    assert pq.read_table(out / "hf" / "parquet" / "validation.parquet").num_rows == len(_accepted(pairs, "validation"))


def _tokenizer():
    from transformers import PreTrainedTokenizerFast

    config = json.loads((TOKENIZER_DIR / "tokenizer_config.json").read_text())
    return PreTrainedTokenizerFast(tokenizer_file=str(TOKENIZER_DIR / "tokenizer.json"),
                                   chat_template=config["chat_template"], eos_token=config["eos_token"])


def test_chat_template_renders_every_messages_row(project, tmp_path):
    build_project(project)
    out = tmp_path / "out"
    export_dataset(project, out, ExportOptions(formats=["messages"], system_prompt="Answer as the Tidewater guide."))
    tokenizer = _tokenizer()
    rows = _jsonl(out / "messages" / "train.jsonl") + _jsonl(out / "messages" / "validation.jsonl")
    for row in rows:
        text = tokenizer.apply_chat_template(row["messages"], tokenize=False)
        ids = tokenizer.apply_chat_template(row["messages"], tokenize=True)
        assert len(ids) > 0
        for message in row["messages"]:
            assert message["content"] in text
        assert row["messages"][0] == {"role": "system", "content": "Answer as the Tidewater guide."}


def test_system_prompt_rule_is_all_or_none(project, tmp_path):
    build_project(project)
    export_dataset(project, tmp_path / "none", ExportOptions(formats=["messages", "sharegpt", "alpaca"]))
    for row in _jsonl(tmp_path / "none" / "messages" / "train.jsonl"):
        assert all(m["role"] != "system" for m in row["messages"])
    for row in _jsonl(tmp_path / "none" / "alpaca" / "train.jsonl"):
        assert "system" not in row
    export_dataset(project, tmp_path / "given", ExportOptions(formats=["sharegpt", "alpaca"], system_prompt="Be brief."))
    for row in _jsonl(tmp_path / "given" / "sharegpt" / "train.jsonl"):
        systems = [t for t in row["conversations"] if t["from"] == "system"]
        assert systems == [{"from": "system", "value": "Be brief."}] and row["conversations"][0] == systems[0]
    assert all(r["system"] == "Be brief." for r in _jsonl(tmp_path / "given" / "alpaca" / "train.jsonl"))


def test_context_kept_in_alpaca_input_and_folded_into_chat_user_turn(exported):
    _, out, pairs = exported
    single = next(p for p in _accepted(pairs, "train") if p.context and len(p.messages) <= 3)
    alpaca = next(r for r in _jsonl(out / "alpaca" / "train.jsonl") if r["instruction"] == single.instruction)
    assert alpaca["input"] == single.context and alpaca["history"] == []
    chat = next(r for r in _jsonl(out / "messages" / "train.jsonl")
                if r["messages"][0]["content"].startswith(single.instruction))
    assert chat["messages"][0]["content"] == f"{single.instruction}\n\n{single.context}"


def test_multi_turn_goes_to_alpaca_history_and_sharegpt_roles(exported):
    _, out, pairs = exported
    multi = next(p for p in _accepted(pairs, "train") if len([m for m in p.messages if m.role is Role.USER]) == 2)
    users = [m.content for m in multi.messages if m.role is Role.USER]
    answers = [m.content for m in multi.messages if m.role is Role.ASSISTANT]
    row = next(r for r in _jsonl(out / "alpaca" / "train.jsonl") if r["instruction"] == users[1])
    assert row["output"] == answers[1]
    assert row["history"] == [[users[0] if not multi.context else f"{users[0]}\n\n{multi.context}", answers[0]]]
    share = next(r for r in _jsonl(out / "sharegpt" / "train.jsonl") if r["conversations"][-1]["value"] == answers[1])
    assert [t["from"] for t in share["conversations"]] == ["human", "gpt", "human", "gpt"]


def test_trainer_configs_carry_the_loader_keys(exported):
    _, out, _ = exported
    info = json.loads((out / "dataset_info.json").read_text())
    alpaca = next(v for k, v in info.items() if k.endswith("_alpaca_train"))
    assert alpaca["file_name"] == "alpaca/train.jsonl"
    assert LLAMA_FACTORY_ALPACA_COLUMNS.items() <= alpaca["columns"].items()
    assert "system" not in alpaca["columns"]  # no system column was written
    sharegpt = next(v for k, v in info.items() if k.endswith("_sharegpt_validation"))
    assert sharegpt["formatting"] == "sharegpt" and sharegpt["columns"] == {"messages": "conversations"}
    assert sharegpt["tags"] == LLAMA_FACTORY_SHAREGPT_TAGS
    messages = next(v for k, v in info.items() if k.endswith("_messages_train"))
    assert messages["formatting"] == "sharegpt" and messages["tags"] == LLAMA_FACTORY_MESSAGES_TAGS
    for entry in info.values():
        assert (out / entry["file_name"]).is_file()
    row = _jsonl(out / "alpaca" / "train.jsonl")[0]
    assert row.keys() >= AXOLOTL_ALPACA_KEYS

    axolotl = yaml.safe_load((out / "axolotl-datasets.yml").read_text())
    by_path = {Path(d["path"]).relative_to(out).as_posix(): d for d in axolotl["datasets"]}
    assert by_path["alpaca/train.jsonl"]["type"] == "alpaca"
    assert by_path["messages/train.jsonl"]["type"] == "chat_template"
    assert by_path["messages/train.jsonl"]["field_messages"] == "messages"
    sg = by_path["sharegpt/train.jsonl"]
    assert sg["type"] == "chat_template" and sg["field_messages"] == "conversations"
    assert sg["message_property_mappings"] == {"role": "from", "content": "value"}
    assert by_path["completion/train.jsonl"]["type"]["field_output"] == "completion"
    assert {Path(d["path"]).name for d in axolotl["test_datasets"]} == {"validation.jsonl"}
    for entry in axolotl["datasets"] + axolotl["test_datasets"]:
        assert Path(entry["path"]).is_file() and entry["ds_type"] == "json"


def test_card_has_hub_header_and_every_section(exported):
    _, out, _ = exported
    text = (out / "README.md").read_text()
    _, header, body = text.split("---\n", 2)
    meta = yaml.safe_load(header)
    assert meta["task_categories"] == ["text-generation"] and meta["size_categories"] == ["n<1K"]
    assert meta["language"] == ["en"] and "pairforge" in meta["tags"]
    messages_config = next(c for c in meta["configs"] if c["config_name"] == "messages")
    assert {d["split"]: d["path"] for d in messages_config["data_files"]} == {
        "train": "messages/train.jsonl", "validation": "messages/validation.jsonl"}
    for section in ("## Composition", "### By kind", "### By mode", "### By source document", "## Thresholds",
                    "## Tokens", "Recommended `max_seq_length`", "## Split", "## Generation", "## Judge scores",
                    "## Pipeline log"):
        assert section in body, section
    assert "qwen2.5:7b-instruct" in body and "multi_hop-v2" in body
    assert "| dedup | removed | 3 | 1 |" in body
    assert "| Refusal pairs | >= 60 |" in body and "**missed**" in body
    assert "guides/pumps.md" in body
    assert "### Diversity of instructions" in body and "Distinct-2: " in body and "| Commonest opener |" in body


def test_filters_and_severity_exclusion(project, tmp_path):
    pairs = build_project(project)
    result = export_dataset(project, tmp_path / "o", ExportOptions(
        formats=["messages"], include_pending=True, exclude_severities=[Severity.ERROR],
        kinds=["refusal", "multi_hop"]))
    expected = [p for p in pairs if p.status is not PairStatus.REJECTED and p.kind.value in {"refusal", "multi_hop"}
                and not any(w.severity is Severity.ERROR for w in p.warnings)]
    assert result.exported == len(expected)
    assert result.skipped["has a warning of severity error"] == len(
        [p for p in pairs if p.status is not PairStatus.REJECTED and p.kind.value in {"refusal", "multi_hop"}
         and any(w.severity is Severity.ERROR for w in p.warnings)])
    one_mode = export_dataset(project, tmp_path / "m", ExportOptions(formats=["alpaca"], modes=["thinker"]))
    assert one_mode.exported == len([p for p in pairs if p.status is PairStatus.ACCEPTED and p.mode == "thinker"])


def test_split_computed_when_none_stored(project, tmp_path):
    build_project(project, split=False)
    result = export_dataset(project, tmp_path / "o", ExportOptions(formats=["messages"]))
    assert set(result.split_sizes) == {"train", "validation"} or any("split" in n for n in result.notes)
    assert result.notes


def test_nothing_to_export_is_one_clear_sentence(project, tmp_path):
    from engine.errors import ExportError

    build_project(project)
    with pytest.raises(ExportError, match="pass --include-pending"):
        export_dataset(project, tmp_path / "o", ExportOptions(kinds=["imported"]))
    assert not (tmp_path / "o").exists()


def test_round_trip_through_the_importer(exported, tmp_path):
    ingest = pytest.importorskip("engine.ingest")
    _, out, pairs = exported
    accepted = {p.id: p for p in pairs if p.status is PairStatus.ACCEPTED}

    def expected_turns(pair: Pair) -> list[tuple[str, str]]:
        turns = [(m.role.value, m.content) for m in pair.messages if m.role is not Role.SYSTEM]
        if pair.context:
            turns[0] = ("user", f"{turns[0][1]}\n\n{pair.context}")
        return turns

    wanted = sorted(expected_turns(p) for p in accepted.values())
    for fmt in ("messages", "sharegpt", "alpaca"):
        target = Store.init(tmp_path / f"import-{fmt}")
        ingest.import_paths(target, [out / fmt / "train.jsonl", out / fmt / "validation.jsonl"])
        back = list(target.iter_pairs())
        got = sorted(
            [(m.role.value, m.content) for m in p.messages]
            if not p.context else
            [("user", f"{p.messages[0].content}\n\n{p.context}")] + [(m.role.value, m.content) for m in p.messages[1:]]
            for p in back
        )
        assert got == wanted, fmt
        if fmt == "alpaca":
            assert sum(1 for p in back if p.context) == sum(1 for p in accepted.values()
                                                            if p.context and len(expected_turns(p)) == 2)
        target.close()


def test_cli_export_all_writes_every_format_card_and_configs(project, tmp_path):
    build_project(project)
    out = tmp_path / "cli-out"
    runner = CliRunner()
    result = runner.invoke(main, ["--project", str(project.root), "export", str(out), "--format", "all", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {f["format"] for f in data["files"]} == {"messages", "alpaca", "sharegpt", "completion", "hf"}
    assert Path(data["card"]).is_file() and all(Path(p).is_file() for p in data["trainer_configs"])
    again = runner.invoke(main, ["--project", str(project.root), "export", str(out)])
    assert again.exit_code == 1 and "--force" in again.output and "Traceback" not in again.output
    forced = runner.invoke(main, ["--project", str(project.root), "export", str(out), "--force",
                                  "--system-prompt", "Be kind.", "--format", "messages"])
    assert forced.exit_code == 0, forced.output
    assert "Dataset card" in forced.output
    assert not (out / "alpaca").exists()  # the old export was replaced, not merged


def test_fast_lines_equal_json_dumps_of_each_row():
    """Every format's line is built from once-encoded turns; it must equal json.dumps of the row,
    escapes included (quotes, backslashes, control characters, non-ASCII, line separators)."""
    import random

    from engine.export.rows import LINE_BUILDERS, Conversation, row_line

    rnd = random.Random(5)
    alphabet = ["a", "Z", " ", '"', "\\", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "é", "«", "\u2028", "😀", "/"]

    def text() -> str:
        return "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 10)))

    checked = 0
    for _ in range(3000):
        turns = [(rnd.choice(["system", "user", "assistant"]), text()) for _ in range(rnd.randint(1, 7))]
        conv = Conversation.from_turns(turns, rnd.choice([None, "", "  ", text()]), rnd.choice([None, text()]))
        if conv is None:
            continue
        for fmt, build in LINE_BUILDERS.items():
            assert build(conv) == row_line(fmt, conv)
        checked += 1
    assert checked > 500
