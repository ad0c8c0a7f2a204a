"""Near-duplicate index benchmark: full cluster pass time and peak RSS, similar_to latency, agreement with brute
force, and precision/recall on real requests reworded (planted rewordings and hard negatives).

    python bench/dedup_bench.py               # 10k and 100k pairs, brute force on a 10k sample, the rewordings
    python bench/dedup_bench.py --quick       # 2k and 20k pairs, brute force on 2k, the rewordings
    python bench/dedup_bench.py --rewordings  # only the rewordings (runs against any version of the index)
    python bench/dedup_bench.py --rewordings --by-frame  # and their missed pairs, frame by frame
    python bench/dedup_bench.py --rewordings --embed     # and with the embedding pass, through the stand-in server

The stand-in server's embeddings (tests/fake_ollama.py) are a hashed bag of word stems, not a model's: the
with-embeddings figures measure the embedding pass's plumbing, not what a real embedding model would find.
"""

from __future__ import annotations

import argparse
import random
import re
import resource
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np
from rapidfuzz import fuzz, process

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.generate.backends.ollama import OllamaBackend
from engine.models import Pair
from engine.quality.dedup import NearDuplicateIndex, content_form
from engine.quality.embeddings import cosine_pairs, embed_instructions, instruction_key
from engine.quality.textstats import normalize
from engine.settings import QualitySettings
from tests.fake_ollama import fake_ollama

VOCAB = ["job", "queue", "worker", "broker", "lease", "retry", "backoff", "jitter", "cache", "token", "handler", "payload", "schedule", "cron", "priority", "timeout", "heartbeat", "deadline", "webhook", "metric", "shard", "replica", "snapshot", "migration", "tenant", "quota"]
OPENERS = ["How do I", "How can I", "What is the way to", "Explain how to", "Why does", "When should I", "Can I"]
VERBS = ["configure", "inspect", "requeue", "limit", "monitor", "debug", "rotate", "disable", "scale", "tune"]


def synthetic(n: int, seed: int = 1) -> list[str]:
    """n instructions; about 20% are planted near duplicates (paraphrase, reordering or typo) of earlier ones."""
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.2:
            base = rng.choice(out)
            kind = rng.random()
            if kind < 0.33:  # paraphrase the opener
                text = base
                for opener in OPENERS:
                    if text.startswith(opener):
                        text = rng.choice(OPENERS) + text[len(opener):]
                        break
            elif kind < 0.66:  # reorder around a colon
                words = base.rstrip("?").split()
                text = " ".join(words[3:] + words[:3]) + "?"
            else:  # one or two typos
                chars = list(base)
                for _ in range(rng.randint(1, 2)):
                    i = rng.randrange(len(chars))
                    chars[i] = rng.choice("abcdefghijklmnopqrstuvwxyz")
                text = "".join(chars)
            out.append(text)
        else:
            words = rng.sample(VOCAB, rng.randint(3, 6))
            out.append(f"{rng.choice(OPENERS)} {rng.choice(VERBS)} the {' '.join(words)} in region {rng.randint(1, 999)}?")
    return out


def pairs_of(texts: list[str]) -> list[Pair]:
    return [Pair.simple(t, f"answer {i}", id=i + 1) for i, t in enumerate(texts)]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cluster_pass(n: int) -> NearDuplicateIndex:
    pairs = pairs_of(synthetic(n))
    start = time.perf_counter()
    index = NearDuplicateIndex.from_pairs(pairs, 90)
    built = time.perf_counter()
    clusters = index.clusters()
    done = time.perf_counter()
    print(f"{n:>7} pairs: index {built - start:.1f} s + clusters {done - built:.1f} s = {done - start:.1f} s, "
          f"{len(clusters)} clusters, peak RSS {peak_rss_mb():.0f} MB")
    return index


