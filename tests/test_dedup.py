"""Near-duplicate index, dedup, split grouping and the token counter."""

from __future__ import annotations

import random
from pathlib import Path

from engine.models import Pair, PairStatus
from engine.quality import NearDuplicateIndex, TokenCounter, dedup, diff_words, make_split
from engine.settings import QualitySettings

TOKENIZER_DIR = Path(__file__).parent / "data" / "tokenizer"

BASE = [
    "How do I get a job out of the dead-letter queue?",
    "What is the default retry policy in Tidewater?",
    "Which address does tidewaterd listen on by default?",
    "How can I make a job handler idempotent?",
    "What happens when a worker lease expires?",
    "How do I configure per-queue retry limits?",
]
VARIANTS = [
    "How can I get a job back out of the dead-leter queue?",  # paraphrase + typo
    "Tidewater: what is the default retry policy?",  # reordering
    "Which adress does tidewaterd listen on by default?",  # typo
]
UNRELATED = [
    "How do I install the Python client?",
    "Why can a job run twice after succeeding?",
    "Does a result-cache miss cause a retry?",
    "Explain the api_token start-up error.",
]


def make_pairs(instructions: list[str], start: int = 1) -> list[Pair]:
    return [
        Pair.simple(text, f"Answer number {i} explains {text.lower()} in its own words.", id=start + i)
        for i, text in enumerate(instructions)
    ]


def test_index_finds_planted_variants_and_not_unrelated() -> None:
    pairs = make_pairs(BASE + VARIANTS + UNRELATED)
    index = NearDuplicateIndex.from_pairs(pairs)
    clusters = index.clusters()
    assert [1, 7] in clusters and [2, 8] in clusters and [3, 9] in clusters
    clustered = {i for c in clusters for i in c}
    assert clustered == {1, 2, 3, 7, 8, 9}
    similar = index.similar_to(pairs[0])
    assert [s.pair_id for s in similar] == [7] and similar[0].field == "instruction" and similar[0].score >= 90


def test_index_is_incremental() -> None:
    pairs = make_pairs(BASE + VARIANTS)
    index = NearDuplicateIndex.from_pairs(pairs)
    index.remove(7)
    assert index.similar_to(pairs[0]) == []
    index.add(pairs[6])
    assert [s.pair_id for s in index.similar_to(pairs[0])] == [7]
    index.update(pairs[6].model_copy(update={"messages": make_pairs(["Something else entirely, about caching"])[0].messages}))
    assert index.similar_to(pairs[0]) == []


def test_exact_duplicates_match_regardless_of_case_and_punctuation() -> None:
    a = Pair.simple("What is the DEFAULT retry policy?", "Five attempts with exponential backoff and jitter.", id=1)
    b = Pair.simple("what is the default retry policy", "five attempts, with exponential backoff and jitter", id=2)
    index = NearDuplicateIndex.from_pairs([a, b])
    assert index.similar_to(a)[0].field == "pair" and index.similar_to(a)[0].score == 100


def test_diff_words_marks_changes() -> None:
    runs = diff_words("get a job out of the dead-letter queue", "get a job back out of the dead-leter queue")
    assert ("insert", " back") in runs and ("replace", "dead-leter") in runs
    assert "".join(text for op, text in runs if op != "delete") == "get a job back out of the dead-leter queue"


def test_dedup_dry_run_then_apply_keeps_best_and_can_be_undone(project) -> None:
    saved = project.add_pairs([p.model_copy(update={"id": None}) for p in make_pairs(BASE + VARIANTS)])
    project.set_status([saved[6].id], PairStatus.ACCEPTED)
    preview = dedup(project)
    assert preview.dry_run and len(preview.clusters) == 3 and project.count_pairs() == 9
    first_cluster = next(c for c in preview.clusters if saved[0].id in c.pair_ids)
    assert first_cluster.keep == saved[6].id  # accepted beats pending
    applied = dedup(project, dry_run=False)
    assert project.count_pairs() == 6 and sorted(applied.removed) == sorted(preview.removed)
    assert project.log_tail(1, step="dedup")[0].count == 3
    project.undo()
    assert project.count_pairs() == 9
    assert dedup(project, keep="first").clusters[0].keep == saved[0].id


