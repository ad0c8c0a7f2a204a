"""Refusal topics that are real neighbours, and coverage text a person would write.

Generation runs over real HTTP with the official ``ollama`` client against
``tests/fake_ollama.py`` (no real Ollama can run on the machines that test this
project); its ``refusal_responder`` proposes what a weak model does: pieces of the
prompt, topics the documents cover, and (when asked to) real neighbouring topics,
some with a question about another topic. The manual is libffi's, as texinfo renders
it to HTML (``tests/data/libffi-manual``).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from engine.generate import backends_from_settings, generation_runner, make_plan
from engine.generate.coverage import default_coverage_items, most_shared_phrase
from engine.generate.prompts import load_packs
from engine.generate.refusals import (
    GENERIC_ADJACENT_TOPICS,
    RefusalTopicFilter,
    names_topic,
    noun_phrase_problem,
)
from engine.generate.retrieval import CorpusIndex
from engine.ingest import import_paths  # type: ignore[attr-defined]
from engine.models import Job, Pair, PairKind
from engine.store import Store
from tests.fake_ollama import NEIGHBOUR_TOPICS, FakeOllama, refusal_responder
from tests.test_generate_corpus import load_sample_corpus

MODEL = "llama3.2:3b"
MANUAL = Path(__file__).resolve().parent / "data" / "libffi-manual"
MODES = ("developer", "thinker", "factual")
TAKEN_MARK = "Already taken or invalid"


def import_manual(store: Store, folder: Path) -> Store:
    """The libffi HTML manual (its pages only, copied to ``folder``) imported into ``store``."""
    folder.mkdir()
    for page in MANUAL.glob("*.html"):
        shutil.copy(page, folder / page.name)
    import_paths(store, [folder])
    return store


@pytest.fixture
def manual(project: Store, tmp_path: Path) -> Store:
    return import_manual(project, tmp_path / "libffi")


def _refusals(store: Store, n: int, responder_neighbours: bool) -> tuple[list[Pair], FakeOllama]:
    """Generate ``n`` refusal pairs against the stand-in server; returns them and the server (stopped)."""
    jobs = [
        Job(kind=PairKind.REFUSAL, mode=MODES[i % 3], params={"variant": i, "seed": 7 * i, "refusal_index": i})
        for i in range(n)
    ]
    run_id, _ = store.create_run("generate", {}, jobs)
    with FakeOllama(responder=refusal_responder(neighbours=responder_neighbours)) as server:
        backends = backends_from_settings(store.settings, backend="ollama", model=MODEL, hosts=[server.url])
        summary = asyncio.run(generation_runner(store, backends, concurrency_per_host=2).run(run_id))
    assert summary.ok and summary.pairs == n, summary.message
    return [p for p in store.iter_pairs() if p.kind is PairKind.REFUSAL], server


def _dropped(store: Store) -> list[dict[str, str]]:
    return [d for e in store.log_tail(1000, step="generate") if e.action == "refusal_topic_dropped"
            for d in e.detail["dropped"]]


@pytest.fixture
def topic_filter(manual: Store) -> RefusalTopicFilter:
    chunks = manual.list_chunks()
    return RefusalTopicFilter.build(CorpusIndex.build(chunks), manual.list_documents(), chunks)


INSTRUCTIONS = (
    "You write training examples for a fine-tuned assistant. You return only JSON matching the given schema. "
    "Every answer is complete, correct according to the source. List topics that a user might plausibly ask "
    "about but that it does NOT cover: neighbouring tools, products, platforms or practices."
)


@pytest.mark.parametrize(
    ("topic", "why"),
    [
        ("is complete correct according", "piece of a sentence"),
        ("document says' never", "punctuation"),
        ("the and of", "piece of a sentence"),
        ("it is what", "piece of a sentence"),
        ("What is libffi?", "question"),
        ("neighbouring tools, products", "piece of the prompt"),
        ("fine-tuned assistant", "piece of the prompt"),
        ("Closure-Example.html", "file name"),
        ("html/Thread-Safety.html", "file name"),
        ("Thread Safety", "so the documents cover it"),
        ("2.3.2 Structures", "so the documents cover it"),
        ("closures", "covered"),
        ("ffi_call return values", "covered"),
        ("foreign function interface", "title"),
        ("calling convention", "search over their chunks"),
        ("variadic functions", "search over their chunks"),
        ("closure trampolines", "titles name it"),
    ],
)
def test_fragments_names_and_covered_topics_are_dropped(topic_filter: RefusalTopicFilter, topic: str, why: str) -> None:
    decision = topic_filter.decide(topic, f"Can you tell me about {topic}?", INSTRUCTIONS)
    assert not decision.kept and why in decision.reason, decision


@pytest.mark.parametrize("topic", ["Python ctypes bindings", "SWIG wrapper generation", "Rust bindgen",
                                   "JNI native methods", "CMake toolchain files", "iOS push notifications"])
def test_real_neighbouring_topics_are_kept_with_their_question(topic_filter: RefusalTopicFilter, topic: str) -> None:
    question = f"How would I get going with {topic} for my project?"
    decision = topic_filter.decide(topic, question, INSTRUCTIONS)
    assert decision.kept and decision.question == question and decision.rewritten_from is None, decision


def test_a_name_the_documents_never_use_marks_a_neighbour_among_covered_words(topic_filter: RefusalTopicFilter) -> None:
    assert topic_filter.decide("Haskell FFI imports", "How do Haskell FFI imports work?", INSTRUCTIONS).kept
    assert topic_filter.unseen_name("Haskell FFI imports") == "Haskell"
    for covered in ("FFI closures", "Closure API Types", "ffi_call return types"):
        assert topic_filter.unseen_name(covered) is None
        assert not topic_filter.decide(covered, f"What about {covered}?", INSTRUCTIONS).kept, covered


def test_a_question_about_another_topic_is_asked_again_from_the_topic(topic_filter: RefusalTopicFilter) -> None:
    decision = topic_filter.decide("Rust bindgen", "How do I register JNI native methods?", INSTRUCTIONS)
    assert decision.kept and decision.rewritten_from == "How do I register JNI native methods?"
    assert names_topic(decision.question, "Rust bindgen") and "JNI" not in decision.question
    assert "something else" in decision.reason


def test_a_question_about_what_the_documents_cover_is_asked_again(topic_filter: RefusalTopicFilter) -> None:
    decision = topic_filter.decide("Rust bindgen", "Can Rust bindgen describe libffi closures and structures?",
                                   INSTRUCTIONS)
    assert decision.kept and decision.rewritten_from is not None and "closures" not in decision.question


def test_a_taken_topic_is_dropped(topic_filter: RefusalTopicFilter) -> None:
    decision = topic_filter.decide("Rust  bindgen.", "How do I use Rust bindgen?", INSTRUCTIONS, taken=["rust bindgen"])
    assert not decision.kept and "already taken" in decision.reason


@pytest.mark.parametrize("phrase", ["Kubernetes operator development", "C++ templates", "C# interop", "gRPC",
                                    "the Win32 API", "Terraform state locking", "3D printing settings"])
def test_noun_phrases_pass_the_phrase_check(phrase: str) -> None:
    assert noun_phrase_problem(phrase) is None


def test_a_model_offering_only_fragments_and_covered_topics_gets_none_kept(manual: Store) -> None:
    """Every proposal is dropped and said why; the model is asked again with them listed; the fallback list fills in."""
    pairs, server = _refusals(manual, 6, responder_neighbours=False)
    assert {p.origin.refusal_source for p in pairs} == {"fallback"}
    assert all(p.origin.refusal_topic in GENERIC_ADJACENT_TOPICS for p in pairs)
    dropped = _dropped(manual)
    reasons = " ".join(d["reason"] for d in dropped)
    assert "piece of the prompt" in reasons and "not a topic name" in reasons and "so the documents cover it" in reasons
    assert len(manual.log_tail(100, step="generate")) >= 12
    assert sum(e.count for e in manual.log_tail(100, step="generate") if e.action == "refusal_fallback") == 6
    # Each job asked a second time, listing what its first round proposed.
    follow_ups = [r for r in server.requests_to("/api/chat") if TAKEN_MARK in r.body["messages"][-1]["content"]]
    assert len(follow_ups) >= 6
    first_topic = dropped[0]["topic"]
    assert any(first_topic in r.body["messages"][-1]["content"] for r in follow_ups)


def test_neighbouring_topics_are_kept_and_questions_name_them(manual: Store) -> None:
    pairs, _ = _refusals(manual, 12, responder_neighbours=True)
    neighbours = {topic for topic, _ in NEIGHBOUR_TOPICS}
    from_model = [p for p in pairs if p.origin.refusal_source == "model"]
    assert len(from_model) >= 9
    for pair in pairs:
        topic = pair.origin.refusal_topic or ""
        assert topic in neighbours or topic in GENERIC_ADJACENT_TOPICS
        assert names_topic(pair.instruction, topic), (pair.instruction, topic)
        assert topic in pair.response
    assert len({p.origin.refusal_topic for p in pairs}) == len(pairs)
    rewritten = [e for e in manual.log_tail(200, step="generate") if e.action == "refusal_question_rewritten"]
    assert rewritten, "the responder's mismatched questions were asked again from their topic"
    for entry in rewritten:
        pair = next(p for p in pairs if p.origin.refusal_topic == entry.detail["topic"])
        assert pair.instruction == entry.detail["question"] != entry.detail["was"]
    sources = manual.pairs.refusal_sources()
    assert sources["model"] == len(from_model) and sum(sources.values()) == 12
    plan = make_plan(manual, target=200)
    assert plan.refusal_sources == sources
    assert any(f"{len(from_model)} from model-proposed neighbouring topics" in note for note in plan.notes)
    # A later run (or the probe before it) takes none of these topics again.
    again, _ = _refusals(manual, 3, responder_neighbours=True)
    assert len({p.origin.refusal_topic for p in again}) == len(again) == 15


def test_default_coverage_leaves_out_navigation_faq_and_generic_headings(manual: Store) -> None:
    items = default_coverage_items(manual.list_documents(), manual.list_chunks())
    lowered = {i.lower() for i in items}
    assert {"closure api", "index", "what is libffi?", "simple example", "the basics"}.isdisjoint(lowered)
    assert {"thread safety", "memory usage", "the closure API", "multiple ABIs", "structures"} <= set(items)
    assert not any("next:" in i.lower() or "[index]" in i.lower() for i in items)


def test_sample_corpus_coverage_leaves_out_faq_entries_and_file_names(project: Store) -> None:
    load_sample_corpus(project)
    items = default_coverage_items(project.list_documents(), project.list_chunks())
    assert len(items) >= 12
    assert not [i for i in items if i.endswith("?") or "FAQ" in i or "." in i.split(" (")[0] or i.startswith("Q")]
    assert "result caching" in items and "configuration" in items


def test_no_phrase_beyond_the_template_is_shared_by_more_than_a_quarter_of_refusals(manual: Store) -> None:
    """Measured over 60 generated refusal answers of the HTML manual."""
    pairs, _ = _refusals(manual, 60, responder_neighbours=True)
    templates = [t for pack in load_packs(None).values() for t in pack.declinations]
    phrase, share = most_shared_phrase([p.response for p in pairs], templates)
    print(f"most shared phrase beyond the template: {phrase!r} in {share:.0%} of {len(pairs)} refusal answers")
    assert share <= 0.25, (phrase, share)
    # The measure does catch a coverage phrase every answer repeats.
    repeated = [t.format(topic=f"topic {i}", coverage="Index, Credits and It's still not working")
                for i, t in enumerate(templates * 5)]
    assert most_shared_phrase(repeated, templates)[1] == 1.0


def test_a_coverage_setting_the_person_wrote_is_used(manual: Store) -> None:
    written = ["calling C functions at run time", "closures that wrap a C function pointer", "describing struct layouts",
               "variadic calls", "thread safety", "complex number types"]
    manual.change_settings({"generation": {"coverage": written}})
    assert "coverage" in (manual.root / "pairforge.toml").read_text()
    pairs, _ = _refusals(manual, 9, responder_neighbours=True)
    defaults = [item for item in default_coverage_items(manual.list_documents(), manual.list_chunks())
                if not any(item in w for w in written)]
    assert len(defaults) >= 10
    for pair in pairs:
        assert sum(item in pair.response for item in written) >= 2, pair.response
        assert not [item for item in defaults if item in pair.response], pair.response


def test_the_coverage_setting_reads_a_list_or_semicolons(tmp_path: Path) -> None:
    (tmp_path / "pairforge.toml").write_text('[generation]\ncoverage = "closures; thread  safety;"\n', encoding="utf-8")
    from engine.settings import load_settings

    assert load_settings(tmp_path).generation.coverage == ["closures", "thread safety"]


def test_check_and_the_card_say_where_refusal_topics_came_from(manual: Store, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from engine.cli import main
    from engine.export import ExportOptions, export_dataset

    _refusals(manual, 9, responder_neighbours=True)
    sources = manual.pairs.refusal_sources()
    assert sources.get("model", 0) + sources.get("fallback", 0) == 9 and sources.get("model")
    result = CliRunner().invoke(main, ["--project", str(manual.root), "check", "--json"], catch_exceptions=False)
    assert json.loads(result.output)["refusal_sources"] == sources
    result = CliRunner().invoke(main, ["--project", str(manual.root), "check"], catch_exceptions=False)
    assert f"{sources['model']} from model-proposed neighbouring topics" in " ".join(result.output.split())
    export_dataset(manual, tmp_path / "out", ExportOptions(formats=["messages"], include_pending=True))
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "### Refusal topics" in card
    assert f"{sources['model']} from model-proposed neighbouring topics" in card
    assert f"{sources.get('fallback', 0)} from the built-in fallback list" in card
    log = {(r["step"], r["action"]) for r in manual.log_summary()}
    assert ("generate", "refusal_topic_dropped") in log
