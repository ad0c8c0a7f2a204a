"""Near-duplicate index: exact normalized hashes plus fuzzy matching of what instructions ask, with rarest-word blocking.

What is asked, not how: an instruction's request frame (leading interrogatives and politeness such as "how do
I", "what's the best way to", "can you walk me through", and trailing ones such as "what should I do", "any
tips") is taken off before comparing, so "How do I X?" and "What's the right way to X?" match and "Can you walk
me through X?" and "Can you walk me through Y?" are compared as X and Y. The score is the better of ratio of the
asks and token_sort_ratio of their content words (typos and reorderings); a match is refused when each
ask has a word the other lacks that is not a slip of one of its words (right / left, get / set, base16 /
base64: a different question), or when they ask why, when, where, who or which differently.

Blocking: each ask's content words are ranked by how few indexed instructions use them; every 2-combination of
its RAREST_WORDS rarest words is a block key, and only pairs sharing a block are length-filtered and scored,
element-wise in rapidfuzz's native loops. Small indexes are compared all against all.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Literal

import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA, LCSseq

from engine.models import Pair, PairStatus, Role
from engine.quality.textstats import ENGLISH_STOPWORDS, normalize

if TYPE_CHECKING:
    from engine.store import Store

# Exact response matches only count when the answer says something (not "Yes." twice).
MIN_RESPONSE_CHARS_FOR_EXACT = 40
# Blocking keys are the 2-combinations of an instruction's RAREST_WORDS rarest content words.
RAREST_WORDS = 4
# Blocks with more members than this say only "these share two common words" and are not scored.
MAX_BLOCK = 160
# Indexes this small are compared all against all (exact, and cheaper than blocking).
SMALL_INDEX = 600
# Pairs indexed between calls to ``from_store``'s ``pause``.
FROM_STORE_PAUSE_EVERY = 200


@dataclass(frozen=True)
class SimilarPair:
    """A near duplicate of some pair: its id, the similarity (0-100) and which field matched."""

    pair_id: int
    score: float
    field: str  # "pair" (whole conversation), "instruction" or "response"


@dataclass
class Cluster:
    """A group of near-duplicate pairs, the one to keep and the ones that would go."""

    pair_ids: list[int]
    keep: int
    remove: list[int] = field(default_factory=list)


@dataclass
class DedupResult:
    """What a dedup pass found and (unless a dry run) removed."""

    threshold: float
    keep: str
    dry_run: bool
    clusters: list[Cluster]
    removed: list[int]
    # Pairs of pairs the embedding pass joined (None when it did not run).
    embedding_matches: int | None = None


# Content forms shorter than this say too little to compare on their own.
MIN_CONTENT_CHARS = 12
# Words of a request's frame, beyond the stopwords: how people ask, not what they ask about. Contraction
# endings ("what's" normalizes to "what s") are here because normalizing splits them off.
REQUEST_WORDS = frozenset(
    ["s", "m", "d", "t", "re", "ve", "ll", "best", "right", "easiest", "simplest", "simple", "recommended", "good", "way", "ways", "steps", "step", "walk", "through", "explain", "tell", "show", "help", "please", "need", "want", "like", "trying", "try", "stuck", "possible", "any", "idea", "ideas", "tip", "tips", "advice", "hey", "hi", "hello", "quick", "question", "thanks", "thank", "okay", "ok", "one"]
)
# Words that say how, not what: one ask having them and the other not is the same ask ("get a job back out").
FILLER_WORDS = frozenset(
    ["back", "again", "also", "just", "really", "actually", "now", "currently", "still", "even", "exactly", "properly", "correctly", "quickly", "easily", "safely", "then"]
)
# Question words that change what is asked ("why does X" is not "how do I X"): never part of a frame.
QUESTION_WORDS = frozenset({"why", "when", "where", "who", "whom", "whose", "which"})
_FRAME_WORDS = (ENGLISH_STOPWORDS | REQUEST_WORDS) - QUESTION_WORDS
_NOT_ASKED = ENGLISH_STOPWORDS - QUESTION_WORDS | REQUEST_WORDS | FILLER_WORDS
# Words that give a question word no question of its own (see ``_asks_its_own``).
_NOT_OWN = ENGLISH_STOPWORDS | REQUEST_WORDS | FILLER_WORDS
# An ask shorter than this once its frame is off is compared whole (the frame was most of what it said).
MIN_ASK_CHARS = 8


def content_form(normalized: str) -> str:
    """A normalized text without its stopwords ("how do i retry a job" -> "retry job")."""
    kept = " ".join(w for w in normalized.split() if w not in ENGLISH_STOPWORDS)
    return kept if len(kept) >= MIN_CONTENT_CHARS else normalized


def ask_form(normalized: str) -> str:
    """What a normalized instruction asks: its request frame taken off both ends.

    "can you walk me through how to rotate the api token" -> "rotate the api token";
    "i m stuck on the lease timeout what should i do" -> "lease timeout". An instruction
    that is all frame is kept whole.
    """
    words = normalized.split()
    start, end = 0, len(words)
    while start < end and words[start] in _FRAME_WORDS:
        start += 1
    while end > start and words[end - 1] in _FRAME_WORDS:
        end -= 1
    ask = " ".join(words[start:end])
    return ask if len(ask) >= MIN_ASK_CHARS else normalized


def _forms(normalized: str) -> tuple[str, str]:
    """The ask of a normalized instruction and the ask's content words (what the scorers compare)."""
    ask = ask_form(normalized)
    return ask, content_form(ask)


