"""Whether a rewording of a question still asks the same thing: the check on paraphrase probes.

Meaning is compared by content words, not by the judge: deterministic, free, and the failures
that matter show in the words. A rewording may change how the question is put ("How do I" ->
"What's the way to", "enable" -> "turn on", "often" -> "frequently"), but every word that says
what is asked about must stay: a paraphrase that swaps the worker for the broker, the Go client
for the Python one or retry.max_backoff for retry.max_attempts drops one, and so does one that
flips "enable" to "disable" or "stop" to "keep". A negation added or removed ("not", "never",
"unsafe" for "safe") flips the question, and so does asking "why" in place of "how".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from itertools import pairwise

from engine.quality.dedup import FILLER_WORDS, REQUEST_WORDS
from engine.quality.textstats import ENGLISH_STOPWORDS, normalize

# A paraphrase keeps at least this share of the original's content words (by stem) ...
MEANING_MIN_KEPT = 0.5
# ... and at most this share of its own content words are new.
MEANING_MAX_NEW = 0.6
# A paraphrase whose word sequence matches the original's less than this was rebuilt, not
# edited: it may say one subject word its own way ("cancel" -> "stop", "share" -> "all use"),
# as long as it names no new thing in its place ("the worker" for "the broker"). One that
# keeps the sentence and swaps a word is asking something else.
REBUILT_MAX_SIMILARITY = 0.5
# A word right after one of these is a thing named: "the worker", "its priority", "what address".
_DETERMINERS = frozenset({
    "the", "a", "an", "its", "their", "his", "her", "my", "your", "our", "this", "that", "these", "those",
    "each", "every", "which", "what", "another",
})

# Phrasings of one thing, written as that one word before words are compared.
_PHRASES = tuple((re.compile(pattern), word) for pattern, word in (
    (r"\b(?:turn(?:s|ed|ing)?|switch(?:es|ed|ing)?) on\b|\bactivat\w*", "enable"),
    (r"\b(?:turn(?:s|ed|ing)?|switch(?:es|ed|ing)?) off\b|\bdeactivat\w*", "disable"),
    (r"\bshut(?:s|ting)? down\b", "shutdown"),
    (r"\bback(?:s|ing)? up\b", "backup"),
    (r"\bout of the box\b|\bby default\b", "default"),
    (r"\bhow frequently\b|\bfrequently\b|\bhow often\b", "often"),
    (r"\bat once\b|\bat the same time\b|\bin bulk\b|\bsimultaneous(?:ly)?\b", "together"),
    (r"\bhave to\b|\bmust\b|\brequire[sd]?\b|\brequiring\b", "need"),
    (r"\bfinal\b", "last"),
    (r"\bfind out\b", "see"),
    (r"\bno longer\b", "no anymore"),
    (r"\bwhat (?:makes|made|causes|caused)\b|\bhow come\b|\bfor what reason\b|\bwhat(?: is)? wrong with\b", "why"),
))
_SYNONYMS = {
    "adjust": "change", "modify": "change", "alter": "change", "delete": "remove", "erase": "remove",
    "become": "happen", "becomes": "happen", "occur": "happen", "occurs": "happen", "retain": "keep",
}
# Irregular forms the suffix stem cannot join to their verb ("ran" is "run").
_IRREGULAR = {
    "ran": "run", "wrote": "write", "written": "write", "kept": "keep", "swept": "sweep", "made": "make",
    "got": "get", "gotten": "get", "went": "go", "gone": "go", "took": "take", "taken": "take", "gave": "give",
    "given": "give", "saw": "see", "seen": "see", "found": "find", "sent": "send", "held": "hold", "left": "leave",
    "began": "begin", "begun": "begin", "broke": "break", "broken": "break", "chose": "choose", "chosen": "choose",
    "lost": "lose", "built": "build", "meant": "mean", "told": "tell", "said": "say", "brought": "bring",
    "knew": "know", "known": "know", "shown": "show", "did": "do", "done": "do", "used": "use",
}
# A rewording of a question asks too: "worker.concurrency controls how many handlers run" answers it.
_ASKS = re.compile(r"\?|^\s*(?:tell|explain|describe|show|list|give)\b", re.IGNORECASE)
_NEGATIONS = frozenset({"not", "no", "never", "nothing", "nobody", "none", "neither", "nor", "without", "cannot", "unable"})
_WORD = re.compile(r"[A-Za-z0-9]+(?:'[a-z]+)?")
# "why" is a stopword elsewhere; here it is what the question asks.
_WHY = "why"


def _stem(word: str) -> str:
    """A suffix-stripping stem that also joins "running" to "run", "paused" to "pause", "difference" to "differ"."""
    for suffix in ("ingly", "edly", "ence", "ance", "ing", "ied", "ies", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 + (len(suffix) == 4):
            word = word[: -len(suffix)] + ("y" if suffix in ("ied", "ies") else "")
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeious":
                word = word[:-1]
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


# How a question is put, not what it asks about: a rewording may drop these.
_FRAME = frozenset(_stem(w) for w in REQUEST_WORDS | FILLER_WORDS | {
    "way", "able", "happen", "work", "works", "handle", "decide", "stay", "send", "make", "get", "set", "change",
    "see", "find", "know", "value", "thing", "kind", "type", "already", "same", "different", "long", "time",
    "often", "much", "many", "number", "anything", "something", "both", "each", "every", "other", "another",
    "mean", "reason", "cause", "supported", "duration", "location", "anymore",
    "between", "against", "during", "while", "about", "after", "before",
})


def _words(text: str) -> list[str]:
    """The words of ``text``, lowercased but for short names ("Go"), each phrasing of one thing as that thing."""
    found = [
        w if len(w) < 3 and w[0].isupper() and w.lower() not in ENGLISH_STOPWORDS else w.lower().removesuffix("'s")
        for w in _WORD.findall(text.replace("\u2019", "'"))
    ]
    joined = " ".join(found)
    for pattern, word in _PHRASES:
        joined = pattern.sub(word, joined)
    return [_SYNONYMS.get(w, _IRREGULAR.get(w, w)) for w in joined.split()]


def _meaning(words: list[str], other: set[str]) -> tuple[set[str], int]:
    """(content stems, negation count) of ``words``; "unsafe" counts as "not safe" when ``other`` says "safe"."""
    stems: set[str] = set()
    negations = 0
    for word in words:
        if word in _NEGATIONS or word.endswith("n't"):
            negations += 1
            continue
        if word.startswith("un") and len(word) > 5:
            base = _stem(word[2:].removesuffix("able"))
            if any(s[:4] == base[:4] for s in other):
                negations, word = negations + 1, base
        if word == _WHY:
            stems.add(word)
        elif word not in ENGLISH_STOPWORDS and (len(word) >= 3 or word.isdigit() or word[0].isupper()):
            stems.add(word if word[0].isupper() else _stem(word))
    return stems, negations


def _named(words: list[str]) -> set[str]:
    """Stems of the words right after a determiner: the things ``words`` name."""
    return {w if w[0].isupper() else _stem(w) for d, w in pairwise(words) if d in _DETERMINERS}


@dataclass(frozen=True)
class _Comparison:
    """An original question and its paraphrase, as content stems."""

    before: set[str]
    after: set[str]
    flipped: bool  # exactly one of them is negated
    rebuilt: bool  # the paraphrase's word order is its own
    named: set[str]  # stems the paraphrase names

    def may_drop(self) -> int:
        """How many subject words of the original the paraphrase may say its own way."""
        new = (self.after - self.before) - _FRAME
        return 1 if self.rebuilt and not new & self.named else 0


def _compare(original: str, paraphrase: str) -> _Comparison:
    """The two as content stems, negations and word order compared."""
    before_words, after_words = _words(original), _words(paraphrase)
    before, before_negations = _meaning(before_words, {_stem(w) for w in after_words})
    after, after_negations = _meaning(after_words, {_stem(w) for w in before_words})
    rebuilt = SequenceMatcher(None, before_words, after_words).ratio() < REBUILT_MAX_SIMILARITY
    return _Comparison(before, after, before_negations % 2 != after_negations % 2, rebuilt, _named(after_words))


def meaning_overlap(original: str, paraphrase: str) -> tuple[float, float]:
    """(share of the original's content stems the paraphrase keeps, share of the paraphrase's stems that are new)."""
    compared = _compare(original, paraphrase)
    before, after = compared.before, compared.after
    if not before or not after:
        return 0.0, 1.0
    return len(before & after) / len(before), len(after - before) / len(after)


def keeps_meaning(original: str, paraphrase: str) -> float | None:
    """The kept share when ``paraphrase`` rewords ``original`` and keeps its meaning, else None.

    A paraphrase must differ from the original, ask (a question's rewording is a question or a
    request, not an answer), keep every word that says what is asked about (only the question's
    frame may go; a rebuilt sentence naming nothing new may say one of them its own way), agree on negation and on asking "why", keep
    MEANING_MIN_KEPT of the content words and bring at most MEANING_MAX_NEW new ones.
    """
    if normalize(paraphrase) == normalize(original) or len(paraphrase.strip()) < 10:
        return None
    if "?" in original and not _ASKS.search(paraphrase):
        return None
    compared = _compare(original, paraphrase)
    before, after = compared.before, compared.after
    if not before or not after or compared.flipped or (_WHY in before) != (_WHY in after):
        return None
    if len((before - after) - _FRAME) > compared.may_drop():
        return None
    kept, new = len(before & after) / len(before), len(after - before) / len(after)
    return round(kept, 3) if kept >= MEANING_MIN_KEPT and new <= MEANING_MAX_NEW else None


__all__ = ["MEANING_MAX_NEW", "MEANING_MIN_KEPT", "keeps_meaning", "meaning_overlap"]