def precision_recall(n: int) -> None:
    """The index against brute force: the same scorer on every pair, no blocking."""
    texts = synthetic(n, seed=2)
    index = NearDuplicateIndex.from_pairs(pairs_of(texts), 90)
    compared = getattr(index, "_compared_of", None)
    if compared is not None:  # asks compared without their frames, as the index compares them
        forms = [compared(i + 1) for i in range(n)]
        norm, content = [f[0] for f in forms], [f[1] for f in forms]
        scorers = [(fuzz.ratio, norm), (fuzz.token_sort_ratio, content)]
    else:  # the index before asks were compared
        norm = [normalize(t) for t in texts]
        content = [content_form(t) for t in norm]
        scorers = [(fuzz.ratio, norm), (fuzz.token_sort_ratio, norm), (fuzz.ratio, content)]
    start = time.perf_counter()
    scores = np.maximum.reduce([
        process.cdist(side, side, scorer=scorer, dtype=np.float32, workers=-1, score_cutoff=90) for scorer, side in scorers
    ])
    brute_time = time.perf_counter() - start
    predicted = {(a - 1, b - 1) for a, b in index.edges()}
    differ = getattr(sys.modules[NearDuplicateIndex.__module__], "asks_differ", lambda a, b: False)
    truth = {
        (int(a), int(b)) for a, b in zip(*np.nonzero(np.triu(scores >= 90, 1)), strict=True)
        if not differ(norm[a], norm[b])
    }
    truth |= {(a - 1, b - 1) for group in index._exact_groups() for a, b in combinations(sorted(group), 2)}
    hits = len(predicted & truth)
    print(f"brute force on {n} pairs ({brute_time:.1f} s): {len(truth)} true pairs, index found {len(predicted)}; "
          f"recall {hits / max(1, len(truth)):.3f}, precision {hits / max(1, len(predicted)):.3f}")


def similar_latency(index: NearDuplicateIndex, n: int) -> None:
    rng = random.Random(3)
    queries = pairs_of(synthetic(n))
    times = []
    for pair in rng.sample(queries, 500):
        start = time.perf_counter()
        index.similar_to(pair)
        times.append((time.perf_counter() - start) * 1000)
    print(f"similar_to at {len(index)} pairs: median {statistics.median(times):.2f} ms, p95 {sorted(times)[474]:.2f} ms")


# ---------------------------------------------------------------------- requests reworded

# Requests reworded: real asks (docstring sentences of the standard library, bench/dedup_requests.tsv) put in
# request frames. A pair of instructions is a true near duplicate when both carry the same ask.
#
# DEV_FRAMES may inform the matcher's list of request words; HELD_OUT_FRAMES must not (none of their own
# words were added to any list in engine/quality/), so their figures show how the matcher does on wordings
# it was not written for.
DEV_FRAMES = [
    "How do I {ask}?",
    "How can I {ask}?",
    "What's the best way to {ask}?",
    "What is the right way to {ask}?",
    "Can you walk me through how to {ask}?",
    "Could you explain how to {ask}?",
    "I'm stuck trying to {ask}. What should I do?",
    "Is there a way to {ask}?",
    "Please tell me how to {ask}.",
    "How would I {ask}?",
    "What's the easiest way to {ask}?",
    "Can you show me how to {ask}?",
    "I need to {ask}. How?",
    "How should I {ask}?",
    "Is it possible to {ask}?",
    "What are the steps to {ask}?",
    "Explain how to {ask}.",
    "I want to {ask}; how do I do that?",
    "Hey, quick question: how do you {ask}?",
    "Could you help me {ask}?",
    "What's the recommended way to {ask}?",
    "Can you tell me how I can {ask}?",
    "I'd like to {ask}. Any tips?",
    "Walk me through how to {ask}, step by step.",
    "Help me {ask}, please.",
    "Is there a simple way to {ask}?",
    "How does one {ask}?",
    "Any idea how to {ask}?",
    "{Ask}: how?",
    "Can I {ask}?",
]
HELD_OUT_FRAMES = [
    "I've been trying to figure out how to {ask} - any pointers?",
    "What's the proper procedure to {ask}?",
    "How would you go about trying to {ask}?",
    "I was wondering whether you could show me how to {ask}.",
    "Struggling to {ask}, what am I missing?",
    "Do you know a good approach to {ask}?",
    "Could you advise on how best to {ask}?",
    "What would be the cleanest way to {ask}?",
    "How am I supposed to {ask}?",
    "Give me a hand: I have to {ask}.",
    "Looking for guidance: how to {ask}?",
    "In practice, how do people {ask}?",
]
# Written after the matcher was done, as a clean test; since then their misses (the two holding "where") were
# looked at to make question words count as frame when they ask a question of their own, so they are now in
# effect a development set. No word of theirs is in a list.
FRESH_FRAMES = [
    "Been meaning to ask: what's involved if I want to {ask}?",
    "For a project at work I must {ask}; where do I start?",
    "Newbie here. How would somebody {ask}?",
    "Quick sanity check - what's the usual way to {ask}?",
    "Could someone outline how to {ask}?",
    "My goal is to {ask}. Suggestions welcome.",
    "Teach me to {ask}.",
    "Where would I begin if I needed to {ask}?",
]
# Written after that change and never looked at while making it or since: the clean test now. Their figures
# come from the same draw with these frames in the fresh share.
NEW_FRESH_FRAMES = [
    "Long story short, I have to {ask} - how would you tackle it?",
    "What steps would you take to {ask}?",
    "Is there an idiomatic way to {ask}?",
    "Not sure how to {ask}. Can anyone help?",
    "I keep failing to {ask}. Where am I going wrong?",
    "Which approach works best to {ask}?",
    "Show me the code to {ask}.",
    "According to the docs one can {ask} - how exactly?",
    "Today I found out I need to {ask}; where should I look first?",
    "Got a minute? I'd love to learn how to {ask}.",
]
# Long frames two different asks share in the hard negatives.
LONG_FRAMES = [
    "Can you walk me through how to {ask}?",
    "I'm stuck trying to {ask}. What should I do?",
    "What's the recommended way to {ask}?",
    "Walk me through how to {ask}, step by step.",
    "I've been trying to figure out how to {ask} - any pointers?",
    "I was wondering whether you could show me how to {ask}.",
]

