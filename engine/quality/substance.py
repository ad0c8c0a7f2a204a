"""Checks on what a pair says: non-answers, prompt leaks, non-requests, vacuous answers, one-sided multi-hop.

Each function returns a reason a person can act on, or None when the pair passes. They are regular
expressions and word-set comparisons, a few microseconds each, so they run on every new pair.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

from engine.models import Chunk
from engine.quality.pii import PLACEHOLDERS
from engine.quality.prose import code_mask, identifiers
from engine.quality.sources import source_stems
from engine.quality.textstats import ENGLISH_STOPWORDS, content_words, guess_language, stem, words

# ---------------------------------------------------------------------------------------------- non_answer

_DOC = (
    r"(?:document(?:ation)?|docs|chapter|section|subsection|guide|manual|page|source|text|passage|article"
    r"|tutorial|readme|faq|reference|notes|handbook|paragraph|appendix|excerpt|chunk|material|knowledge base"
    r"|release notes|overview|table)s?"
)
_SUBJECT = (
    rf"(?:\b(?:the|this|that|these|those|your|our|its|each|one|another|a|an)\s+(?:[\w'’-]+\s+){{0,3}}?{_DOC}\b"
    r"|\b(?:chapter|section|part|appendix|page|step)\s+[\dIVXivx]+(?:\.\d+)*\b"
    r"|\b[\w-]+\.(?:md|rst|txt|html?|pdf)\b)"
)
_ACTIVE_VERB = (
    r"(?:also\s+|briefly\s+|only\s+|mainly\s+|then\s+|further\s+)?"
    r"(?:discuss(?:es|ed)?|covers?|covered|describes?|described|explains?|explained|mentions?|mentioned"
    r"|talks? about|talked about|deals? with|dealt with|refers? to|referred to|address(?:es|ed)?|touch(?:es|ed)? on"
    r"|goes (?:over|into)|went over|outlines?|outlined|details|presents?|introduces?|introduced|focus(?:es|ed)? on"
    r"|is about|are about|is dedicated to|is devoted to|walks? (?:you )?through|looks? at|examines?|treats?"
    r"|(?:contains?|provides?|has|have|includes?|gives?|offers?) (?:some |more |further |detailed )?"
    r"(?:information|details|guidance|an overview|a section|a discussion|an explanation|a description))\b"
)
# Reporting verbs carry content after them ("the guide says a job dies when..."); only a vague claim is a non-answer.
_REPORT_VERB = (
    r"(?:also\s+|only\s+|clearly\s+)?(?:says|said|states|stated|recommends?|suggests?|notes|advises?|emphasi[sz]es"
    r"|stresses|highlights|points out|tells you|reminds you)\b"
)
_ACTIVE = re.compile(rf"(?i){_SUBJECT}(?:\s*\([^)]*\))?\s*,?\s+(?:[\w'’-]+\s+){{0,2}}?{_ACTIVE_VERB}")
_REPORT = re.compile(rf"(?i){_SUBJECT}(?:\s*\([^)]*\))?\s*,?\s+(?:[\w'’-]+\s+){{0,2}}?{_REPORT_VERB}")
_PASSIVE = re.compile(
    r"(?i)\b(?:is|are|was|were|be|gets?|get)\s+(?:also\s+|briefly\s+|only\s+|further\s+|fully\s+|well\s+)?"
    r"(?:discussed|covered|described|explained|mentioned|addressed|documented|detailed|outlined|treated|presented"
    r"|introduced|referenced|noted|listed|explored|touched on|talked about|dealt with)"
    rf"(?:\s+(?:in detail|at length|in depth|briefly))?"
    rf"(?:\s+(?:in|within|under|throughout|on|by|across|at)\s+{_SUBJECT}"
    r"|\s+(?:as|in passing)\b|\s*(?:[.;]|$))"
)
_POINTER = re.compile(
    rf"(?i)\b(?:see|refer to|consult|look (?:at|in)|go to|turn to)\s+{_SUBJECT}"
    rf"|\b(?:you (?:can|will|'ll|could)|one can|it is possible to)\s+(?:find|read|learn|see)\b[^.]*\b(?:in|under)\s+{_SUBJECT}"
    rf"|\b(?:more |further |additional )?(?:information|details|an explanation)\b[^.]*\b(?:can be found|is available|are available|is given|are given)\s+(?:in|under)\b"
)
_VAGUE_CLAIM = re.compile(
    r"(?i)\bshould be (?:handled|managed|dealt with|treated|done|configured|used|considered|taken care of)"
    r"(?:\s+\w+)?\s+(?:gracefully|properly|appropriately|carefully|correctly|well|with care|effectively|efficiently|accordingly)"
    r"|\b(?:is|are) (?:very |really |quite )?(?:important|essential|crucial|key|critical|a good idea|recommended|useful|beneficial|vital)\b"
    r"|\bbest practices?\b|\b(?:an?|one) (?:important|key|useful|essential|major) (?:part|aspect|feature|consideration|topic)\b"
    r"|\bperformance optimi[sz]ation\b|\bin (?:a|an) (?:\w+ )?(?:way|manner)\b"
)
# "...explains that <a clause>" or "...: <a list>" states the content; a bare object ("discusses retries") does not.
_STATES_CONTENT = re.compile(r"(?i)^\s*(?:that|how[^.:]*:|what[^.:]*:|:|as\b)|^[^.]*:\s*\S+(?:\s+\S+){3,}")
_SOURCE_NOTE = re.compile(r"\((?:sources?|see|from)\s*:[^)]*\)\s*$", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"'“(]?[A-Z0-9`])|\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)])\s)")
# Content words an answer must add, outside its "where it is discussed" sentences, to count as an answer.
NON_ANSWER_MIN_CONTENT_WORDS = 6


def _meta_phrase(sentence: str) -> str | None:
    """The phrase that makes ``sentence`` a statement about where or whether something is discussed, or None."""
    for match in _ACTIVE.finditer(sentence):
        rest = sentence[match.end():]
        if not _STATES_CONTENT.match(rest) or _VAGUE_CLAIM.search(rest):
            return match.group(0)
    for match in _REPORT.finditer(sentence):
        if _VAGUE_CLAIM.search(sentence[match.end():]):
            return match.group(0)
    plain = _PASSIVE.search(sentence) or _POINTER.search(sentence)
    return plain.group(0) if plain else None


def _sentences(text: str) -> list[str]:
    return [s for s in (part.strip() for part in _SENTENCE.split(text)) if s]


# Every non-answer pattern needs one of these words; answers without any skip the sentence patterns.
_HINT = re.compile(
    rf"(?i){_DOC}|\.(?:md|rst|txt|html?|pdf)\b|\b(?:chapter|section|part|appendix|page|step)\b"
    r"|\b(?:discussed|covered|described|explained|mentioned|addressed|documented|detailed|outlined|treated|presented"
    r"|introduced|referenced|noted|listed|explored|touched|talked|dealt)\b"
)


def find_non_answer(instruction: str, response: str) -> str | None:
    """A reason when the answer only says where or whether a topic is discussed, not what it is; else None."""
    text = _SOURCE_NOTE.sub("", response.strip())
    if not text or not _HINT.search(text):
        return None
    question = {stem(w) for w in content_words(instruction)}
    phrase: str | None = None
    added: set[str] = set()
    for sentence in _sentences(text):
        found = _meta_phrase(sentence)
        if found is not None:
            phrase = phrase or found
            continue
        added.update(stem(w) for w in content_words(sentence) if stem(w) not in question)
    if phrase is None or len(added) >= NON_ANSWER_MIN_CONTENT_WORDS:
        return None
    phrase = " ".join(phrase.split())
    return (
        f"The answer says where or whether the topic is discussed (\"{phrase}\") instead of stating it; "
        "state the fact, the steps or the pattern itself, as the source gives them."
    )


# --------------------------------------------------------------------------------------------- prompt_leak

_SLOT_WORDS = (
    "type|data|source|topic|question|answer|instruction|content|context|chunk|text|name|value|placeholder|concept"
    "|concepts|keyword|term|subject|response|output|input|heading|section|example|angle|coverage|overview|style|system"
)
_SLOT = re.compile(
    rf"\[(?:[a-z]+_[a-z0-9_]+|[a-z]+\d+|(?:{_SLOT_WORDS})|insert [^\]\n]{{1,40}}|your [^\]\n]{{1,40}})\](?!\()"
    rf"|\{{\{{?\s*(?:[a-z]+_[a-z0-9_]+|{_SLOT_WORDS}|other_\w+)\s*\}}\}}?"
    # An angle-bracket slot ("<insert question here>", "<your answer>", "<question>"); outside code only, see _masked.
    rf"|<(?:insert [^>\n]{{1,40}}|your [^>\n]{{1,40}}|(?:{_SLOT_WORDS})(?: here)?)>"
    r"|<<<|>>>|<\|(?:im_start|im_end|user|assistant|system|eot_id|end)\|>|</?s>|\[/?INST\]",
    re.IGNORECASE,
)
_LABEL = re.compile(
    r"(?i)(?:^|(?<=[\s(\"'“]))(?:the user (?:asked|asks|said|wants)|the user's question|the ideal answer|ideal answer"
    r"|source text|source section|key concepts|section [ab]|the question is|question and answer|your answer"
    r"|assistant(?:'s)? (?:answer|reply)|expected answer)\s*:"
    r"|\breturn (?:only )?json\b|\bjson (?:matching|with) (?:the given schema|\"question\")"
    r"|\bwrite one question\b|\bmatching the given schema\b"
)
_PLACEHOLDER_TEXTS = frozenset(PLACEHOLDERS.values())
PROMPT_ECHO_WORDS = 7


@cache
def _prompt_grams() -> tuple[frozenset[str], frozenset[tuple[str, ...]]]:
    """Word 7-grams of the built-in prompt packs' instructions to the model (not the declinations pairs carry),
    and the words they start with (so most positions of an answer are skipped at the cost of a set look-up)."""
    from engine.generate.prompts import load_packs

    grams: set[tuple[str, ...]] = set()
    for pack in load_packs().values():
        texts = [pack.generator, pack.style, *(t.prompt for t in pack.templates.values())]
        for text in texts:
            tokens = words(re.sub(r"\{\w+\}", " ", text))
            for i in range(len(tokens) - PROMPT_ECHO_WORDS + 1):
                gram = tuple(tokens[i : i + PROMPT_ECHO_WORDS])
                if any(w not in ENGLISH_STOPWORDS for w in gram):
                    grams.add(gram)
    return frozenset(g[0] for g in grams), frozenset(grams)


def _masked(text: str) -> str:
    """``text`` with code blocks and inline code blanked, so a template in a code sample is not a leak."""
    pieces: list[str] = []
    position = 0
    for start, end in code_mask(text):
        pieces.append(text[position:start])
        pieces.append(" " * (end - start))
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def _leak_in(text: str, source_text: str) -> str | None:
    # The patterns scan every position; a slot needs a bracket and a label a colon or "json"/"question".
    if "[" in text or "{" in text or "<" in text or ">>>" in text:
        # A bracketed name the source itself holds (an API path's {job_id}) is quoted, not left over.
        slots = [
            m.group(0) for m in _SLOT.finditer(text)
            if m.group(0) not in _PLACEHOLDER_TEXTS and m.group(0) not in source_text
        ]
        if slots:
            return f"the template slot {slots[0]}"
    lowered = text.lower()
    label = _LABEL.search(text) if (":" in text or "json" in lowered or "write one" in lowered or "schema" in lowered) else None
    if label:
        return f"the prompt's label \"{label.group(0).strip()}\""
    tokens = words(text)
    starts, grams = _prompt_grams()
    for i in range(len(tokens) - PROMPT_ECHO_WORDS + 1):
        if tokens[i] in starts and tuple(tokens[i : i + PROMPT_ECHO_WORDS]) in grams:
            return f"the generation prompt's words \"{' '.join(tokens[i : i + PROMPT_ECHO_WORDS])}\""
    return None


def find_prompt_leak(instruction: str, response: str, sources: Sequence[Chunk] = ()) -> str | None:
    """A reason when a template slot, a prompt label or a sentence of the generation prompt shows in the pair.

    Slots that appear in the ``sources`` text are quotes of it, not leaks.
    """
    source_text = "\n".join(chunk.text for chunk in sources)
    for name, text in (("instruction", instruction), ("answer", response)):
        # Slots and labels are looked for outside code; angle-bracket templates inside a code sample are code.
        found = _leak_in(_masked(text), source_text)
        if found:
            return (
                f"The {name} contains {found}, left over from the generation prompt; "
                "rewrite it as a real question and answer, or reject the pair."
            )
    return None


# ------------------------------------------------------------------------------------------ not_a_request

_REQUEST_OPENER_WORDS = (
    "what how why when where which who whom whose is are was were am can could should would will shall do does did"
    " may might must has have had isn't aren't doesn't don't didn't can't won't shouldn't wouldn't couldn't"
    " explain describe list show give write tell compare summarize summarise walk help provide outline define"
    " create generate suggest recommend find calculate convert implement fix debug configure set make add remove"
    " rewrite translate name identify please i i'm i've i'd my we we're our let's let imagine suppose assume"
    " given using with if in for on after before during while when whats what's how's who's where's"
    " draft design build run install deploy enable disable turn change use check verify count estimate"
    " clarify elaborate detail sketch propose choose pick decide give state contrast distinguish evaluate"
    " analyze analyse review assess justify predict plan prepare document troubleshoot diagnose migrate upgrade"
    " rename replace update delete requeue enqueue cancel retry schedule inspect monitor measure test"
    " say any anything is there"
)
_REQUEST_OPENERS = frozenset(_REQUEST_OPENER_WORDS.split())
_NARRATION = re.compile(
    r"(?i)^\W*(?:you (?:ask|asked|are asking|want to ask|wonder)|the user (?:asks|asked|wants|is asking|wonders|would ask)"
    r"|a user (?:asks|asked|wants|is asking|wonders|would ask)|user (?:asks|asked|question)|ask (?:a|the) question"
    r"|a question (?:about|on|regarding)|question (?:about|on|regarding)|this (?:question|prompt) (?:is|asks))\b"
)
_ARTICLE_OPENER_WORDS = "the a an this that these those its their some"
_ARTICLE_OPENERS = frozenset(_ARTICLE_OPENER_WORDS.split())


def find_not_a_request(instruction: str) -> str | None:
    """A reason when the instruction is neither a question nor a request (a bare phrase, a narration); else None."""
    text = instruction.strip()
    if not text:
        return None
    if _NARRATION.search(text):
        return (
            "The instruction narrates asking instead of asking; write the question itself, "
            "as the user would type it."
        )
    if "?" in text or "？" in text:
        return None
    tokens = words(text)
    if not tokens or tokens[0] in _REQUEST_OPENERS:
        return None
    english = guess_language(text) == "en"
    if tokens[0] in _ARTICLE_OPENERS or (english and len(tokens) <= 12):
        return (
            f"The instruction \"{text[:60]}\" is neither a question nor a request; "
            "ask a question or give a task, as a user would."
        )
    return None


# ----------------------------------------------------------------------------------------- vacuous_answer

_VAGUE_WORD_LIST = (
    "thing things way ways aspect aspects important various different many several certain specific also itself"
    " themselves something anything behavior behaviour process feature features topic topics information detail"
    " details use used uses using good well properly gracefully appropriately correctly handled handle handles"
    " handling manner kind part parts role matter matters essential crucial key useful general generally overall"
    " basically simply really very just mechanism concept concepts implemented implement implementation done"
    " does performed perform work works working provides provide allows allow helps help ensure ensures"
)
_VAGUE_WORDS = frozenset(_VAGUE_WORD_LIST.split())
_VAGUE_STEMS = frozenset(stem(w) for w in _VAGUE_WORDS)
VACUOUS_MIN_NEW_WORDS = 3


def find_vacuous_answer(instruction: str, response: str, sources: Sequence[Chunk]) -> str | None:
    """A reason when the answer only restates the question's terms or itself, adding nothing the source holds."""
    answer = content_words(response)
    if not answer or guess_language(response) not in ("en", "unknown"):
        return None  # the word lists are English; other languages are left to the judge
    question = {stem(w) for w in content_words(instruction)}
    known = source_stems(list(sources)) if sources else None
    new = {stem(w) for w in answer} - question - _VAGUE_STEMS
    if known is not None:
        new &= known
    # Numbers and identifiers the question did not hold are facts however few they are.
    asked = set(instruction.split())
    named = set(identifiers(response)) - asked
    weight = sum(2 if any(ch.isdigit() for ch in w) else 1 for w in new) + 2 * len(named)
    if weight >= VACUOUS_MIN_NEW_WORDS:
        return None
    return (
        f"The answer adds {len(new)} word(s) of substance to the question's own terms; "
        "state the facts the source gives (names, values, steps, reasons)."
    )