def test_split_never_separates_a_cluster_and_is_deterministic(project) -> None:
    rng = random.Random(3)
    questions = BASE + UNRELATED + [
        "What does twctl dead list print?", "Where are worker heartbeats configured?",
        "How is jitter applied to backoff delays?", "Which Python versions does the client support?",
        "How do per-queue overrides get reloaded?", "What is stored in the result cache?",
    ]
    pairs: list[Pair] = []
    for n, question in enumerate(questions):
        typo = question.replace("e", "", 1)  # a near duplicate of the question, with a typo
        for text in (question, typo):
            pairs.append(Pair.simple(text, f"Answer {n}-{len(pairs)} about {question.lower()}", mode=rng.choice(["factual", "developer"])))
    project.add_pairs(pairs)
    result = make_split(project, validation_fraction=0.2, seed=7)
    sides = {p.id: p.split for p in project.iter_pairs()}
    clusters = NearDuplicateIndex.from_store(project).clusters()
    assert len(clusters) >= len(questions) - 1
    for cluster in clusters:
        assert len({sides[i] for i in cluster}) == 1, cluster
    assert result.validation > 0 and set(sides.values()) == {"train", "validation"}
    assert set(result.categories) == {f"instruction/{m}" for m in ("factual", "developer")}
    assert all(c["validation"] > 0 for c in result.categories.values())
    assert project.get_meta("split")["seed"] == 7
    again = make_split(project, validation_fraction=0.2, seed=7)
    assert {p.id: p.split for p in project.iter_pairs()} == sides and again.validation == result.validation


def test_token_counter_with_real_tokenizer_and_estimate() -> None:
    pair = Pair.simple("How do retries work?", "Tidewater retries a job five times with exponential backoff.")
    real = TokenCounter.from_settings(QualitySettings(tokenizer=str(TOKENIZER_DIR)))
    assert not real.estimated and real.problem is None
    assert 20 < real.count_pair(pair) < 80
    from_file = TokenCounter.from_path(TOKENIZER_DIR / "tokenizer.json")
    assert not from_file.estimated and from_file.count_pair(pair) == real.count_pair(pair)
    estimate = TokenCounter.from_settings(QualitySettings())
    assert estimate.estimated and estimate.count_pair(pair) == 5 + 4 + 15 + 4
    missing = TokenCounter.from_settings(QualitySettings(tokenizer="/nonexistent/tokenizer"))
    assert missing.estimated and "could not be loaded" in (missing.problem or "")
    generated = pair.model_copy(update={"origin": pair.origin.model_copy(update={"backend": "ollama", "completion_tokens": 30})})
    assert estimate.count_pair(generated) == 30 + 5 + 8


def test_rewordings_of_a_request_match_and_shared_frames_do_not() -> None:
    from engine.quality import similarity

    ask = "rotate the API token of a worker"
    reworded = [
        f"How do I {ask}?", f"What's the right way to {ask}?", f"Can you walk me through how to {ask}?",
        f"I'm stuck trying to {ask}. What should I do?", f"Could you explain how to {ask}, step by step?",
    ]
    for a in reworded:
        for b in reworded:
            assert similarity(a, b) >= 90, (a, b)
    # Different questions in one long frame are compared as what they ask.
    frame = "Can you walk me through how to {}?"
    assert similarity(frame.format("rotate the API token of a worker"), frame.format("revoke the lease of a worker")) < 90
    assert similarity(frame.format("get the lease timeout"), frame.format("set the lease timeout")) == 0
    assert similarity("How do I convert a time from UTC to local time?", "How do I convert a time from local time to UTC?") == 0
    assert similarity("How do I create a new dead-letter queue?", "How do I create a new ordered dead-letter queue?") == 0
    assert similarity("Why does a job run twice after succeeding?", "How do I run a job twice after succeeding?") == 0
    # Slips are still the same ask, a first letter typed twice included; a prefix makes another word.
    assert similarity("How do I get a job back out of the dead-leter queue?", "How can I get a job out of the dead-letter queue?") >= 90
    assert similarity("How do I decode a line of base64 data?", "Can you show me how to decode a line of base64 ddata?") >= 90
    assert similarity("How do I restart the compressor of a queue?", "How do I restart the decompressor of a queue?") == 0


