"""What the knowledge base covers, as refusal answers say it.

A refusal answer names a few things the documents do cover. The items come from the
project's ``generation.coverage`` setting when the person wrote one, else from the
documents' titles and top-level headings, with navigation and apparatus headings
(Index, Contents, Credits, "Next: ..." panels), FAQ entries and generic headings left
out. Each answer names a few items, taken in turn, in one of several phrasings, so no
sentence about the coverage repeats across the dataset for a model to learn by heart.
"""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence

from engine.ingest.boilerplate import heading_text, is_navigation_heading
from engine.models import Chunk, Document

# Frames for the items an answer names; {items} is "A, B and C".
COVERAGE_FRAMES: tuple[str, ...] = (
    "{items}",
    "topics such as {items}",
    "things like {items}",
    "{items}, among other topics",
    "subjects including {items}",
    "areas like {items}",
    "{items}, to name a few",
    "questions about {items}",
)

# Said when there is nothing to name (no titles, no headings, no setting).
NOTHING_NAMED = "the documents it was built from"

MAX_ITEMS = 40
MAX_ITEM_WORDS = 8

# Headings that name no subject of their own ("Simple Example", "The Basics", "More").
_GENERIC_WORDS_TEXT = (
    "the a an basic basics simple example examples introduction intro overview summary notes note misc "
    "miscellaneous other others general more further reading details detail part chapter section appendix "
    "start here main page untitled document readme"
)
_GENERIC_WORDS = frozenset(_GENERIC_WORDS_TEXT.split())
_FAQ_OPENERS_TEXT = (
    "how why what when where who which can could does do did is are should would will i i'm im my "
    "it it's its we you your there q"
)
_FAQ_OPENERS = frozenset(_FAQ_OPENERS_TEXT.split())
_FILE_LIKE = re.compile(r"\.[a-z0-9]{1,5}$|[/\\]")
_WORD = re.compile(r"[\w'+#-]+")
_LIST_SPLIT = re.compile(r",\s*(?:and\s+|or\s+)?|\s+and\s+")
_TITLE_SEPARATOR = re.compile(r"\s*(?::| - | — | – )\s*")


def _faq_style(text: str) -> bool:
    """A heading that is a user's question or complaint ("It's still not working", "How do I ...?")."""
    if text.endswith("?"):
        return True
    first = text.split(maxsplit=1)[0].casefold().strip(",.") if text.split() else ""
    return first in _FAQ_OPENERS


def _generic(text: str) -> bool:
    words = [w.casefold() for w in _WORD.findall(re.sub(r"\([^)]*\)", " ", text))]
    return (
        not words or all(w in _GENERIC_WORDS for w in words) or words[-1] in {"example", "examples"}
        or bool({"faq", "faqs"}.intersection(words))
    )


def _usable(text: str, boilerplate: set[str]) -> bool:
    words = text.split()
    return (
        3 <= len(text) <= 90
        and 0 < len(words) <= MAX_ITEM_WORDS
        and not is_navigation_heading(text)
        and text.casefold() not in boilerplate
        and not _faq_style(text)
        and not _generic(text)
        and not _FILE_LIKE.search(text.casefold())
    )


def _word_cases(chunks: Iterable[Chunk]) -> Counter[str]:
    """How often each word is written lower-case (key "w") or capitalised mid-sentence (key "W")."""
    counts: Counter[str] = Counter()
    for chunk in chunks:
        tokens = chunk.text.split()
        for before, token in itertools.pairwise(tokens):
            word = token.strip(".,;:()\"'")
            # Only after a lower-case word: a capital there is the word's own, not a sentence's or a heading's.
            if before.rstrip(",;").isalpha() and before.rstrip(",;").islower() and word.isalpha():
                counts[word if word[0].isupper() else word.lower()] += 1
    return counts


def _sentence_case(text: str, cases: Counter[str]) -> str:
    """Title Case words the documents write lower-case mid-sentence are lowered ("Primitive Types" -> "primitive types")."""
    words = text.split(" ")
    out = []
    for word in words:
        if word[:1].isupper() and word[1:].islower() and cases[word.lower()] >= cases[word]:
            word = word.lower()
        out.append(word)
    return " ".join(out)


def _split_heading(text: str) -> list[str]:
    """A heading listing several subjects ("Arrays, Unions, and Enumerations") as one item each."""
    if "," not in text:
        return [text]
    parts = [p.strip(" .") for p in _LIST_SPLIT.split(text) if p.strip(" .")]
    return parts if len(parts) >= 2 else [text]


def _title_item(title: str) -> str:
    """A title as an item: "libffi: the portable ... library" -> "libffi (the portable ... library)"."""
    parts = _TITLE_SEPARATOR.split(title, maxsplit=1)
    if len(parts) == 2 and parts[0] and parts[1]:
        return f"{parts[0]} ({parts[1]})" if len(parts[0].split()) <= 3 else parts[0]
    return title