REQUESTS = Path(__file__).with_name("dedup_requests.tsv")
_THIRD_PERSON = re.compile(r"^(\w+?)(ies|sses|shes|ches|xes|s)$")


def _imperative(sentence: str) -> str:
    """A docstring's first sentence as an ask: "Returns the size of X." -> "get the size of X"."""
    first, _, rest = sentence.rstrip(".").partition(" ")
    if first in ("Return", "Returns"):
        if rest.startswith(("True if ", "true if ", "whether ")):
            return "check whether " + rest.split(" ", 2)[-1] if not rest.startswith("whether ") else "check " + rest
        return "get " + rest
    verb = first.lower()
    match = _THIRD_PERSON.match(verb)
    if match and verb not in ("process", "access", "pass", "bypass"):
        stem, ending = match.groups()
        verb = stem + {"ies": "y", "sses": "ss", "shes": "sh", "ches": "ch", "xes": "x", "s": ""}[ending]
    return f"{verb} {rest}"


def load_asks() -> list[str]:
    """The real asks, one per distinct normalized text, in file order."""
    seen: dict[str, str] = {}
    for line in REQUESTS.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or "\t" not in line:
            continue
        ask = _imperative(line.split("\t", 1)[1].strip())
        seen.setdefault(normalize(ask), ask)
    return list(seen.values())


def render(frame: str, ask: str) -> str:
    return frame.format(ask=ask, Ask=ask[:1].upper() + ask[1:])


def light_edit(rng: random.Random, ask: str) -> str:
    """The same ask with a small slip: two letters swapped, an article dropped, or a word doubled letter."""
    words = ask.split()
    kind = rng.random()
    if kind < 0.4:
        long_words = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
        if long_words:
            i = rng.choice(long_words)
            w = words[i]
            j = rng.randrange(1, len(w) - 2)
            words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    elif kind < 0.7:
        articles = [i for i, w in enumerate(words) if w in ("the", "a", "an")]
        if articles:
            del words[rng.choice(articles)]
    else:
        long_words = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
        if long_words:
            i = rng.choice(long_words)
            j = rng.randrange(1, len(words[i]))
            words[i] = words[i][:j] + words[i][j - 1] + words[i][j:]
    return " ".join(words)


@dataclass
class RewordedSet:
    """Requests reworded: each instruction's text, ask, frame and whether the frame is held out, by position."""

    texts: list[str] = field(default_factory=list)
    ask_of: list[int] = field(default_factory=list)
    frame_of: list[str] = field(default_factory=list)
    held: list[bool] = field(default_factory=list)
    hard: set[tuple[int, int]] = field(default_factory=set)  # hard-negative pairs
    fresh: set[int] = field(default_factory=set)  # instructions in a fresh frame

    def put(self, frame: str, ask: str, ask_id: int, held_out: bool) -> int:
        self.texts.append(render(frame, ask))
        self.ask_of.append(ask_id)
        self.frame_of.append(frame)
        self.held.append(held_out)
        return len(self.texts) - 1