def test_index_learns_a_dataset_s_own_frames() -> None:
    """A frame no list knows, used around asks the dataset also asks plainly, is learned and discounted."""
    asks = [
        "rotate the API token of a worker", "requeue every job in the dead-letter queue", "raise the lease timeout of a queue",
        "limit the retries of one handler", "read the heartbeat interval of the broker", "pause a queue without losing jobs",
    ]
    plain = [f"How do I {a}?" for a in asks]
    framed = [f"Been banging my head against this: what would one do to {a}, thoughts?" for a in asks]
    other = ["What does the broker store in its snapshot?", "Which port does the metrics endpoint use?"]
    pairs = make_pairs(plain + framed + other)
    index = NearDuplicateIndex.from_pairs(pairs)
    clusters = index.clusters()
    for n in range(len(asks)):
        assert [n + 1, n + 1 + len(asks)] in clusters
    assert {i for c in clusters for i in c}.isdisjoint({13, 14})
    assert [s.pair_id for s in index.similar_to(pairs[len(asks)])] == [1]
    # Used around a single ask, the same frame teaches nothing: its words are the ask's.
    lone = NearDuplicateIndex.from_pairs(make_pairs([plain[0], framed[0], *other]))
    assert lone.clusters() == []


FRAMED_ASKS = [
    "rotate the API token of a worker", "requeue every job in the dead-letter queue", "raise the lease timeout of a queue",
    "limit the retries of one handler", "read the heartbeat interval of the broker", "pause a queue without losing jobs",
]


def test_a_question_word_asking_its_own_question_is_learned_as_frame() -> None:
    """A frame no list knows, whose "where" asks where to begin, is discounted once it wraps enough asks asked elsewhere."""
    plain = [f"How do I {a}?" for a in FRAMED_ASKS]
    framed = [f"I've got to {a} this week. Where does one even begin?" for a in FRAMED_ASKS]
    other = ["What does the broker store in its snapshot?", "Which port does the metrics endpoint use?"]
    pairs = make_pairs(plain + framed + other)
    index = NearDuplicateIndex.from_pairs(pairs)
    assert index.clusters() == [[n + 1, n + 1 + len(FRAMED_ASKS)] for n in range(len(FRAMED_ASKS))]
    assert [s.pair_id for s in index.similar_to(pairs[len(FRAMED_ASKS) + 2])] == [3]
    # Around six asks of which three are asked elsewhere, a frame with a question word is not yet evidence enough.
    few = NearDuplicateIndex.from_pairs(make_pairs(plain[:3] + framed + other))
    assert few.clusters() == []


def test_a_question_word_about_the_ask_itself_still_separates_asks() -> None:
    """"When should I X" and "why would I even X" wrap the same asks as "how do I X" and stay different asks."""
    plain = [f"How do I {a}?" for a in FRAMED_ASKS]
    when = [f"When should I {a}?" for a in FRAMED_ASKS]
    why = [f"Why would I even {a}?" for a in FRAMED_ASKS]
    pairs = make_pairs(plain + when + why)
    index = NearDuplicateIndex.from_pairs(pairs)
    assert index.clusters() == []
    assert index.similar_to(pairs[len(FRAMED_ASKS)]) == []


def test_normalize_is_the_same_on_its_ascii_path() -> None:
    """The byte-table path for ASCII text gives what the two substitutions give, control characters included."""
    from engine.quality.textstats import _PUNCT, _SPACE, normalize

    rng = random.Random(11)
    alphabet = [chr(i) for i in range(128)] + ["é", "ß", "\u00a0", "İ"]
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        assert normalize(text) == _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip(), repr(text)