def default_coverage_items(documents: Sequence[Document], chunks: Sequence[Chunk], *, limit: int = MAX_ITEMS) -> list[str]:
    """What the documents cover, from their titles and top-level headings, most widely named first.

    Navigation and apparatus headings (Index, Contents, Credits, "Next/Up/Previous" panels,
    the boilerplate lines the import left out), FAQ-style headings, generic ones ("The Basics",
    "Simple Example") and file names are left out. Returns at most ``limit`` items.
    """
    by_document: dict[int, list[Chunk]] = {}
    for chunk in chunks:
        if not chunk.retired:
            by_document.setdefault(chunk.document_id or 0, []).append(chunk)
    cases = _word_cases(chunks)
    titles: list[str] = []
    headings: list[list[str]] = []
    for document in documents:
        boilerplate = {" ".join(str(b).split()).casefold() for b in document.meta.get("boilerplate", [])}
        title = heading_text(document.title or "").replace("`", "")
        if title:
            titles.extend(part for part in _split_heading(_title_item(title)) if _usable(part, boilerplate))
        tops: list[str] = []
        # A source file's headings are its symbol names ("call", "Run"), not subjects a person would list.
        for chunk in by_document.get(document.id or 0, []) if document.format != "code" else []:
            path = [heading_text(h) for h in chunk.heading_path]
            if any(is_navigation_heading(h) or h.casefold() in {"faq", "faqs"} for h in path):
                continue  # nothing under an Index or a FAQ names a subject of the documents
            # A document whose one top heading repeats its title lists its subjects one level down.
            level = path[1:2] if path and path[0].casefold() == title.casefold() else path[:1]
            tops.extend(h.replace("`", "") for h in level)
        headings.append(
            [part for heading in dict.fromkeys(tops) for part in _split_heading(heading) if _usable(part, boilerplate)]
        )
    # Titles first, then the documents' headings in turn, so a long document does not crowd out the rest.
    raw = titles + [row[i] for i in range(max(map(len, headings), default=0)) for row in headings if i < len(row)]
    seen: dict[str, str] = {}
    for item in raw:
        item = _sentence_case(item.strip(" .:;"), cases)
        seen.setdefault(item.casefold(), item)
    # "libffi" says less than "libffi (the portable foreign function interface library)" beside it.
    named = {key.split(" (", 1)[0] for key in seen if " (" in key}
    return [item for key, item in seen.items() if key not in named][:limit]


def parse_coverage(text: str) -> list[str]:
    """Coverage items from a person's text: one per line or separated by semicolons."""
    return [item.strip() for item in re.split(r"[;\n]", text) if item.strip()]


def join_items(items: Sequence[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``."""
    if len(items) <= 1:
        return items[0] if items else NOTHING_NAMED
    return ", ".join(items[:-1]) + " and " + items[-1]


def items_per_answer(n_items: int) -> int:
    """How many items one answer names: three from a long list, two from a short one, so each is named rarely."""
    return 3 if n_items >= 20 else 2 if n_items >= 2 else n_items


def coverage_phrase(items: Sequence[str], index: int, rng: random.Random) -> str:
    """A phrase naming a few of ``items`` in one of several frames ("topics such as A, B and C").

    The ``index``-th refusal of a run takes the next items in turn, so over a run every item
    is named by the same small share of answers (2 of 15 items: 13%); ``rng`` orders them.
    """
    if not items:
        return NOTHING_NAMED
    k = items_per_answer(len(items))
    start = (index * k) % len(items)
    drawn = [items[(start + j) % len(items)] for j in range(k)]
    rng.shuffle(drawn)
    return COVERAGE_FRAMES[(index + rng.randrange(2)) % len(COVERAGE_FRAMES)].format(items=join_items(drawn))


def _ngrams(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{topic\}|\{coverage\})", template)
    body = "".join("(.+?)" if p in ("{topic}", "{coverage}") else re.escape(p) for p in parts)
    return re.compile(body + r"$", re.I | re.S)


def most_shared_phrase(answers: Sequence[str], templates: Sequence[str], *, n: int = 3) -> tuple[str, float]:
    """The run of ``n`` words most answers share outside their declination template, and that share.

    Each answer is matched against ``templates`` (its {topic} and {coverage} slots are what
    it says beyond the template); an answer matching none counts as a whole. Returns
    ("", 0.0) for no answers.
    """
    patterns = [_template_pattern(t) for t in templates]
    counts: Counter[tuple[str, ...]] = Counter()
    for answer in answers:
        slots = [answer]
        for pattern in patterns:
            match = pattern.match(answer)
            if match:
                slots = list(match.groups())
                break
        grams: set[tuple[str, ...]] = set()
        for slot in slots:
            grams |= _ngrams([w.casefold() for w in _WORD.findall(slot)], n)
        counts.update(grams)
    if not counts or not answers:
        return "", 0.0
    gram, count = counts.most_common(1)[0]
    return " ".join(gram), count / len(answers)


__all__ = [
    "COVERAGE_FRAMES",
    "NOTHING_NAMED",
    "coverage_phrase",
    "default_coverage_items",
    "items_per_answer",
    "join_items",
    "most_shared_phrase",
    "parse_coverage",
]