def reworded_set(seed: int = 5, fresh_frames: list[str] = FRESH_FRAMES) -> RewordedSet:
    """Real asks in request frames, with hard negatives.

    Every ask appears once in a development frame; 45% get a rewording in another development frame, 25% one in
    a held-out frame and 15% one in a fresh frame (a quarter of the rewordings also carry a slip); asks that open with the same three words
    as another ask are also put, two by two, in one long frame (hard negatives: different asks, same frame).
    """
    rng = random.Random(seed)
    asks = load_asks()
    made = RewordedSet()
    for i, ask in enumerate(asks):
        base = rng.choice(DEV_FRAMES)
        made.put(base, ask, i, False)
        roll = rng.random()
        if roll < 0.85:
            held_out = roll >= 0.45
            pool = fresh_frames if roll >= 0.70 else HELD_OUT_FRAMES if held_out else [f for f in DEV_FRAMES if f != base]
            frame = rng.choice(pool)
            reworded = light_edit(rng, ask) if rng.random() < 0.25 else ask
            position = made.put(frame, reworded, i, held_out)
            if roll >= 0.70:
                made.fresh.add(position)
    siblings: dict[str, list[int]] = defaultdict(list)
    for i, ask in enumerate(asks):
        siblings[" ".join(normalize(ask).split()[:3])].append(i)
    for group in siblings.values():
        rng.shuffle(group)
        for a, b in zip(group[::2], group[1::2], strict=False):
            frame = rng.choice(LONG_FRAMES)
            held_out = frame in HELD_OUT_FRAMES
            made.hard.add((made.put(frame, asks[a], a, held_out), made.put(frame, asks[b], b, held_out)))
    return made


def misses_by_frame(made: RewordedSet, truth: set[tuple[int, int]], predicted: set[tuple[int, int]]) -> None:
    """Each frame's missed true pairs (a pair counts for both its frames), worst first, with two of them."""
    pairs: Counter[str] = Counter()
    missed: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for a, b in sorted(truth):
        for frame in {made.frame_of[a], made.frame_of[b]}:
            pairs[frame] += 1
            if (a, b) not in predicted:
                missed[frame].append((a, b))
    print("  missed true pairs by frame:")
    for frame in sorted(missed, key=lambda f: (-len(missed[f]) / pairs[f], f)):
        print(f"    {len(missed[frame]):>3} of {pairs[frame]:<3} {frame}")
        for a, b in missed[frame][:2]:
            print(f"          {made.texts[a]!r} ~ {made.texts[b]!r}")


EMBEDDING_MODEL = "stand-in-embed"


def stand_in_embedding_edges(texts: list[str], threshold: float) -> tuple[set[tuple[int, int]], float, int]:
    """Positions (a < b) whose stand-in embeddings are at least ``threshold`` alike, the seconds it took and the
    requests made: the engine's embedding pass (batched requests over real HTTP, blocked cosine), with no cache."""
    keys = [instruction_key(t) for t in texts]
    unique = dict(zip(keys, texts, strict=True))
    start = time.perf_counter()
    with fake_ollama(models=[EMBEDDING_MODEL]) as server:
        vectors = embed_instructions(unique, OllamaBackend(EMBEDDING_MODEL, server.url))
        requests = len(server.requests_to("/api/embed"))
    order = list(unique)
    members: dict[str, list[int]] = defaultdict(list)
    for position, key in enumerate(keys):
        members[key].append(position)
    edges = {pair for group in members.values() for pair in combinations(group, 2)}
    for i, j in cosine_pairs(np.stack([vectors[k] for k in order]), threshold):
        edges.update((min(a, b), max(a, b)) for a in members[order[i]] for b in members[order[j]])
    return edges, time.perf_counter() - start, requests


