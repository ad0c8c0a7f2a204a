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

# A decline says what the model learned from does not hold the answer, or that it cannot answer;
# a sentence that only says what the system does not do ("the client doesn't retry jobs",
# "the payload isn't included in the metrics") is an answer. Only the opening counts, so an
# answer that states a fact and later says "the docs don't cover Windows" is not a decline.
_SOURCE = (
    r"(?:documentation|docs?|documents?|materials?|sources|knowledge(?: base)?|training|corpus"
    r"|handbook|manuals?|guides?|faq|(?<=\w )I (?:have|know|learned|learnt|was (?:given|trained on|taught)))"
)
_NEG = r"(?:doesn't|does not|don't|do not|didn't|did not|never)"
_COVER = (
    r"(?:cover|mention|discuss|describ|explain|document|address|includ|contain)\w*"
    r"|(?:talks?|say|says) (?:about|anything)|(?:go|goes|get|gets) into|touch(?:es)? on|deals? with"
    r"|extends? to|reach(?:es)?\b|help\b"
)
# What the speaker learned, said without a source noun: "what I was taught", "what I've learned".
_LEARNED = r"what I(?:'ve| have)? (?:know|learned|learnt|(?:was|been) (?:taught|given|trained on))"
_STOPS = (
    r"(?: I [\w']+(?: [\w']+)?)? (?:is |are )?(?:only )?"
    r"(?:(?:limited|restricted|confined) to|stops? (?:at|with)|ends? (?:at|with)|goe?s? as far as)\b"
)
# Where the speaker would send the user instead: "the Kubernetes docs", "Stripe's own documentation".
_ELSEWHERE = r"(?:docs|documentation|manual|support|forums?|community|vendor|provider)\b"
# A few words within one clause: "the material I was trained on doesn't cover".
_GAP = r"(?:[^\w.;:!?]+[\w']+){0,10}?[^\w.;:!?]+"
_SHORT_GAP = r"(?:[^\w.;:!?]+[\w']+){0,6}?[^\w.;:!?]+"
_NO_RECORD = r"no (?:information|documentation|details?|mention|material)"
_NOTHING = rf"(?:nothing|{_NO_RECORD})"
_DECLINE_PATTERNS = (
    # the sources do not cover it, or stop short of it ("the knowledge I have is limited to", "the docs
    # only go as far as")
    rf"\b{_SOURCE}(?:{_GAP}{_NEG}(?: ever)? (?:{_COVER})|{_STOPS})|\b{_LEARNED}{_STOPS}",
    rf"(?:n't|\bnot) (?:covered|documented|mentioned|described|discussed|explained|addressed|part of|in)"
    rf"(?:{_SHORT_GAP}{_SOURCE}\b| (?:here|anywhere|at all)\b)",
    r"\b(?:that|this|it)(?:'s| is) not (?:covered|documented)\s*(?:[.!;,]|$)",
    rf"(?:n't|\bnot) (?:one|something|anything|a (?:topic|subject|question|thing))(?: that)?"
    rf"(?:{_SHORT_GAP}{_SOURCE}\b| I (?:can|know|have|was)\b| (?:it|they) (?!help)(?:{_COVER}))",
    # nothing the speaker learned covers it ("Nothing I tried helps" is the user's story, not a decline)
    rf"\bnothing (?:that )?(?:I(?: [\w']+){{1,3}}?|in (?:my|the|these) (?:\w+ )?{_SOURCE}) (?!help)(?:{_COVER})",
    # "nothing in the docs" alone may go on to answer ("Nothing in the docs says you must restart")
    rf"\b{_NOTHING} (?:about|on|of|regarding)\b.*\b{_SOURCE}\b|\b{_NO_RECORD} in\b.*\b{_SOURCE}\b",
    rf"\b{_SOURCE}\b.*\b{_NOTHING} (?:about|on|of|regarding)\b",
    rf"\bnone of (?:the|my|these) (?:\w+ )?{_SOURCE}",
    rf"\bsilent (?:on|about)\b.*\b{_SOURCE}\b|\b{_SOURCE}\b.*\bsilent (?:on|about)\b",
    r"(?:n't|\bnot) (?:among|one of) (?:the|its|their|my) (?:topics|subjects|things)\b",
    # it belongs to another product's documentation or people
    rf"\b(?:a question|one) for (?:the |your |an? )?(?:[\w'-]+ ){{0,4}}?{_ELSEWHERE}"
    rf"|\byou(?:'d| would|'ll| will| may| might)? (?:want|need|be better (?:off|served))\b[^.;:!?]{{0,60}}?\b{_ELSEWHERE}"
    rf"|\b(?:[\w-]+'s|its|their) own {_ELSEWHERE}|\brather than (?:me|here)\b",
    # the speaker cannot answer, does not know, was not trained on it, would be guessing
    r"\bI(?: can't| cannot| can not|'m unable to| am unable to|'m not able to| am not able to|'m not in a position to"
    r"| am not in a position to| won't be able to)(?: \w+){0,2}? (?:answer|help|tell|say|speak|advise|explain|comment"
    r"|compare|give you (?:a |an )?(?:\w+ )?answer|find (?:anything|any|information|details))",
    r"\bI (?:couldn't|could not|was unable to|wasn't able to|was not able to|can't|cannot)(?: \w+)? (?:find|locate)"
    r" (?:(?:that|this|it)(?= in\b| anywhere\b|[.,;:!]|$)|anything|any|information|details|mention)\b",
    r"\bI(?:'m| am) not aware of (?:any (?:\w+ )?(?:information|documentation|details|mention|material)|anything (?:about|on)\b)",
    r"\bI (?:do not|don't) know\b(?! (?:of|if|whether)\b)",
    r"\bI have no idea\b",
    r"\bI (?:do not|don't) have (?:an?|the|any) (?:\w+ )?answer\b|\bI have no (?:\w+ )?answer\b",
    r"\bI (?:have no|lack|(?:do not|don't) have(?: any)?)(?: \w+)? (?:information|knowledge|details|documentation|data|material)\b",
    r"\bI (?:do not|don't) have anything (?:on|about)\b",
    r"\bI (?:was not|wasn't|was never|have not been|haven't been) (?:trained|given|taught)\b",
    r"\bI (?:have not|haven't|never) (?:seen|found|come across|read) (?:anything|any)\b",
    r"\b(?:be|am|'m) (?:only )?guessing\b|\b(?:won't|will not|rather not|not) guess\b"
    r"|\bmake (?:something|anything|things) up\b",
    r"\bI(?:'m| am) (?:not|only) familiar with\b|\bI can only (?:answer|help|speak)\b|\bmy knowledge is limited\b",
    # it is outside what the sources cover
    rf"\b(?:outside|beyond|past) (?:of )?(?:the scope|what(?: [\w']+){{0,6}}? (?:{_COVER}|know|learned|was trained)"
    rf"|(?:the|these|this|my) (?:\w+ )?{_SOURCE}\b|my \w+)|\bout of (?:my |the )?scope\b",
)
# Declines that only read as one from the sentence's first word: "Can't help with that one.",
# "No idea, sorry.", "I'm not sure." and stop, or not sure how it works. A hedge before an answer
# ("Can't say for sure, but ...", "I'm not sure how many hosts you have, so start with 4") or a
# question asked back ("not sure what you mean?") is not a decline; nor is "No idea is too small".
_DECLINE_OPENINGS = (
    r"(?!.*\bbut\b)(?:\w+,? )?(?:can't|cannot) (?:say|tell you"
    r"|(?:help|answer|comment|advise)(?= (?:with|on|that|this|it|there|you|your)\b|[,.!]|$))",
    r"(?!.*\bbut\b)(?:\w+,? )?no idea(?=[,.!]|$| (?:how|what|why|whether|if|where|when|which|about)\b)",
    r"(?:I(?:'m| am) )?(?:not sure|unsure)(?:,? (?:sorry|I'm afraid))?[.!]?$",
    r"(?!.*(?:\bbut\b|\bso\b|[?;:]|\byour?\b))"
    r"(?:\w+,? )?I(?:'m| am) (?:not sure|unsure) (?:how|what|why|whether|if|about|where|when|which)\b",
)
# Every pattern starts at a word boundary or at "n't"; saying so first skips the rest of a word at
# once instead of trying every pattern at each of its letters.
_DECLINE = re.compile(r"(?=\b|n't)(?:" + "|".join(f"(?:{p})" for p in _DECLINE_PATTERNS) + ")", re.IGNORECASE)
_DECLINE_OPENING = re.compile("|".join(f"(?:{p})" for p in _DECLINE_OPENINGS), re.IGNORECASE)
DECLINE_WINDOW_CHARS = 300
# A sentence ends at . ! ? before a space: a dot inside a word (retry.max_attempts) or a '?' in a
# URL (/v1/jobs?state=dead) does not end one.
_SENTENCE = re.compile(r"\S.*?(?:[.!?](?=\s|$)|$)", re.DOTALL)
# A question quoted in the answer ("the FAQ's "Why did my job run twice?" entry") is not asked.
_QUOTED_QUESTION = re.compile(r"[\"“][^\"“”\n]*\?[\"”]")
# An offer or a check-in after an answer ("Want an example?", "Does that help?", "..., okay?")
# asks nothing the answer needs; one that offers a choice ("the Docker steps or systemd?") does.
_OFFER = re.compile(
    r"(?i)^(?:so,? |and )?(?:want|would you like|would it help|do you want (?:me|the|a|an|to see)|shall I|should I|need"
    r"|questions|anything else|any (?:other|more|further) questions|is there anything else|does (?:that|this) help"
    r"|makes? sense)\b|,\s*(?:okay|ok|right|correct|isn't it|aren't they|yes)\?$"
)
# "Should you use Postgres?" speaks of anyone, and the answer follows.
_GENERIC_YOU = re.compile(r"(?i)\bshould you\b")
# The next sentence answers the question: it was rhetorical ("Can a job outlive its worker? Yes, ...").
# "Did you book outside the portal? Then submit the receipt." answers both cases; "Then I can
# tell you which setting" waits for the user.
_SELF_ANSWER = re.compile(r"(?i)^(?:yes|no|nope|yep|because|only|usually|then\b(?! I\b| we\b))\b")
# "Not sure how many you have? Run twctl status." opens a tip, not a question ("Not sure which you
# mean, the broker or a worker?" still asks).
_TIP = re.compile(r"(?i)^(?:not sure|unsure|curious|wondering)\b")
# A question asked back is about the user's case, a choice between things, or more detail.
_ADDRESSED = re.compile(
    r"(?i)\byou(?:'re|'ve|'d|r|rs)?\b|\bwhich\b(?! to\b)|\bwhat (?:kind|sort|type|version|exactly)\b|\bor\b"
    r"|\bclarify\b|\bspecify\b|\bmore (?:detail|context)\b|\bI need\b"
)
# A question asked back without a '?': "Let me know which queue you mean."
_REQUEST = re.compile(
    r"(?i)\b(?:let me know|tell me|please (?:tell|say|share|specify|confirm)"
    r"|(?:could|can) you (?:tell|say|clarify|share|specify|confirm))\b(?: \w+){0,2}? (?:which|what|whether|where|when|how)\b"
    r"|\bI need to know\b"
)

