"""What one answer of an evaluated model did: declined, asked back, copied the corpus, tripped the gate.

Every check the gate runs on a pair runs on the probe's question and the model's answer
(:func:`engine.quality.check_pair`, with the probe's source chunks), and the copy measure
compares the answer with the whole corpus: the probe's chunks plus the chunks sharing the
most prose seeds with the answer, so an answer that recites another passage is caught too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.models import Chunk, Pair, PairKind, PairWarning, Severity
from engine.quality.checks import CorpusNgrams, check_pair, copy_verdict
from engine.quality.tokens import TokenCounter
from engine.settings import QualitySettings
from engine.store.evals import AMBIGUOUS, IN_CORPUS_KINDS, OUT_OF_CORPUS, Probe, ProbeAnswer

if TYPE_CHECKING:
    from engine.store import Store

# Why a probe failed, as stored on its answer and offered as filters.
COPIED, NON_ANSWER, WRONGLY_REFUSED, WRONGLY_ANSWERED, NO_CLARIFICATION, DISAGREES = (
    "copied", "non_answer", "wrongly_refused", "wrongly_answered", "no_clarification", "disagrees",
)
FAILURE_KINDS = (COPIED, NON_ANSWER, WRONGLY_REFUSED, WRONGLY_ANSWERED, NO_CLARIFICATION, DISAGREES)
FAILURE_TITLES = {
    COPIED: "copies the corpus",
    NON_ANSWER: "says where, not what",
    WRONGLY_REFUSED: "declined an in-corpus question",
    WRONGLY_ANSWERED: "answered an out-of-corpus question",
    NO_CLARIFICATION: "answered an ambiguous question without asking",
    DISAGREES: "disagrees with the reference",
}
# A judge score below this (out of 10) on a probe with a reference answer fails it.
AGREEMENT_PASS = 5.0

# A decline says the knowledge is not there, or that the model cannot answer; only the opening
# counts, so an answer that states a fact and later says "there is no limit" is not a decline.
_DECLINE = re.compile(
    r"(?i)\b(?:(?:is|are|was|'s)(?:n't| not) (?:covered|documented|mentioned|described|included|part of|something)"
    r"|nothing in (?:the|my|these|this) \w+(?: \w+)? (?:talks about|mentions|covers|says|describes|explains)"
    r"|not (?:covered|documented|mentioned|described) (?:in|by)"
    r"|(?:do(?:es)?n't|do(?:es)? not) (?:cover|mention|document|describe|include|contain|say anything)"
    r"|no (?:information|documentation|details?|mention) (?:about|on|of|regarding)"
    r"|(?:can't|cannot|can not|unable to|not able to) (?:answer|help with|tell you|find|say|speak to|advise)"
    r"|(?:don't|do not) have (?:any )?(?:information|details|documentation|knowledge)"
    r"|outside (?:the scope|the documentation|what|of what|my)|beyond (?:the scope|what)"
    r"|I (?:don't|do not) know)"
)
DECLINE_WINDOW_CHARS = 300
# A sentence ending in '?'; a dot inside a word (retry.max_attempts) does not end a sentence.
_QUESTION_SENTENCE = re.compile(r"(?:[^.!?\n]|\.(?=\S))*\?")
_ASKS_BACK = re.compile(
    r"(?i)\b(?:you|your|which|do you mean|could you|can you|clarify|specify|more (?:detail|context)"
    r"|what (?:kind|sort|type) of)\b|\w,? or (?:a |an |the |one )?\w+[^?]*\?$"
)

_ESTIMATE = TokenCounter.estimate()


def declines(answer: str) -> bool:
    """True when the answer's opening declines or says the information is not available."""
    return bool(_DECLINE.search(answer[:DECLINE_WINDOW_CHARS]))


def asks_to_clarify(answer: str) -> bool:
    """True when the answer asks the user a question back (a sentence ending in '?' addressed to them)."""
    return any(_ASKS_BACK.search(sentence) for sentence in _QUESTION_SENTENCE.findall(answer))