def rewordings(seed: int = 5, fresh_frames: list[str] = FRESH_FRAMES, name: str = "fresh frames now in effect dev") -> None:
    made = reworded_set(seed, fresh_frames)
    texts = made.texts
    by_ask: dict[int, list[int]] = defaultdict(list)
    for position, ask in enumerate(made.ask_of):
        by_ask[ask].append(position)
    truth = {pair for members in by_ask.values() for pair in combinations(members, 2)}
    start = time.perf_counter()
    index = NearDuplicateIndex.from_pairs(pairs_of(texts), 90)
    predicted = {(a - 1, b - 1) for a, b in index.edges()}
    took = time.perf_counter() - start
    fresh = {(a, b) for a, b in truth if a in made.fresh or b in made.fresh}
    held = {(a, b) for a, b in truth if made.held[a] or made.held[b]} - fresh
    print(f"rewordings ({name}): {len(texts)} instructions from {len(by_ask)} real asks, {len(truth)} true pairs "
          f"({len(held)} with a held-out frame, {len(fresh)} with a fresh one), {len(made.hard)} hard negatives; {took:.1f} s")
    report_rewordings(made, truth, predicted)
    if "--embed" in sys.argv:
        threshold = QualitySettings().embedding_threshold
        close, embed_took, requests = stand_in_embedding_edges(texts, threshold)
        print(f"  with the embedding pass (the stand-in server's hashed bag of word stems, NOT a real model: this measures "
              f"the plumbing), cosine >= {threshold:g}: {requests} requests, {embed_took:.1f} s, {len(close)} embedding matches")
        report_rewordings(made, truth, predicted | close)
        print(f"  the embedding pass alone: {len(close & truth)} true of {len(close)}, "
              f"{len(close & truth - predicted)} true pairs the fuzzy pass missed, {len(close - truth - predicted)} false ones it added")


def report_rewordings(made: RewordedSet, truth: set[tuple[int, int]], predicted: set[tuple[int, int]]) -> None:
    """Precision and recall over all, development, held-out and fresh frames, and the hard negatives flagged."""
    texts, held, hard, fresh = made.texts, made.held, made.hard, made.fresh
    truth_fresh = {(a, b) for a, b in truth if a in fresh or b in fresh}
    truth_held = {(a, b) for a, b in truth if held[a] or held[b]} - truth_fresh
    hits = predicted & truth
    predicted_fresh = {(a, b) for a, b in predicted if a in fresh or b in fresh}
    predicted_held = {(a, b) for a, b in predicted if held[a] or held[b]} - predicted_fresh
    predicted_dev = predicted - predicted_held - predicted_fresh
    truth_dev = truth - truth_held - truth_fresh

    def rate(part: int, whole: int) -> str:
        return f"{part / whole:.3f}" if whole else "n/a"

    print(f"  all:      precision {rate(len(hits), len(predicted))} ({len(predicted) - len(hits)} false of {len(predicted)}), "
          f"recall {rate(len(hits), len(truth))}")
    for name, guessed, true in (("dev", predicted_dev, truth_dev), ("held-out", predicted_held, truth_held), ("fresh", predicted_fresh, truth_fresh)):
        print(f"  {name + ':':<9} precision {rate(len(hits & guessed), len(guessed))}, recall {rate(len(hits & true), len(true))}")
    print(f"  hard negatives flagged: {len(predicted & hard)} of {len(hard)}")
    if "--by-frame" in sys.argv:
        misses_by_frame(made, truth, predicted)
    if "--show" in sys.argv:
        for a, b in sorted(predicted - truth)[:40]:
            print(f"    false: {texts[a]!r} ~ {texts[b]!r}")
        missed = sorted(truth - predicted)
        random.Random(0).shuffle(missed)
        for a, b in missed[:40]:
            print(f"    missed: {texts[a]!r} ~ {texts[b]!r}")


def both_rewordings() -> None:
    """The rewordings with the first fresh frames (looked at since) and with the new ones (the clean test)."""
    rewordings()
    rewordings(fresh_frames=NEW_FRESH_FRAMES, name="new fresh frames, never looked at")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--rewordings", action="store_true", help="only the rewordings of real requests")
    parser.add_argument("--show", action="store_true", help="list false and missed pairs of the rewordings")
    parser.add_argument("--by-frame", action="store_true", help="count the rewordings' missed pairs by frame")
    parser.add_argument("--embed", action="store_true", help="the rewordings with the embedding pass too (stand-in embeddings)")
    args = parser.parse_args()
    if args.rewordings:
        both_rewordings()
        return
    small, large, sample = (2_000, 20_000, 2_000) if args.quick else (10_000, 100_000, 10_000)
    cluster_pass(small)
    index = cluster_pass(large)
    similar_latency(index, large)
    del index
    precision_recall(sample)
    both_rewordings()


if __name__ == "__main__":
    main()
