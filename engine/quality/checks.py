"""Per-pair checks: each failure becomes a PairWarning with a reason a person can act on."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from rapidfuzz import fuzz

from engine.models import Chunk, Pair, PairKind, PairWarning, WarningSpan
from engine.quality.mimicry import SHARE_MIN_PROSE_WORDS, CopyReport, find_copies
from engine.quality.offensive import offensive_classifier
from engine.quality.pii import find_pii
from engine.quality.prose import ProseWord, code_mask, prose_words
from engine.quality.registry import CHECKS
from engine.quality.sources import SEED_WORDS, source_stems
from engine.quality.substance import (
    find_non_answer,
    find_not_a_request,
    find_one_sided,
    find_prompt_leak,
    find_vacuous_answer,
)
from engine.quality.textstats import content_words, normalize, stem, words
from engine.quality.tokens import TokenCounter
from engine.settings import QualitySettings

if TYPE_CHECKING:
    from engine.store import Store

_AI_DISCLAIMER = re.compile(
    r"(?i)\bas an? (?:ai|artificial intelligence|large language model|language model|llm)\b"
    r"|\bI(?:'m| am) (?:just )?an? (?:ai|language model|large language model)\b"
    r"|\bI (?:do not|don't) have (?:access to (?:real-time|the internet|your)|personal (?:opinions|experiences))"
)
_APOLOGY = re.compile(
    r"(?i)^\W*(?:I(?:'m| am) (?:so |very )?sorry,? (?:but )?I (?:can(?:not|'t)|am unable|won't)"
    r"|I apologi[sz]e,? but|Unfortunately,? I (?:can(?:not|'t)|am unable))"
)
_SYCOPHANTIC = re.compile(
    r"(?i)^\W*(?:sure|certainly|of course|absolutely|great question|good question|excellent question"
    r"|what a (?:great|good|fantastic) question|i'd be (?:happy|glad) to|happy to help|glad you asked)\b[!,.:]?"
)
_FORMAT_LEAK = re.compile(r"(?i)^\W*(?:question|q|instruction|user|prompt|input|### ?instruction)\s*[:：]")
_DOCUMENT_SAYS = re.compile(
    r"(?i)\b(?:the|this|that|your|given|provided) (?:document|text|passage|context|article|source|excerpt|chunk"
    r"|section|snippet|documentation page)s? (?:says|said|say|states|stated|discusses|mentions|describes|explains"
    r"|talks about|covers|notes|suggests|indicates|tells|is about)\b"
    r"|\baccording to the (?:document|text|passage|context|article|excerpt|provided)"
    r"|\bwhat does the (?:document|text|passage|context|article|excerpt|section) (?:say|discuss|mention|describe|cover)"
)
_DECLINATION = re.compile(
    r"(?i)\b(?:not (?:covered|documented|mentioned|described|specified|stated|included|available|part of)"
    r"|(?:doesn't|does not|don't|do not|didn't|did not) (?:cover|mention|say|specify|document|describe|include|contain|provide|state)"
    r"|no (?:information|mention|documentation|details?|data)\b|nothing (?:about|on|in)"
    r"|(?:can't|cannot|can not|unable to|not able to|won't be able to) (?:answer|tell|say|confirm|find|help|provide|give|offer|advise|speak)"
    r"|(?:isn't|is not|aren't|are not) (?:covered|documented|mentioned|described|in the|something|anything|part of)"
    r"|(?:don't|do not) have (?:any )?(?:information|details|documentation|data)|going beyond|goes beyond"
    r"|outside (?:the|of the|what)|beyond (?:the scope|what)|I don't know|I do not know|there is no)"
)

GROUNDING_MIN_SHARE = 0.3
GROUNDING_MIN_WORDS = 8


def _warn(check: str, reason: str) -> PairWarning:
    return PairWarning(check=check, severity=CHECKS[check].severity, reason=reason)


def _without_code(text: str) -> str:
    """``text`` with its code blocks and inline code removed (a code block's closing braces are not a loop)."""
    pieces, position = [], 0
    for start, end in code_mask(text):
        pieces.append(text[position:start])
        position = end
    pieces.append(text[position:])
    return "".join(pieces)


def _repetition(text: str, prose: Sequence[ProseWord] | None = None) -> str | None:
    """Gopher-style repetition: a reason when duplicate lines or one n-gram dominate, else None."""
    lines = [line.strip() for line in _without_code(text).splitlines() if line.strip()]
    if len(lines) >= 4:
        duplicates = len(lines) - len(set(lines))
        if duplicates / len(lines) > 0.3:
            return f"{duplicates} of its {len(lines)} lines are repeats of other lines"
    # Measured on prose: identifiers such as tidewater_cache_hits_total legitimately share their parts.
    tokens = [w.word for w in (prose_words(text) if prose is None else prose)]
    total_chars = sum(len(t) for t in tokens)
    if len(tokens) < 20 or not total_chars:
        return None
    for n, limit in ((2, 0.20), (3, 0.18), (4, 0.16)):
        grams = Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
        gram, count = grams.most_common(1)[0]
        if count < 3:
            continue
        share = count * sum(len(t) for t in gram) / total_chars
        if share > limit:
            return f"the phrase \"{' '.join(gram)}\" repeats {count} times ({share:.0%} of the text)"
    return None


def _quote(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def _place(chunk: Chunk, start: int, end: int) -> str:
    """Where a span of a chunk sits: its document, section and characters in the document."""
    section = " › ".join(chunk.heading_path)
    where = f"document {chunk.document_id}" if chunk.document_id is not None else f"chunk {chunk.id}"
    return f"{where}{', ' + section if section else ''}, characters {chunk.start + start}-{chunk.start + end}"


def copy_verdict(
    response: str, sources: Sequence[Chunk], settings: QualitySettings, prose: Sequence[ProseWord] | None = None,
) -> tuple[CopyReport, bool]:
    """The copies of ``response``'s prose in ``sources`` and whether they pass the mimicry limits.

    Flagged when one copied run reaches ``settings.mimicry_min_run_words`` or, on an answer with at least
    SHARE_MIN_PROSE_WORDS prose words, the copied share reaches ``settings.mimicry_threshold``.
    """
    report = find_copies(response, sources, prose)
    longest = report.longest
    flagged = longest is not None and (
        longest.words >= settings.mimicry_min_run_words
        or (report.prose_words >= SHARE_MIN_PROSE_WORDS and report.share >= settings.mimicry_threshold)
    )
    return report, flagged


# At most this many copied runs are kept on a mimicry warning for highlighting.
MAX_WARNING_SPANS = 20


def _mimicry_warning(
    response: str, sources: Sequence[Chunk], report: CopyReport, origin: str, offset: int = 0
) -> PairWarning:
    """The mimicry warning: the longest copied run quoted with its place in the source, every run as a span.

    ``offset`` is where ``response`` starts in the pair's response (its leading whitespace), so the
    spans point into ``Pair.response`` itself.
    """
    span = report.longest
    assert span is not None
    chunk = sources[span.chunk_index]
    quoted = _quote(response[span.answer_start : span.answer_end])
    spans = tuple(
        WarningSpan(
            answer_start=s.answer_start + offset, answer_end=s.answer_end + offset,
            chunk_id=s.chunk_id, source_start=s.source_start, source_end=s.source_end,
        )
        for s in report.spans[:MAX_WARNING_SPANS]
    )
    return PairWarning(
        check="mimicry",
        severity=CHECKS["mimicry"].severity,
        reason=f"The answer copies a {span.words}-word run from {origin}: \"{quoted}\" (answer characters "
        f"{span.answer_start + offset}-{span.answer_end + offset}; source: "
        f"{_place(chunk, span.source_start, span.source_end)}); "
        f"{report.share:.0%} of its prose is copied in {len(report.spans)} run(s). "
        "Restate it in your own words so the model learns the facts, not the wording.",
        spans=spans,
    )


def grounding_share(response: str, source_text: str, known: frozenset[str] | None = None) -> tuple[float, int]:
    """(share of the response's content words whose stem appears in the sources, number of content words).

    ``known`` are the sources' stems when the caller has them (cached per chunk); else they come from ``source_text``.
    """
    answer = content_words(response)
    if not answer:
        return 1.0, 0
    if known is None:
        known = frozenset(stem(w) for w in content_words(source_text))
    found = sum(1 for w in answer if stem(w) in known)
    return found / len(answer), len(answer)


def _restates_question(instruction: str, response: str) -> str | None:
    if _FORMAT_LEAK.match(response):
        return "The answer starts with a prompt label such as \"Question:\"; remove it so the model does not learn the format leak."
    question = normalize(instruction)
    if len(question) < 20:
        return None
    first_sentence = re.split(r"(?<=[.?!:])\s|\n", response.strip(), maxsplit=1)[0]
    opening = normalize(first_sentence)
    if opening.startswith(question) or (
        len(opening) < 2 * len(question) and fuzz.ratio(question, opening) >= 85
    ):
        return "The answer opens by repeating the question; start with the answer itself."
    return None


def check_pair(
    pair: Pair,
    sources: Sequence[Chunk],
    settings: QualitySettings,
    *,
    token_counter: TokenCounter | None = None,
) -> list[PairWarning]:
    """Run every per-pair check; returns the failures (empty when the pair is clean).

    ``sources`` are the pair's source chunks (their ``document_id`` decides the multi-hop check). Token counts
    use ``token_counter`` or, when None, the character estimate.
    """
    found: list[PairWarning] = []
    instruction, response = pair.instruction.strip(), pair.response.strip()
    min_response = settings.strict_min_response_chars if settings.profile == "strict" else settings.min_response_chars

    if len(instruction) < settings.min_instruction_chars:
        found.append(_warn("too_short_instruction", f"The instruction has {len(instruction)} characters (minimum {settings.min_instruction_chars}); ask a complete question."))
    if len(response) < min_response:
        found.append(_warn("too_short_response", f"The answer has {len(response)} characters (minimum {min_response}); give a complete answer or reject the pair."))
    if len(response) > settings.max_response_chars:
        found.append(_warn("too_long_response", f"The answer has {len(response)} characters (maximum {settings.max_response_chars}); split it or shorten it."))
    if instruction and normalize(instruction) == normalize(response):
        found.append(_warn("identical_turns", "The answer is the same text as the instruction; write a real answer or reject the pair."))

    answer_words = words(response)
    if len(answer_words) > 20:
        unique = len(set(answer_words)) / len(answer_words)
        if unique < 0.4:
            found.append(_warn("low_unique_words", f"Only {unique:.0%} of the answer's {len(answer_words)} words are distinct (minimum 40%); remove the repetition."))
    prose = prose_words(response)  # shared by the repetition and copy checks
    repetition = _repetition(response, prose)
    if repetition:
        found.append(_warn("repeated_ngrams", f"The answer repeats itself: {repetition}; rewrite it without the loop."))

    if _AI_DISCLAIMER.search(response):
        found.append(_warn("ai_disclaimer", "The answer contains an AI disclaimer (\"As an AI language model...\"); remove it or the fine-tuned model will say it too."))
    if pair.kind is not PairKind.REFUSAL and _APOLOGY.search(response):
        found.append(_warn("apology_refusal", "The answer opens with a canned apology (\"I'm sorry, but I can't...\"); answer directly or make it a refusal pair."))
    if _SYCOPHANTIC.search(response):
        opener = _SYCOPHANTIC.search(response).group(0).strip()  # type: ignore[union-attr]
        found.append(_warn("sycophantic_opener", f"The answer opens with \"{opener}\"; start with the substance so the model does not learn the filler."))
    restated = _restates_question(instruction, response)
    if restated:
        found.append(_warn("restates_question", restated))
    where = [name for name, text in (("instruction", instruction), ("answer", response)) if _DOCUMENT_SAYS.search(text)]
    if where:
        found.append(_warn("document_says", f"The {' and the '.join(where)} talk{'s' if len(where) == 1 else ''} about \"the document\" instead of the subject; the model's users never see the document, so state the facts directly."))

    leak = find_prompt_leak(instruction, response, sources)
    if leak:
        found.append(_warn("prompt_leak", leak))
    not_request = find_not_a_request(instruction)
    if not_request:
        found.append(_warn("not_a_request", not_request))
    if pair.kind not in (PairKind.REFUSAL, PairKind.CLARIFICATION):
        non_answer = find_non_answer(instruction, response)
        if non_answer:
            found.append(_warn("non_answer", non_answer))
        elif len(response) >= min_response:  # a too-short answer already has its error
            vacuous = find_vacuous_answer(instruction, response, sources)
            if vacuous:
                found.append(_warn("vacuous_answer", vacuous))

    source_text = "\n".join(chunk.text for chunk in sources)
    if source_text and pair.kind is not PairKind.REFUSAL:
        copies, copied = copy_verdict(response, sources, settings, prose)
        if copied:
            lead = len(pair.response) - len(pair.response.lstrip())
            found.append(_mimicry_warning(response, sources, copies, "its source", lead))
        share, n_words = grounding_share(response, source_text, source_stems(list(sources)))
        if n_words >= GROUNDING_MIN_WORDS and share < GROUNDING_MIN_SHARE:
            found.append(_warn("low_grounding", f"Only {share:.0%} of the answer's content words appear in its sources; check it for invented facts."))

    if pair.kind is PairKind.REFUSAL:
        if pair.sources:
            found.append(_warn("refusal_has_source", f"This refusal pair is grounded on {len(pair.sources)} chunk(s); a refusal should have none, so remove the sources or change its kind."))
        if not _DECLINATION.search(response):
            found.append(_warn("refusal_no_declination", "This refusal pair's answer does not decline or say the information is missing; rewrite it to say what is not covered."))
    if pair.kind is PairKind.MULTI_HOP:
        documents = {chunk.document_id for chunk in sources if chunk.document_id is not None}
        if len(documents) < 2:
            found.append(_warn("multi_hop_one_document", f"This multi-hop pair draws on {len(documents)} document(s); it needs chunks from two or more, or change its kind."))
        else:
            one_sided = find_one_sided(instruction, response, sources)
            if one_sided:
                found.append(_warn("multi_hop_one_sided", one_sided))

    classifier = offensive_classifier()
    if classifier is not None:
        worst = max((classifier.score(text) for text in (instruction, response)), key=lambda s: s.probability)
        if worst.probability >= settings.offensive_threshold:
            found.append(_warn("offensive_content", f"The pair contains offensive language (\"{_quote(worst.sentence, 80)}\", probability {worst.probability:.2f}); rewrite it or reject the pair."))

    pii_kinds: Counter[str] = Counter()
    for text in [*(m.content for m in pair.messages), pair.context or ""]:
        pii_kinds.update(match.kind for match in find_pii(text))
    for kind, count in sorted(pii_kinds.items()):
        check = f"pii_{kind}"
        found.append(_warn(check, f"The pair contains {count} {CHECKS[check].title.lower()}{'s' if count > 1 else ''}; run `pairforge redact` or edit it out."))

    counter = token_counter or _ESTIMATE
    tokens = counter.count_pair(pair)
    if tokens > settings.max_seq_length:
        label = " (estimated)" if counter.estimated else ""
        found.append(_warn("over_max_seq_length", f"The pair has {tokens} tokens{label}, more than max_seq_length {settings.max_seq_length}; shorten it or raise the limit."))
    if pair.stale:
        found.append(_warn("stale_source", "A source chunk changed after this pair was made; check the pair against the new text or regenerate it."))
    if pair.score is not None and pair.score < settings.judge_threshold:
        found.append(_warn("judge_low_score", f"The judge scored this pair {pair.score:.1f}/10, below the threshold of {settings.judge_threshold:g}; edit it, or reject it with `pairforge curate`."))
    return found


_ESTIMATE = TokenCounter.estimate()


def _batched_ids(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


# Imported pairs have no sources; they are compared with the whole corpus when it is at most this many seeds.
CORPUS_NGRAM_LIMIT = 3_000_000


class CorpusNgrams:
    """Prose word seeds of every chunk, so a pair without sources can still be caught copying the corpus."""

    def __init__(self, store: Store) -> None:
        self._owner: dict[int, int] = {}
        for chunk in store.list_chunks():
            tokens = [w.word for w in prose_words(chunk.text)]
            for i in range(len(tokens) - SEED_WORDS + 1):
                self._owner.setdefault(hash(tuple(tokens[i : i + SEED_WORDS])), chunk.id or 0)
            if len(self._owner) > CORPUS_NGRAM_LIMIT:
                self._owner.clear()  # too big to hold; sourceless pairs are then not compared
                break

    def likely_sources(self, text: str, limit: int = 3) -> list[int]:
        """Chunk ids sharing the most prose seeds with ``text`` (empty when none share any)."""
        tokens = [w.word for w in prose_words(text)]
        hits: Counter[int] = Counter()
        for i in range(len(tokens) - SEED_WORDS + 1):
            owner = self._owner.get(hash(tuple(tokens[i : i + SEED_WORDS])))
            if owner is not None:
                hits[owner] += 1
        return [chunk_id for chunk_id, _ in hits.most_common(limit)]


def _corpus_mimicry(pair: Pair, corpus: CorpusNgrams, chunks: dict[int, Chunk], store: Store, settings: QualitySettings) -> PairWarning | None:
    candidates = corpus.likely_sources(pair.response)
    if not candidates:
        return None
    missing = [c for c in candidates if c not in chunks]
    for chunk in store.get_chunks(missing):
        if chunk.id is not None:
            chunks[chunk.id] = chunk
    sources = [chunks[c] for c in candidates if c in chunks]
    report, copied = copy_verdict(pair.response, sources, settings)
    return _mimicry_warning(pair.response, sources, report, "the imported documents") if copied else None


def recheck(store: Store, ids: Sequence[int] | None = None, *, batch: int = 500) -> int:
    """Re-run every check over stored pairs (all, or ``ids``) and store the warnings; returns how many changed.

    Pairs and their source chunks are read in batches, so memory stays bounded at any dataset size. Warnings are
    derived data: they are saved with ``store.set_warnings`` (no undo step).
    """
    from engine.store import PairChange, PairFilter

    settings = store.settings.quality
    counter = TokenCounter.from_settings(settings)
    chunk_cache: dict[int, Chunk] = {}
    changed = 0
    corpus: CorpusNgrams | None = None

    def process(pairs: list[Pair]) -> None:
        nonlocal changed, corpus
        wanted = sorted({cid for p in pairs for cid in p.sources if cid not in chunk_cache})
        if len(chunk_cache) > 20_000:
            chunk_cache.clear()  # keeps memory bounded on huge corpora; chunks are re-read when needed
        for chunk in store.get_chunks(wanted):
            if chunk.id is not None:
                chunk_cache[chunk.id] = chunk
        updates: dict[int, list[PairWarning]] = {}
        notices: list[PairChange] = []
        for pair in pairs:
            sources = [chunk_cache[c] for c in pair.sources if c in chunk_cache]
            warnings = check_pair(pair, sources, settings, token_counter=counter)
            if not pair.sources and pair.kind in (PairKind.IMPORTED, PairKind.MANUAL):
                corpus = corpus or CorpusNgrams(store)
                copied = _corpus_mimicry(pair, corpus, chunk_cache, store, settings)
                if copied is not None:
                    warnings.append(copied)
            if warnings != pair.warnings and pair.id is not None:
                updates[pair.id] = warnings
                notices.append(PairChange(pair.id, pair, pair.model_copy(update={"warnings": warnings})))
        if updates:
            store.set_warnings(updates, changes=notices)
            changed += len(updates)

    if ids is None:
        pending: list[Pair] = []
        for pair in store.iter_pairs(batch=batch):
            pending.append(pair)
            if len(pending) >= batch:
                process(pending)
                pending = []
        if pending:
            process(pending)
    else:
        for part in _batched_ids(list(ids), batch):
            process(list(store.iter_pairs(PairFilter(ids=part), batch=batch)))
    return changed


__all__ = ["check_pair", "copy_verdict", "grounding_share", "recheck"]