def _slip(a: str, b: str) -> bool:
    """Whether two different words are one word mistyped or inflected (not two words)."""
    short, long_ = sorted((a, b), key=len)
    if long_.startswith(short) and long_[len(short):] in ("s", "es", "d", "ed"):
        return len(short) >= 3
    if long_ == short[:1] + short:
        # A first letter typed twice ("ddata") is a slip, not a prefix.
        return len(short) >= 3
    if long_.endswith(short) or any(c.isdigit() for c in a + b):
        # A prefix makes another word ("compressor" / "decompressor"); names with digits are exact ("blake2b").
        return False
    distance = OSA.distance(a, b, score_cutoff=2)
    if len(short) < 5:
        # A short word mistyped has lost or gained a letter, or two swapped ("th", "teh" for "the");
        # one letter replaced is another word ("get" / "set").
        return distance == 1 and len(short) >= 2 and (len(long_) > len(short) or sorted(a) == sorted(b))
    return distance <= (1 if len(short) < 8 else 2)


def asks_differ(a_ask: str, b_ask: str) -> bool:
    """Whether two similar asks are different questions however alike their words.

    They are when each has a word the other lacks that is not a slip of one of its words (a substitution:
    "right" / "left", "get" / "set"), when one has a word inside the words they share that the other lacks
    ("a new ordered dictionary" / "a new dictionary"), when two or more of their shared words trade places
    ("from degrees to radians" / "from radians to degrees"), or when they ask why, when, where, who or
    which differently.
    """
    if a_ask == b_ask:
        return False
    a_list, b_list = a_ask.split(), b_ask.split()
    a_words, b_words = Counter(a_list), Counter(b_list)
    if {w: c for w, c in a_words.items() if w in QUESTION_WORDS} != {w: c for w, c in b_words.items() if w in QUESTION_WORDS}:
        return True
    only_a, only_b = list((a_words - b_words).elements()), list((b_words - a_words).elements())
    slips: dict[str, str] = {}
    for word in list(only_a):
        twin = next((other for other in only_b if _slip(word, other)), None)
        if twin is not None:
            only_a.remove(word)
            only_b.remove(twin)
            slips[twin] = word
    # Articles and other stopwords trading places ("a line" / "the line") change nothing asked.
    extra_a = [w for w in only_a if w not in _NOT_ASKED]
    extra_b = [w for w in only_b if w not in _NOT_ASKED]
    if only_a and only_b and (extra_a or extra_b):
        return True
    shared_a = [w for w in a_list if w in b_words or w in slips.values()]
    shared_b = [slips.get(w, w) for w in b_list if w in a_words or w in slips]
    if len(shared_a) - LCSseq.similarity(shared_a, shared_b) > 1:
        return True
    for words, extra in ((a_list, set(extra_a)), (b_list, set(extra_b))):
        if extra:
            inside = [n for n, w in enumerate(words) if w not in extra]
            if inside and any(w in extra for w in words[inside[0] : inside[-1]]):
                return True
    return False


def similarity(a: str, b: str, cutoff: float = 0.0) -> float:
    """Similarity (0-100) of what two instructions ask, request frames discounted (see the module docstring).

    0 when the asks are different questions however alike their wording (``asks_differ``).
    """
    a_ask, a_content = _forms(normalize(a))
    b_ask, b_content = _forms(normalize(b))
    score = _similarity(a_ask, a_content, b_ask, b_content, cutoff)
    return 0.0 if score and asks_differ(a_ask, b_ask) else score


def _similarity(a: str, a_content: str, b: str, b_content: str, cutoff: float) -> float:
    score = fuzz.ratio(a, b, score_cutoff=cutoff)
    if score >= 100:
        return score
    return max(score, fuzz.token_sort_ratio(a_content, b_content, score_cutoff=cutoff))