def _probe_kind(probe: Probe) -> PairKind:
    if probe.kind == OUT_OF_CORPUS:
        return PairKind.REFUSAL
    if probe.kind == AMBIGUOUS:
        return PairKind.CLARIFICATION
    return PairKind.INSTRUCTION


class AnswerScorer:
    """Measures answers against the gate and the corpus; holds the corpus' seeds and a chunk cache.

    :meth:`score` may run in several threads at once once :meth:`load` was called: the seeds
    are only read, and a chunk two threads miss at once is read twice, never half-written.
    """

    def __init__(self, store: Store, settings: QualitySettings | None = None) -> None:
        self.store = store
        self.settings = settings or store.settings.quality
        self._corpus: CorpusNgrams | None = None
        self._chunks: dict[int, Chunk] = {}

    def load(self) -> None:
        """Read the corpus' prose seeds now (else the first answer scored does)."""
        if self._corpus is None:
            self._corpus = CorpusNgrams(self.store)

    def _get_chunks(self, ids: Sequence[int]) -> list[Chunk]:
        missing = [i for i in ids if i not in self._chunks]
        for chunk in self.store.get_chunks(missing) if missing else []:
            if chunk.id is not None:
                self._chunks[chunk.id] = chunk
        return [self._chunks[i] for i in dict.fromkeys(ids) if i in self._chunks]

    def score(
        self, probe: Probe, answer: str, *, run_id: int, model: str, agreement: float | None = None
    ) -> ProbeAnswer:
        """What ``answer`` to ``probe`` did, with the failures that make the probe fail."""
        self.load()
        assert self._corpus is not None
        sources = self._get_chunks(probe.chunk_ids)
        pair = Pair.simple(probe.question, answer, kind=_probe_kind(probe), sources=list(probe.chunk_ids))
        warnings = check_pair(pair, sources, self.settings, token_counter=_ESTIMATE)
        against = self._get_chunks([*probe.chunk_ids, *self._corpus.likely_sources(answer)])
        report, copied = copy_verdict(answer, against, self.settings)
        if copied and not any(w.check == "mimicry" for w in warnings):
            longest = report.longest
            words = longest.words if longest else 0
            warnings.append(PairWarning(
                check="mimicry", severity=Severity.WARNING,
                reason=f"The answer copies a {words}-word run from the corpus; {report.share:.0%} of its prose is copied.",
            ))
        declined, clarified = declines(answer), asks_to_clarify(answer)
        failures: list[str] = []
        if probe.kind in IN_CORPUS_KINDS:
            if copied:
                failures.append(COPIED)
            if any(w.check == "non_answer" for w in warnings):
                failures.append(NON_ANSWER)
            if declined:
                failures.append(WRONGLY_REFUSED)
            if agreement is not None and agreement < AGREEMENT_PASS:
                failures.append(DISAGREES)
        elif probe.kind == OUT_OF_CORPUS and not declined:
            failures.append(WRONGLY_ANSWERED)
        elif probe.kind == AMBIGUOUS and not clarified:
            failures.append(NO_CLARIFICATION)
        return ProbeAnswer(
            run_id=run_id, probe_id=probe.id or 0, model=model, answer=answer,
            flags=tuple({"check": w.check, "severity": str(w.severity), "reason": w.reason} for w in warnings),
            failures=tuple(failures), declined=declined, clarified=clarified, copied=copied,
            copy_share=round(report.share, 4), agreement=agreement,
        )


__all__ = [
    "AGREEMENT_PASS",
    "COPIED",
    "DISAGREES",
    "FAILURE_KINDS",
    "FAILURE_TITLES",
    "NON_ANSWER",
    "NO_CLARIFICATION",
    "WRONGLY_ANSWERED",
    "WRONGLY_REFUSED",
    "AnswerScorer",
    "asks_to_clarify",
    "declines",
]