_ESTIMATE = TokenCounter.estimate()


def declines(answer: str) -> bool:
    """True when a sentence of the answer's opening declines or says its sources do not hold the answer."""
    opening = answer[:DECLINE_WINDOW_CHARS].replace("\u2019", "'")
    return any(
        _DECLINE_OPENING.match(sentence) or _DECLINE.search(sentence) for sentence in _SENTENCE.findall(opening)
    )


def _asks_back(sentence: str, following: str) -> bool:
    """Whether ``sentence`` (followed by ``following``) asks the user for what the answer needs."""
    if not sentence.endswith("?"):
        return bool(_REQUEST.search(sentence))
    offers_choice = " or " in sentence
    if ((_OFFER.search(sentence) or _TIP.match(sentence)) and not offers_choice) or _GENERIC_YOU.search(sentence):
        return False
    return not _SELF_ANSWER.match(following) and bool(_ADDRESSED.search(sentence))


def asks_to_clarify(answer: str) -> bool:
    """True when the answer asks the user back: a question about their case that it does not answer itself.

    Offers and check-ins after an answer ("Want an example?"), rhetorical questions answered in
    the next sentence and quoted questions do not count; a request without a '?' ("Let me know
    which queue you mean.") does.
    """
    text = _QUOTED_QUESTION.sub(" ", answer.replace("\u2019", "'"))
    sentences = [s.strip() for s in _SENTENCE.findall(text)]
    return any(_asks_back(s, sentences[i + 1] if i + 1 < len(sentences) else "") for i, s in enumerate(sentences))


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