def _normalized(pair: Pair) -> tuple[str, str, int]:
    """The pair's normalized instruction and response, and the hash of its whole normalized conversation."""
    texts = [normalize(m.content) for m in pair.messages]
    roles = [m.role for m in pair.messages]
    instruction = next((t for t, r in zip(texts, roles, strict=True) if r is Role.USER), "")
    response = next((t for t, r in zip(reversed(texts), reversed(roles), strict=True) if r is Role.ASSISTANT), "")
    return instruction, response, hash("\x1f".join(texts) + "\x1e" + normalize(pair.context or ""))


# Learned frames: an opening (or ending) of FRAME_MAX_WORDS words or fewer that at least FRAME_MIN_USES asks share
# (and at least FRAME_MIN_SHARE of them) is this dataset's frame when, taken off, it leaves another indexed ask
# for at least FRAME_MIN_SUPPORT of them: "i ve been trying to figure out how to" X is a frame where X is asked
# elsewhere too; "get the number of" is not, for "cpus in the system" is no one's ask.
FRAME_MAX_WORDS = 8
FRAME_MIN_USES = 4
FRAME_MIN_SHARE = 0.0005
FRAME_MIN_SUPPORT = 2
# A frame holding a question word must leave another indexed ask for this many distinct asks (and half its uses):
# the stronger evidence it takes to say the question word is a manner of asking.
QUESTION_FRAME_MIN_SUPPORT = 4
# Frames are learned from at most this many distinct asks (spread over the dataset).
FRAME_SAMPLE = 20_000
# What a learned frame must leave of an ask.
MIN_ASK_WORDS = 2
# Relearn the frames when this share of the asks changed since they were last learned.
FRAME_RELEARN_SHARE = 0.05


def _strip_frame_words(words: Sequence[str], i: int, j: int) -> tuple[int, int]:
    while j - i > MIN_ASK_WORDS and words[i] in _FRAME_WORDS:
        i += 1
    while j - i > MIN_ASK_WORDS and words[j - 1] in _FRAME_WORDS:
        j -= 1
    return i, j


def _asks_its_own(gram: tuple[str, ...]) -> bool:
    """Whether every question word of ``gram`` is followed, inside it, by a word of its own question.

    "where do i start" and "where would i begin if i needed to" ask where to begin, with a verb of their own;
    "why does", "when should i" and "why would i even" ask why or when of the ask itself, whose verb comes after.
    """
    for n, word in enumerate(gram):
        if word in QUESTION_WORDS and all(w in _NOT_OWN for w in gram[n + 1 :]):
            return False
    return True


def _frame_like(gram: tuple[str, ...], support: int, uses: int) -> bool:
    """Whether an opening or ending that left other asks ``support`` times in ``uses`` is a frame.

    A frame is made with words of asking ("how", "to", "any"), or else it wraps asks asked elsewhere in at least
    half its uses ("..., thoughts?"): an ending such as "function" that a few asks happen to add to others is what
    they ask about. A question word changes what is asked ("why does" X is not X), so a frame holding one must
    ask a question of its own about the ask ("X; where do i start") and wrap asks asked elsewhere in at least
    half its uses, for QUESTION_FRAME_MIN_SUPPORT of them or more.
    """
    if support < FRAME_MIN_SUPPORT:
        return False
    if not QUESTION_WORDS.isdisjoint(gram):
        return support >= QUESTION_FRAME_MIN_SUPPORT and 2 * support >= uses and _asks_its_own(gram)
    return not _FRAME_WORDS.isdisjoint(gram) or 2 * support >= uses