# ------------------------------------------------------------------------------------- multi_hop_one_sided

MULTI_HOP_MIN_WORDS = 2


def _label(chunk: Chunk) -> str:
    place = " › ".join(chunk.heading_path) if chunk.heading_path else f"chunk {chunk.id}"
    return f"document {chunk.document_id} ({place})" if chunk.document_id is not None else place


def find_one_sided(instruction: str, response: str, sources: Sequence[Chunk]) -> str | None:
    """A reason naming the source a multi-hop answer draws nothing specific from, or None when it uses each."""
    groups: dict[int | str, list[Chunk]] = {}
    for chunk in sources:
        key: int | str = chunk.document_id if chunk.document_id is not None else f"chunk-{chunk.id}"
        groups.setdefault(key, []).append(chunk)
    if len(groups) < 2:
        return None
    stems = {key: source_stems(chunks) for key, chunks in groups.items()}
    question = {stem(w) for w in content_words(instruction)}
    answer = {stem(w) for w in content_words(response)} - question
    for key, own in stems.items():
        others = set().union(*(s for k, s in stems.items() if k != key))
        used = answer & (own - others)
        if len(used) < MULTI_HOP_MIN_WORDS:
            return (
                f"The multi-hop answer uses nothing specific to {_label(groups[key][0])}; "
                "combine facts from each of its sources, or change the pair's kind."
            )
    return None


__all__ = ["find_non_answer", "find_not_a_request", "find_one_sided", "find_prompt_leak", "find_vacuous_answer"]
