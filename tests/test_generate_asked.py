"""The generation prompt of a chunk lists the questions the chunk already has, capped to fit the context.

The Ollama stand-in (``tests/fake_ollama.py``) records every request; the real ``ollama`` client
talks to it over HTTP, and the questions come from the real store.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engine.generate import backends_from_settings, generation_runner
from engine.generate.prompts import ASKED_HEADER, MAX_ASKED_QUESTIONS, asked_block, load_packs
from engine.models import Job, Pair, PairKind, PairStatus
from engine.store import Store
from tests.fake_ollama import FakeOllama, fake_ollama
from tests.test_generate_corpus import load_sample_corpus


@pytest.fixture
def server() -> Iterator[FakeOllama]:
    with fake_ollama() as srv:
        yield srv


def _user_prompts(server: FakeOllama) -> list[str]:
    return [next(m["content"] for m in r.body["messages"] if m["role"] == "user") for r in server.requests_to("/api/chat")]


async def _run(store: Store, server: FakeOllama, jobs: list[Job]) -> Any:
    run_id, _ = store.create_run("generate", {}, jobs)
    backends = backends_from_settings(store.settings, backend="ollama", model="llama3.2:3b", hosts=[server.url])
    return await generation_runner(store, backends, concurrency_per_host=1, retry_base_s=0.01).run(run_id)


async def test_a_second_job_on_a_chunk_is_told_the_first_ones_question(project: Store, server: FakeOllama) -> None:
    store = load_sample_corpus(project)
    chunk = store.list_chunks()[3]
    first = await _run(store, server, [Job(kind=PairKind.INSTRUCTION, mode="factual", chunk_ids=[chunk.id or 0])])
    assert first.pairs == 1 and ASKED_HEADER not in _user_prompts(server)[0]
    question = next(p.instruction for p in store.iter_pairs() if p.origin.job_id is not None)
    server.reset_stats()
    second = await _run(store, server, [Job(kind=PairKind.THINKING, mode="developer", chunk_ids=[chunk.id or 0])])
    assert second.pairs == 1
    prompt = _user_prompts(server)[0]
    assert f"{ASKED_HEADER}\n- {' '.join(question.split())}" in prompt
    # Another chunk's prompt lists nothing.
    other = store.list_chunks()[5]
    server.reset_stats()
    await _run(store, server, [Job(kind=PairKind.INSTRUCTION, mode="factual", chunk_ids=[other.id or 0])])
    assert ASKED_HEADER not in _user_prompts(server)[0]


def test_questions_listed_are_the_newest_distinct_ones_and_leave_rejected_out(project: Store) -> None:
    store = load_sample_corpus(project)
    chunk = store.list_chunks()[3]
    made = store.add_pairs([
        Pair.simple(f"Question number {n} about leases?", "An answer about leases.", sources=[chunk.id or 0])
        for n in range(12)
    ] + [Pair.simple("Question number 11 about leases?", "Asked twice.", sources=[chunk.id or 0])])
    store.set_status([made[10].id or 0], PairStatus.REJECTED)
    asked = store.pairs.questions_citing([chunk.id or 0], MAX_ASKED_QUESTIONS)
    assert asked == ["Question number 11 about leases?", *[f"Question number {n} about leases?" for n in range(9, 2, -1)]]


def test_the_list_is_capped_in_count_characters_and_context() -> None:
    questions = [f"How does setting number {n} change   the way\nleases renew?" for n in range(20)]
    block = asked_block(questions)
    lines = block.splitlines()
    assert lines[0] == ASKED_HEADER and len(lines) == 1 + MAX_ASKED_QUESTIONS
    assert lines[1] == "- How does setting number 0 change the way leases renew?"
    long = asked_block(["word " * 100])
    assert len(long.splitlines()[1]) <= 202 and long.endswith("...")
    assert len(asked_block(questions, max_chars=200)) <= 200
    assert asked_block(questions, max_chars=50) == ""


async def test_a_small_context_window_drops_the_list_not_the_source(project: Store, server: FakeOllama) -> None:
    store = load_sample_corpus(project)
    chunk = max(store.list_chunks(), key=lambda c: len(c.text))
    store.add_pairs([Pair.simple("What is already asked here?", "Something.", sources=[chunk.id or 0])])
    pack = load_packs()["factual"]
    store.override_settings({"generation": {"num_ctx": 512, "num_predict": 16 + len(chunk.text + pack.generator) // 10}})
    await _run(store, server, [Job(kind=PairKind.INSTRUCTION, mode="factual", chunk_ids=[chunk.id or 0])])
    prompt = _user_prompts(server)[0]
    assert ASKED_HEADER not in prompt and chunk.text[:200] in prompt


def test_a_pack_places_the_list_where_its_template_says() -> None:
    pack = load_packs()["factual"]
    templated = pack.model_copy(update={"templates": {**pack.templates, "instruction": pack.templates["instruction"].model_copy(
        update={"prompt": "Already asked:\n{asked}\n\nSource:\n<<<\n{source}\n>>>\nWrite a question."})}})
    block = asked_block(["What is a lease?"])
    text = templated.render("instruction", {"source": "Leases last 30 s.", "asked": block})
    assert text.index(ASKED_HEADER) < text.index("Source:") and text.count(ASKED_HEADER) == 1
    appended = pack.render("instruction", {"source": "Leases last 30 s.", "asked": block})
    assert appended.rstrip().endswith("- What is a lease?")
    assert ASKED_HEADER not in pack.render("instruction", {"source": "Leases last 30 s."})
