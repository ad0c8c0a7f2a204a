"""The generation planner and the prompt packs it relies on."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from engine.errors import ConfigError, PairForgeError
from engine.generate.planner import (
    allocate_chunk_slots,
    guide_target,
    make_plan,
    parse_mix,
    save_plan,
)
from engine.generate.prompts import load_packs
from engine.models import Chunk
from engine.store import Store
from tests.test_generate_corpus import load_sample_corpus


@pytest.fixture
def corpus(project: Store) -> Store:
    return load_sample_corpus(project)


def test_guide_target_follows_the_table_and_the_minimum() -> None:
    assert guide_target(1) == 1000
    assert guide_target(12) == 1467
    assert guide_target(20) == 2000
    assert guide_target(50) == 5000
    assert guide_target(80) == 8000


def test_plan_for_1000_meets_the_minimums_and_covers_every_document(corpus: Store) -> None:
    plan = make_plan(corpus, target=1000)
    assert len(plan.jobs) == 1000 == sum(plan.composition.values())
    kinds = Counter(str(job.kind) for job in plan.jobs)
    assert kinds["refusal"] >= 60 and kinds["multi_hop"] >= 20
    assert kinds["thinking"] > 0 and kinds["clarification"] > 0
    assert max(kinds.values()) <= 0.8 * 1000
    planned_docs = {d.id for d in corpus.list_documents() if d.format != "dataset"}
    assert {d.document_id for d in plan.documents} == planned_docs
    assert all(d.jobs > 0 for d in plan.documents)
    # Modes balanced within each kind.
    for by_mode in plan.composition_by_mode.values():
        assert max(by_mode.values()) - min(by_mode.values()) <= 1


def test_every_chunk_is_used_and_longer_chunks_get_more_pairs(corpus: Store) -> None:
    plan = make_plan(corpus, target=1000)
    per_chunk: Counter[int] = Counter()
    for job in plan.jobs:
        if str(job.kind) in ("instruction", "thinking", "clarification"):
            per_chunk[job.chunk_ids[0]] += 1
    chunks = [c for c in corpus.list_chunks()]
    assert all(per_chunk[c.id or 0] >= 1 for c in chunks)
    longest = max(chunks, key=lambda c: len(c.text))
    shortest = min(chunks, key=lambda c: len(c.text))
    assert per_chunk[longest.id or 0] > per_chunk[shortest.id or 0]


def test_multi_hop_jobs_join_chunks_of_two_documents_and_refusals_have_none(corpus: Store) -> None:
    plan = make_plan(corpus, target=1000)
    doc_of = {c.id: c.document_id for c in corpus.list_chunks()}
    for job in plan.jobs:
        if str(job.kind) == "multi_hop":
            assert len(job.chunk_ids) == 2
            assert doc_of[job.chunk_ids[0]] != doc_of[job.chunk_ids[1]]
        if str(job.kind) == "refusal":
            assert job.chunk_ids == []


def test_default_target_uses_the_guide_and_datasets_are_not_planned(corpus: Store) -> None:
    plan = make_plan(corpus)
    documents = [d for d in corpus.list_documents() if d.format != "dataset" and d.n_chunks]
    assert plan.target == guide_target(len(documents))
    assert all(d.path.endswith(".jsonl") is False for d in plan.documents)


def test_small_target_caps_minimums_with_a_note(corpus: Store) -> None:
    plan = make_plan(corpus, target=20)
    assert sum(plan.composition.values()) == 20
    assert any("capped" in note for note in plan.notes)


def test_save_plan_queues_jobs(corpus: Store) -> None:
    plan = make_plan(corpus, target=50, modes=["factual"])
    run_id = save_plan(corpus, plan)
    assert corpus.job_counts(run_id)["queued"] == 50
    assert {j.mode for j in corpus.list_jobs(run_id=run_id)} == {"factual"}


def test_mix_parsing_and_errors() -> None:
    assert parse_mix("refusal=0.1, multi_hop=0.05") == {"refusal": 0.1, "multi_hop": 0.05}
    with pytest.raises(ConfigError, match="KIND=SHARE"):
        parse_mix("bogus=0.1")
    with pytest.raises(ConfigError, match="not a number"):
        parse_mix("refusal=lots")


def test_empty_project_says_what_to_do(project: Store) -> None:
    with pytest.raises(PairForgeError, match="pairforge import"):
        make_plan(project)


def test_unknown_mode_names_the_fix(corpus: Store) -> None:
    with pytest.raises(ConfigError, match=r"prompts/poet\.toml"):
        make_plan(corpus, target=10, modes=["poet"])


def test_allocation_spreads_few_slots_over_every_document() -> None:
    chunks = {d: [Chunk(id=d * 10 + i, document_id=d, ordinal=i, text="x" * (100 * (i + 1)), start=0, end=1)
                  for i in range(5)] for d in (1, 2, 3)}
    slots = allocate_chunk_slots(chunks, 4)
    assert len(slots) == 4 and {c.document_id for c in slots} == {1, 2, 3}


def test_packs_load_with_versions_and_project_overrides(project: Store) -> None:
    packs = load_packs(project.root)
    assert {"developer", "thinker", "factual"} <= set(packs)
    assert packs["factual"].prompt_version == "factual@1.0"
    folder = Path(project.root) / "prompts"
    folder.mkdir()
    text = (Path(__file__).parent.parent / "engine/generate/packs/factual.toml").read_text()
    (folder / "factual.toml").write_text(text.replace('version = "1.0"', 'version = "2.1"'))
    (folder / "poet.toml").write_text(text.replace('name = "factual"', 'name = "poet"'))
    packs = load_packs(project.root)
    assert packs["factual"].prompt_version == "factual@2.1"
    assert packs["poet"].prompt_version == "poet@1.0"


def test_bad_pack_names_the_file_and_the_key(project: Store) -> None:
    folder = Path(project.root) / "prompts"
    folder.mkdir()
    text = (Path(__file__).parent.parent / "engine/generate/packs/factual.toml").read_text()
    (folder / "factual.toml").write_text(text.replace("<<<\n{source}", "<<<\n{sauce}", 1))
    with pytest.raises(ConfigError) as info:
        load_packs(project.root)
    message = str(info.value)
    assert "factual.toml" in message and "templates.instruction.prompt" in message and "{sauce}" in message


def test_allocation_fills_every_slot_for_any_target(corpus: Store) -> None:
    for target in range(1, 140, 7):
        plan = make_plan(corpus, target=target)
        assert len(plan.jobs) == target
