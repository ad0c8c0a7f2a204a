"""Cheap text measures shared by the checks, the report and the near-duplicate index."""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)
_SPACE = re.compile(r"\s+")
_BULLET_LINE = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)])\s+\S", re.MULTILINE)

STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        ["a", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "no", "not", "of", "on", "or", "our", "should", "so", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "to", "was", "we", "were", "what", "when", "where", "which", "who", "why", "will", "with", "would", "you", "your"]
    ),
    "de": frozenset(
        ["der", "die", "das", "und", "ist", "nicht", "ein", "eine", "einen", "dem", "den", "des", "mit", "auf", "für", "von", "zu", "im", "sich", "auch", "es", "wie", "wird", "werden", "kann", "oder", "aber", "wenn", "bei", "sie", "wir", "ich", "du", "hat", "sind"]
    ),
    "fr": frozenset(
        ["le", "la", "les", "et", "est", "un", "une", "des", "du", "de", "pour", "pas", "que", "qui", "dans", "sur", "avec", "ce", "cette", "il", "elle", "nous", "vous", "sont", "au", "aux", "mais", "ou", "par", "se", "ne", "plus", "être"]
    ),
    "es": frozenset(
        ["el", "la", "los", "las", "y", "es", "un", "una", "de", "del", "que", "en", "por", "para", "con", "no", "se", "su", "sus", "al", "lo", "como", "más", "pero", "sí", "son", "está", "este", "esta"]
    ),
}
ENGLISH_STOPWORDS = STOPWORDS["en"]


def words(text: str) -> list[str]:
    """Lowercased words of ``text`` (letters and digits; apostrophes kept inside words)."""
    return [w.lower() for w in _WORD.findall(text)]


def word_spans(text: str) -> list[tuple[str, int, int]]:
    """Each lowercased word with its start and end offsets in ``text``."""
    return [(m.group(0).lower(), m.start(), m.end()) for m in _WORD.finditer(text)]


# ASCII punctuation, control characters and "_" to spaces: what _PUNCT does, as one table lookup per byte.
_ASCII_PUNCT = bytes(
    32 if c < 128 and (not (chr(c).isalnum() or chr(c).isspace()) or chr(c) == "_") else c for c in range(256)
)


def normalize(text: str) -> str:
    """Lowercase, punctuation removed, whitespace collapsed: the form duplicates are compared in."""
    lowered = text.lower()
    if lowered.isascii():  # the common case, several times faster than the two substitutions
        return " ".join(lowered.encode("ascii").translate(_ASCII_PUNCT).decode("ascii").split())
    return _SPACE.sub(" ", _PUNCT.sub(" ", lowered)).strip()


@lru_cache(maxsize=65_536)  # the checks stem the same few thousand words over and over
def stem(word: str) -> str:
    """A crude suffix-stripping stem, enough to match "retries" with "retry" when measuring grounding."""
    for suffix in ("ingly", "edly", "ing", "ies", "ied", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:6]


def content_words(text: str) -> list[str]:
    """Words that carry meaning: not stopwords, at least three characters or a number."""
    return [w for w in words(text) if (len(w) >= 3 or w.isdigit()) and w not in ENGLISH_STOPWORDS]


def answer_style(text: str) -> str:
    """"bullets" when the answer is mostly a list (two or more list lines), else "prose"."""
    return "bullets" if len(_BULLET_LINE.findall(text)) >= 2 else "prose"


# For the language guess: ASCII punctuation, control characters and "_" to spaces, apostrophes kept inside words.
_ASCII_PUNCT_BUT_APOSTROPHE = bytes(c if c == ord("'") else b for c, b in enumerate(_ASCII_PUNCT))


def guess_language(text: str) -> str:
    """A cheap stopword-count language guess ("en", "de", "fr", "es" or "unknown")."""
    head = text[:2000]
    if head.isascii():
        # The report guesses every answer's language: a table lookup and a split are several times
        # faster than the word pattern, and give the same words but for quotes at their ends.
        spaced = head.lower().encode("ascii").translate(_ASCII_PUNCT_BUT_APOSTROPHE).decode("ascii")
        tokens = [w.strip("'") for w in spaced.split()] if "'" in spaced else spaced.split()
    else:
        tokens = words(head)
    if len(tokens) < 5:
        return "unknown"
    seen = Counter(tokens)
    counts = Counter({lang: sum(seen[w] for w in seen.keys() & stops) for lang, stops in STOPWORDS.items()})
    lang, hits = counts.most_common(1)[0]
    return lang if hits >= 2 and hits >= 0.05 * len(tokens) else "unknown"