class LearnedFrames:
    """The openings and endings a dataset wraps its asks in, learned from the asks themselves.

    The fixed list of request words covers common frames; a dataset that asks in its own words ("I've been
    trying to figure out how to ... any pointers?") teaches its frames here, so they are discounted too.
    """

    def __init__(self) -> None:
        self._asks: Counter[str] = Counter()
        self._total = 0
        self._changes = 0
        self._learned: tuple[frozenset[tuple[str, ...]], frozenset[tuple[str, ...]]] | None = None
        self.version = 0

    def count(self, ask: str, sign: int) -> None:
        """Add (``sign`` 1) or take away (-1) one ask (frame words already off its ends)."""
        self._asks[ask] += sign
        if self._asks[ask] <= 0:
            del self._asks[ask]
        self._total += sign
        self._changes += 1
        if self._learned is not None and self._changes > FRAME_RELEARN_SHARE * max(self._total, 100):
            self._learned = None

    def _frames(self) -> tuple[frozenset[tuple[str, ...]], frozenset[tuple[str, ...]]]:
        if self._learned is None:
            self._learned = self._learn()
            self._changes = 0
            self.version += 1
        return self._learned

    def _learn(self) -> tuple[frozenset[tuple[str, ...]], frozenset[tuple[str, ...]]]:
        known = self._asks
        # Frames are common by definition, so a sample of the distinct asks finds them; whether taking one off
        # leaves another ask is looked up among all of them.
        sample = list(known)
        if len(sample) > FRAME_SAMPLE:
            sample = sample[:: -(-len(sample) // FRAME_SAMPLE)]
        sampled = sum(known[ask] for ask in sample)
        minimum = max(FRAME_MIN_USES, FRAME_MIN_SHARE * sampled)
        # Openings and endings are counted here, not as asks come and go: a pass over the asks costs what
        # counting them one by one would, and a dataset is learned far less often than it changes.
        starts_seen: Counter[tuple[str, ...]] = Counter()
        ends_seen: Counter[tuple[str, ...]] = Counter()
        split = {ask: ask.split() for ask in sample}
        for ask in sample:
            uses = known[ask]
            words = split[ask]
            for n in range(1, min(len(words) - MIN_ASK_WORDS, FRAME_MAX_WORDS) + 1):
                starts_seen[tuple(words[:n])] += uses
                ends_seen[tuple(words[-n:])] += uses
        support_starts: Counter[tuple[str, ...]] = Counter()
        support_ends: Counter[tuple[str, ...]] = Counter()
        for ask in sample:
            words = split[ask]
            top = min(len(words) - MIN_ASK_WORDS, FRAME_MAX_WORDS)
            starts = [n for n in range(1, top + 1) if starts_seen.get(tuple(words[:n]), 0) >= minimum]
            ends = [n for n in range(1, top + 1) if ends_seen.get(tuple(words[-n:]), 0) >= minimum]
            if not starts and not ends:
                continue
            # Support counts asks: an opening that leaves another ask with two endings (or none) counts once.
            left_starts: set[int] = set()
            left_ends: set[int] = set()
            for a in [0, *starts]:
                for b in [0, *ends]:
                    if (a or b) and len(words) - a - b >= MIN_ASK_WORDS:
                        i, j = _strip_frame_words(words, a, len(words) - b)
                        if " ".join(words[i:j]) in known:
                            left_starts.add(a)
                            left_ends.add(b)
            support_starts.update(tuple(words[:a]) for a in left_starts if a)
            support_ends.update(tuple(words[-b:]) for b in left_ends if b)
        # A frame is made with words of asking ("how", "to", "any"): an ending such as "function" that some asks
        # happen to add is what they ask about.
        return (
            frozenset(g for g, n in support_starts.items() if _frame_like(g, n, starts_seen[g])),
            frozenset(g for g, n in support_ends.items() if _frame_like(g, n, ends_seen[g])),
        )

    def strip(self, words: Sequence[str]) -> list[str]:
        """``words`` (an ask) without the learned frames at either end, shortest frame first, as often as one fits."""
        starts, ends = self._frames()
        i, j = 0, len(words)
        if not starts and not ends:
            return list(words)
        moved = True
        while moved:
            moved = False
            for n in range(1, FRAME_MAX_WORDS + 1):
                if j - i - n < MIN_ASK_WORDS:
                    break
                if tuple(words[i : i + n]) in starts:
                    i, moved = i + n, True
                    break
            for n in range(1, FRAME_MAX_WORDS + 1):
                if j - i - n < MIN_ASK_WORDS:
                    break
                if tuple(words[j - n : j]) in ends:
                    j, moved = j - n, True
                    break
            i, j = _strip_frame_words(words, i, j)
        return list(words[i:j])


class NearDuplicateIndex:
    """Incremental near-duplicate index over pairs; never compares all pairs with all pairs (beyond a small size)."""

    def __init__(self, threshold: float = 90.0) -> None:
        self.threshold = float(threshold)
        # Threads for the native scoring loops: every core by default; an interactive caller
        # sets 1 so the interface keeps a core to itself.
        self.workers = -1
        self._instruction: dict[int, str] = {}
        self._content: dict[int, str] = {}
        self._words: dict[int, tuple[str, ...]] = {}
        self._frequency: Counter[str] = Counter()
        self._postings: dict[str, set[int]] = defaultdict(set)
        self._exact_pair: dict[int, list[int]] = defaultdict(list)
        self._exact_instruction: dict[int, list[int]] = defaultdict(list)
        self._exact_response: dict[int, list[int]] = defaultdict(list)
        self._hashes: dict[int, tuple[int, int, int | None]] = {}
        self.frames = LearnedFrames()
        # Each pair's ask and content without learned frames, with the frames' version they were made at.
        self._learned: dict[int, tuple[int, str, str]] = {}

    def __len__(self) -> int:
        return len(self._instruction)

    def __contains__(self, pair_id: object) -> bool:
        return pair_id in self._instruction

    def ids(self) -> list[int]:
        """The indexed pair ids, ascending."""
        return sorted(self._instruction)

    @classmethod
    def from_pairs(cls, pairs: Iterable[Pair], threshold: float = 90.0) -> NearDuplicateIndex:
        """An index holding ``pairs``."""
        index = cls(threshold)
        for pair in pairs:
            index.add(pair)
        return index

    @classmethod
    def from_store(
        cls, store: Store, threshold: float | None = None, *, include_rejected: bool = False,
        pause: Callable[[], None] | None = None,
    ) -> NearDuplicateIndex:
        """An index over the store's pairs (rejected ones left out unless asked), streamed in batches.

        ``pause``, if given, is called every few hundred pairs (an interactive caller waits there while its user types).
        """
        index = cls(store.settings.quality.near_duplicate_threshold if threshold is None else threshold)
        for n, pair in enumerate(store.iter_pairs()):
            if pause is not None and n % FROM_STORE_PAUSE_EVERY == 0:
                pause()
            if include_rejected or pair.status is not PairStatus.REJECTED:
                index.add(pair)
        return index

    # ------------------------------------------------------------------ updates

    def add(self, pair: Pair) -> None:
        """Index a saved pair (one with an id); re-adding an id replaces it."""
        if pair.id is None:
            raise ValueError("only saved pairs (with an id) can be indexed")
        self._add(pair.id, *_normalized(pair))

    def _add(self, pair_id: int, instruction: str, response: str, whole: int) -> None:
        if pair_id in self._instruction:
            self.remove(pair_id)
        ask, content = _forms(instruction)
        self._instruction[pair_id] = ask
        self._content[pair_id] = content
        self.frames.count(ask, 1)
        unique_words = tuple(dict.fromkeys(content.split()))
        self._words[pair_id] = unique_words
        self._frequency.update(unique_words)
        for word in unique_words:
            self._postings[word].add(pair_id)
        instr = hash(instruction)
        resp = hash(response) if len(response) >= MIN_RESPONSE_CHARS_FOR_EXACT else None
        self._hashes[pair_id] = (whole, instr, resp)
        self._exact_pair[whole].append(pair_id)
        self._exact_instruction[instr].append(pair_id)
        if resp is not None:
            self._exact_response[resp].append(pair_id)

    def remove(self, pair_id: int) -> None:
        """Forget a pair (no error when it is not indexed)."""
        if pair_id not in self._instruction:
            return
        self.frames.count(self._instruction.pop(pair_id), -1)
        del self._content[pair_id]
        self._learned.pop(pair_id, None)
        for word in self._words.pop(pair_id):
            self._frequency[word] -= 1
            postings = self._postings[word]
            postings.discard(pair_id)
            if not postings:
                del self._postings[word]
                del self._frequency[word]
        whole, instr, resp = self._hashes.pop(pair_id)
        _discard(self._exact_pair, whole, pair_id)
        _discard(self._exact_instruction, instr, pair_id)
        if resp is not None:
            _discard(self._exact_response, resp, pair_id)

    def update(self, pair: Pair) -> None:
        """Re-index an edited pair."""
        self.add(pair)

    # ------------------------------------------------------------------ queries

    def _compared(self, ask: str) -> tuple[str, str]:
        """The forms the scorers compare: ``ask`` without the dataset's learned frames, and its content words."""
        return _forms(" ".join(self.frames.strip(ask.split())))

    def _compared_of(self, pair_id: int) -> tuple[str, str]:
        version = self.frames.version
        cached = self._learned.get(pair_id)
        if cached is None or cached[0] != version:
            ask, content = self._compared(self._instruction[pair_id])
            version = self.frames.version  # stripping may have relearned the frames
            self._learned[pair_id] = (version, ask, content)
            return ask, content
        return cached[1], cached[2]

    def _rarest(self, words: Iterable[str], minimum: int) -> list[str]:
        """The RAREST_WORDS rarest of ``words`` seen at least ``minimum`` times (rarity ties broken by the word)."""
        frequency = self._frequency
        usable = [w for w in words if frequency[w] >= minimum]
        usable.sort(key=lambda w: (frequency[w], w))
        return usable[:RAREST_WORDS]

    def _query_candidates(self, words: Sequence[str], own: int | None) -> set[int]:
        if len(self._instruction) <= SMALL_INDEX:
            return set(self._instruction)
        # A word seen only in the query pair itself cannot be shared with anything else.
        minimum = 2 if own in self._instruction else 1
        rarest = self._rarest(words, minimum)
        if len(rarest) == 1:
            return set(self._postings[rarest[0]])
        # As in a full pass: a block too large to say anything is not scored, and a pair keyed on three or more
        # rare words must share two blocks.
        shared: Counter[int] = Counter()
        for a, b in combinations(rarest, 2):
            small, large = sorted((self._postings[a], self._postings[b]), key=len)
            block = small & large
            if len(block) <= MAX_BLOCK:
                shared.update(block)
        if len(rarest) <= 2:
            return set(shared)
        indexed = self._words
        return {c for c, n in shared.items() if n >= 2 or len(indexed[c]) <= 2}

    def similar_to(self, pair: Pair, limit: int = 10) -> list[SimilarPair]:
        """The indexed pairs most similar to ``pair`` (itself excluded), best first."""
        own = pair.id
        best: dict[int, SimilarPair] = {}

        def offer(other: int, score: float, field_name: str) -> None:
            if other == own:
                return
            current = best.get(other)
            if current is None or score > current.score:
                best[other] = SimilarPair(other, round(score, 1), field_name)

        instruction, response, whole = _normalized(pair)
        for other in self._exact_pair.get(whole, ()):
            offer(other, 100.0, "pair")
        for other in self._exact_instruction.get(hash(instruction), ()):
            offer(other, 100.0, "instruction")
        if len(response) >= MIN_RESPONSE_CHARS_FOR_EXACT:
            for other in self._exact_response.get(hash(response), ()):
                offer(other, 100.0, "response")
        compared_ask, compared_content = self._compared(ask_form(instruction))
        candidates = [c for c in self._query_candidates(tuple(dict.fromkeys(compared_content.split())), own) if c != own and c not in best]
        if candidates:
            forms = [self._compared_of(c) for c in candidates]
            scores = self._scores([compared_ask], [compared_content], [f[0] for f in forms], [f[1] for f in forms], cross=True)
            for other, score in zip(candidates, scores[0].tolist(), strict=True):
                if score >= self.threshold and not asks_differ(compared_ask, self._compared_of(other)[0]):
                    offer(other, score, "instruction")
        ranked = sorted(best.values(), key=lambda s: (-s.score, s.field != "pair", s.pair_id))
        return ranked[:limit]

    def _scores(self, ask_a: Sequence[str], content_a: Sequence[str], ask_b: Sequence[str], content_b: Sequence[str], *, cross: bool) -> np.ndarray:
        """Best-of-two similarity of asks, 0 below the threshold: a matrix (``cross``) or element-wise, in native loops."""
        run = process.cdist if cross else process.cpdist
        cut = self.threshold
        return np.maximum(
            run(ask_a, ask_b, scorer=fuzz.ratio, score_cutoff=cut, dtype=np.float32, workers=self.workers),
            run(content_a, content_b, scorer=fuzz.token_sort_ratio, score_cutoff=cut, dtype=np.float32, workers=self.workers),
        )

    def _fuzzy_edges(self) -> list[tuple[int, int]]:
        """Verified fuzzy matches (a < b): all against all when small, else within rarest-word blocks."""
        ids = sorted(self._instruction)
        if len(ids) < 2:
            return []
        forms = [self._compared_of(i) for i in ids]
        plain = [f[0] for f in forms]
        content = [f[1] for f in forms]
        if len(ids) <= SMALL_INDEX:
            rows, cols = np.nonzero(np.triu(self._scores(plain, content, plain, content, cross=True) >= self.threshold, 1))
            return [
                (ids[r], ids[c]) for r, c in zip(rows.tolist(), cols.tolist(), strict=True) if not asks_differ(plain[r], plain[c])
            ]
        # Each word's place in rarity order (ties by the word), so sorting an ask's words is one C-level key lookup.
        frequency = self._frequency
        rank = {w: r for r, w in enumerate(sorted((w for w, c in frequency.items() if c >= 2), key=lambda w: (frequency[w], w)))}
        width = len(rank) + 1
        blocks: dict[int, list[int]] = defaultdict(list)
        keyed = np.zeros(len(content), dtype=np.int8)  # how many rare words keyed each ask's blocks
        for position, words in enumerate(content):
            # Blocks are keyed on the words left once learned frames are off: a frame's words can be rarer than the ask's.
            rarest = sorted({rank[w] for w in words.split() if w in rank})[:RAREST_WORDS]
            keyed[position] = len(rarest)
            if len(rarest) == 1:
                blocks[-1 - rarest[0]].append(position)
            for first, second in combinations(rarest, 2):
                blocks[first * width + second].append(position)
        by_size: dict[int, list[list[int]]] = defaultdict(list)
        for members in blocks.values():
            if 2 <= len(members) <= MAX_BLOCK:
                by_size[len(members)].append(members)
        left_parts, right_parts = [], []
        for size, groups in by_size.items():
            matrix = np.asarray(groups, dtype=np.int64)
            upper, lower = np.triu_indices(size, 1)
            left_parts.append(matrix[:, upper].ravel())
            right_parts.append(matrix[:, lower].ravel())
        if not left_parts:
            return []
        n = len(ids)
        left, right = np.concatenate(left_parts), np.concatenate(right_parts)
        # A ratio of T% bounds the length gap: |len(a) - len(b)| <= (1 - T/100) * (len(a) + len(b)).
        # Filtered before duplicates (pairs sharing several blocks) are dropped: the filter is the cheaper pass.
        slack = 1 - self.threshold / 100
        plain_len = np.fromiter(map(len, plain), dtype=np.int32, count=n)
        content_len = np.fromiter(map(len, content), dtype=np.int32, count=n)
        fits = (np.abs(plain_len[left] - plain_len[right]) <= slack * (plain_len[left] + plain_len[right])) | (
            np.abs(content_len[left] - content_len[right]) <= slack * (content_len[left] + content_len[right])
        )
        codes = np.sort(left[fits] * n + right[fits])
        if len(codes):
            # Two asks keyed on three or more rare words each that share only one block share two of their rare
            # words and differ in the others: not near duplicates, and most of what the blocks pair up.
            firsts = np.flatnonzero(np.concatenate(([True], codes[1:] != codes[:-1])))
            shared = np.diff(np.append(firsts, len(codes)))
            codes = codes[firsts]
            left, right = codes // n, codes % n
            keep = (shared >= 2) | (np.minimum(keyed[left], keyed[right]) <= 2)
            left, right = left[keep], right[keep]
        else:
            left, right = codes, codes
        plain_arr, content_arr = np.asarray(plain, dtype=object), np.asarray(content, dtype=object)
        found: list[tuple[int, int]] = []
        step = 1_000_000
        for start in range(0, len(left), step):
            a, b = left[start : start + step], right[start : start + step]
            scores = self._scores(plain_arr[a].tolist(), content_arr[a].tolist(), plain_arr[b].tolist(), content_arr[b].tolist(), cross=False)
            hit = scores >= self.threshold
            found.extend(
                (ids[i], ids[j]) for i, j in zip(a[hit].tolist(), b[hit].tolist(), strict=True) if not asks_differ(plain[i], plain[j])
            )
        return found

    def edges(self) -> set[tuple[int, int]]:
        """Every near-duplicate pair of ids (a < b) the index can see: exact matches and verified fuzzy ones."""
        found: set[tuple[int, int]] = set()
        for group in self._exact_groups():
            found.update(_all_pairs(group))
        found.update(self._fuzzy_edges())
        return found

    def _exact_groups(self) -> Iterable[list[int]]:
        for table in (self._exact_pair, self._exact_instruction, self._exact_response):
            for group in table.values():
                if len(group) > 1:
                    yield group

    def clusters(self, edges: Iterable[tuple[int, int]] | None = None) -> list[list[int]]:
        """Groups of two or more near-duplicate pairs (connected components), each sorted, sorted by first id.

        ``edges`` (from ``edges()``) saves finding the fuzzy matches a second time.
        """
        parent: dict[int, int] = {}

        def find(x: int) -> int:
            root = x
            while parent.get(root, root) != root:
                root = parent[root]
            while parent.get(x, x) != root:
                parent[x], x = root, parent[x]
            return root

        def union(a: int, b: int) -> None:
            parent.setdefault(a, a)
            parent.setdefault(b, b)
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)

        if edges is None:
            for group in self._exact_groups():
                for other in group[1:]:
                    union(group[0], other)
            edges = self._fuzzy_edges()
        for a, b in edges:
            union(a, b)
        groups: dict[int, list[int]] = defaultdict(list)
        for member in parent:
            groups[find(member)].append(member)
        return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def _discard(table: dict[int, list[int]], key: int, pair_id: int) -> None:
    bucket = table.get(key)
    if bucket is None:
        return
    try:
        bucket.remove(pair_id)
    except ValueError:
        return
    if not bucket:
        del table[key]


def _all_pairs(ids: Sequence[int]) -> Iterable[tuple[int, int]]:
    ordered = sorted(ids)
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            yield a, b


_DIFF_TOKEN = re.compile(r"\s+|[^\s]+")


def diff_words(a: str, b: str) -> list[tuple[str, str]]:
    """A word-level diff turning ``a`` into ``b``: ("equal" | "insert" | "delete" | "replace", text) runs.

    "equal" and "delete" carry ``a``'s text, "insert" and "replace" carry ``b``'s (the replaced words of
    ``a`` are not repeated, so a view shows "replace" runs as changed text).
    """
    tokens_a, tokens_b = _DIFF_TOKEN.findall(a), _DIFF_TOKEN.findall(b)
    matcher = difflib.SequenceMatcher(a=tokens_a, b=tokens_b, autojunk=False)
    runs: list[tuple[str, str]] = []
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        text = "".join(tokens_b[b0:b1]) if op in ("insert", "replace") else "".join(tokens_a[a0:a1])
        if runs and runs[-1][0] == op:
            runs[-1] = (op, runs[-1][1] + text)
        else:
            runs.append((op, text))
    return runs


# ---------------------------------------------------------------------- store-level passes


def _best_key(pair: Pair) -> tuple[int, int, float, int, int, int]:
    """Sort key of "best pair first": accepted, fewest warnings, highest score, grounded, longest, oldest."""
    status_rank = {PairStatus.ACCEPTED: 0, PairStatus.PENDING: 1, PairStatus.REJECTED: 2}[pair.status]
    score = pair.score if pair.score is not None else -1.0
    return (status_rank, len(pair.warnings), -score, 0 if pair.sources else 1, -len(pair.response), pair.id or 0)


def find_clusters(
    store: Store, threshold: float | None = None, *, keep: Literal["best", "first"] = "best", embed: bool = False,
) -> list[Cluster]:
    """Near-duplicate clusters of the store's non-rejected pairs, each with the pair to keep and those to remove.

    ``embed`` adds the embedding pass (``engine.quality.embeddings``): pairs whose instructions' embeddings are
    alike join the exact and fuzzy matches before clustering.
    """
    return _find_clusters(store, threshold, keep, embed)[0]


def _find_clusters(
    store: Store, threshold: float | None, keep: Literal["best", "first"], embed: bool,
) -> tuple[list[Cluster], int | None]:
    """The clusters, and how many pairs of pairs the embedding pass joined (None when it did not run)."""
    index = NearDuplicateIndex.from_store(store, threshold)
    matches: int | None = None
    if embed:
        from engine.quality.embeddings import embedding_edges

        close = embedding_edges(store, index.ids())
        matches = len(close)
        groups = index.clusters(index.edges() | close)
    else:
        groups = index.clusters()
    clusters: list[Cluster] = []
    for start in range(0, len(groups), 200):
        part = groups[start : start + 200]
        pairs = {p.id: p for p in store.get_pairs([i for g in part for i in g])}
        for group in part:
            members = [pairs[i] for i in group if i in pairs]
            if len(members) < 2:
                continue
            ranked = sorted(members, key=_best_key) if keep == "best" else sorted(members, key=lambda p: p.id or 0)
            keeper = ranked[0].id or 0
            clusters.append(Cluster(pair_ids=group, keep=keeper, remove=[p.id or 0 for p in ranked[1:]]))
    return clusters, matches


def dedup(
    store: Store,
    threshold: float | None = None,
    keep: Literal["best", "first"] = "best",
    dry_run: bool = True,
    embed: bool = False,
) -> DedupResult:
    """Find near-duplicate clusters and (unless ``dry_run``) delete all but the kept pair of each.

    ``embed`` adds the embedding pass through the configured backend (see ``find_clusters``); it raises
    ConfigError when ``quality.embedding_model`` is empty and a BackendError when the server cannot embed.
    The log entry and the result say how many pairs of pairs it joined.

    Removals are one undoable step (``store.delete_pairs(..., action="dedup")``, so `pairforge undo` brings
    them back) and one pipeline-log entry listing every cluster. ``keep="best"`` keeps accepted over pending,
    then fewer warnings, higher judge score, grounded, longer answer; ``keep="first"`` keeps the oldest.
    """
    if keep not in ("best", "first"):
        raise ValueError(f"keep must be 'best' or 'first', not {keep!r}")
    used = store.settings.quality.near_duplicate_threshold if threshold is None else threshold
    clusters, matches = _find_clusters(store, used, keep, embed)
    removed = [i for c in clusters for i in c.remove]
    if not dry_run and removed:
        store.delete_pairs(removed, action="dedup")
        store.log(
            step="dedup",
            action="delete",
            count=len(removed),
            message=f"Removed {len(removed)} near-duplicate pair(s) from {len(clusters)} cluster(s) at threshold {used:g}{' with the embedding pass' if embed else ''}, keeping the {keep} of each.",
            detail={"threshold": used, "keep": keep, "embedding_matches": matches,
                    "clusters": [{"keep": c.keep, "removed": c.remove} for c in clusters]},
        )
    return DedupResult(threshold=used, keep=keep, dry_run=dry_run, clusters=clusters, removed=removed,
                       embedding_matches=matches)


__all__ = [
    "Cluster",
    "DedupResult",
    "LearnedFrames",
    "NearDuplicateIndex",
    "SimilarPair",
    "ask_form",
    "asks_differ",
    "dedup",
    "diff_words",
    "find_clusters",
    "similarity",
]
