"""Per-pair checks: each failure becomes a PairWarning with a reason a person can act on."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from rapidfuzz import fuzz

from engine.models import Chunk, Pair, PairKind, PairWarning
from engine.quality.pii import find_pii
from engine.quality.registry import CHECKS
from engine.quality.textstats import content_words, normalize, stem, word_spans, words
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

MIMICRY_NGRAM = 8
# A shared span this long is a copy even when the answer is long enough to keep the overlap ratio low.
MIMICRY_MAX_VERBATIM_CHARS = 300
GROUNDING_MIN_SHARE = 0.3
GROUNDING_MIN_WORDS = 8


def _warn(check: str, reason: str) -> PairWarning:
    return PairWarning(check=check, severity=CHECKS[check].severity, reason=reason)


def _repetition(text: str) -> str | None:
    """Gopher-style repetition: a reason when duplicate lines or one n-gram dominate, else None."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) >= 4:
        duplicates = len(lines) - len(set(lines))
        if duplicates / len(lines) > 0.3:
            return f"{duplicates} of its {len(lines)} lines are repeats of other lines"
    tokens = words(text)
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


def verbatim_overlap(response: str, source_text: str, n: int = MIMICRY_NGRAM) -> tuple[float, int]:
    """(share of the response's word n-grams found in the source, longest verbatim span in characters)."""
    spans = word_spans(response)
    if len(spans) < n:
        return 0.0, 0
    source_words = words(source_text)
    source_grams = {tuple(source_words[i : i + n]) for i in range(len(source_words) - n + 1)}
    if not source_grams:
        return 0.0, 0
    tokens = [s[0] for s in spans]
    hits = [tuple(tokens[i : i + n]) in source_grams for i in range(len(tokens) - n + 1)]
    longest = 0
    run_start = None
    for i, hit in enumerate([*hits, False]):
        if hit and run_start is None:
            run_start = i
        elif not hit and run_start is not None:
            # A run of k matching n-grams starting at word s covers words s .. s+k+n-2.
            last_word = i - 1 + n - 1
            longest = max(longest, spans[last_word][2] - spans[run_start][1])
            run_start = None
    return sum(hits) / len(hits), longest


def grounding_share(response: str, source_text: str) -> tuple[float, int]:
    """(share of the response's content words whose stem appears in the sources, number of content words)."""
    answer = content_words(response)
    if not answer:
        return 1.0, 0
    known = {stem(w) for w in content_words(source_text)}
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
    repetition = _repetition(response)
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

    source_text = "\n".join(chunk.text for chunk in sources)
    if source_text and pair.kind is not PairKind.REFUSAL:
        overlap, verbatim = verbatim_overlap(response, source_text)
        if overlap >= settings.mimicry_threshold or verbatim >= MIMICRY_MAX_VERBATIM_CHARS:
            found.append(_warn("mimicry", f"The answer copies {verbatim} characters verbatim from its source ({overlap:.0%} {MIMICRY_NGRAM}-gram overlap); rephrase it so the model learns the facts, not the wording."))
        share, n_words = grounding_share(response, source_text)
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


# Imported pairs have no sources; they are compared with the whole corpus when it is at most this many 8-grams.
CORPUS_NGRAM_LIMIT = 3_000_000


class CorpusNgrams:
    """Word 8-grams of every chunk, so a pair without sources can still be caught copying the corpus."""

    def __init__(self, store: Store) -> None:
        self._owner: dict[int, int] = {}
        for chunk in store.list_chunks():
            tokens = words(chunk.text)
            for i in range(len(tokens) - MIMICRY_NGRAM + 1):
                self._owner.setdefault(hash(tuple(tokens[i : i + MIMICRY_NGRAM])), chunk.id or 0)
            if len(self._owner) > CORPUS_NGRAM_LIMIT:
                self._owner.clear()  # too big to hold; sourceless pairs are then not compared
                break

    def likely_sources(self, text: str, limit: int = 3) -> list[int]:
        """Chunk ids sharing the most 8-grams with ``text`` (empty when none share any)."""
        tokens = words(text)
        hits: Counter[int] = Counter()
        for i in range(len(tokens) - MIMICRY_NGRAM + 1):
            owner = self._owner.get(hash(tuple(tokens[i : i + MIMICRY_NGRAM])))
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
    source_text = "\n".join(chunks[c].text for c in candidates if c in chunks)
    overlap, verbatim = verbatim_overlap(pair.response, source_text)
    if overlap >= settings.mimicry_threshold or verbatim >= MIMICRY_MAX_VERBATIM_CHARS:
        return _warn("mimicry", f"The answer copies {verbatim} characters verbatim from the imported documents ({overlap:.0%} {MIMICRY_NGRAM}-gram overlap); rephrase it so the model learns the facts, not the wording.")
    return None


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


__all__ = ["check_pair", "grounding_share", "recheck", "verbatim_overlap"]
