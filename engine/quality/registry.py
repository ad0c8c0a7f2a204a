"""Every check id the engine can attach to a pair, for the TUI, the CLI and the dataset card."""

from __future__ import annotations

from dataclasses import dataclass

from engine.models import Severity


@dataclass(frozen=True)
class CheckInfo:
    """What one check looks for and how serious a failure is."""

    id: str
    severity: Severity
    title: str
    description: str


def _info(id: str, severity: Severity, title: str, description: str) -> tuple[str, CheckInfo]:
    return id, CheckInfo(id, severity, title, description)


E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

CHECKS: dict[str, CheckInfo] = dict(
    [
        _info("too_short_instruction", E, "Instruction too short", "The instruction has fewer characters than quality.min_instruction_chars (10)."),
        _info("too_short_response", E, "Answer too short", "The answer has fewer characters than quality.min_response_chars (20; 50 with the strict profile)."),
        _info("too_long_response", W, "Answer too long", "The answer has more characters than quality.max_response_chars (4000)."),
        _info("identical_turns", E, "Answer repeats the instruction", "The instruction and the answer are the same text."),
        _info("low_unique_words", W, "Repetitive answer", "Fewer than 40% of the words of an answer over 20 words are distinct."),
        _info("repeated_ngrams", W, "Repeated lines or phrases", "Gopher-style repetition: duplicate lines, or one 2/3/4-gram covering too much of the answer."),
        _info("ai_disclaimer", E, "AI disclaimer", "The answer says \"As an AI language model\" or similar, which the model would learn to repeat."),
        _info("apology_refusal", W, "Canned apology", "A non-refusal answer opens with \"I'm sorry, but I can't\" or a similar canned apology."),
        _info("sycophantic_opener", W, "Sycophantic opener", "The answer opens with \"Sure! Here is\", \"Certainly!\", \"Great question\" and the like."),
        _info("restates_question", W, "Question restated", "The answer starts by repeating the question or a prompt label (format leak)."),
        _info("document_says", E, "\"The document says\"", "The pair talks about \"the document\" instead of the subject, which a user of the model never sees."),
        _info("non_answer", E, "Non-answer", "The answer only says where or whether a topic is discussed (\"Chapter 5 discusses error handling\") instead of stating it."),
        _info("mimicry", W, "Copies its source", "The answer's prose (code, quotes, paths, identifiers left out) holds a run of quality.mimicry_min_run_words (12) words copied from its source, small edits included, or a copied share of quality.mimicry_threshold (40%) or more."),
        _info("prompt_leak", E, "Prompt or template leak", "A template slot ([type], {source}, <<<) or a label or sentence of the generation prompt (\"The user asked:\", \"Return JSON\") shows in the pair."),
        _info("not_a_request", W, "Not a request", "The instruction is neither a question nor a request: a bare phrase, or a narration about asking."),
        _info("vacuous_answer", W, "Says nothing", "The answer only restates the question's terms or itself and adds nothing its sources hold."),
        _info("low_grounding", INFO, "Weakly grounded", "Few of the answer's content words appear in its sources: it may be hallucinated."),
        _info("refusal_has_source", W, "Refusal with sources", "A refusal pair should not be grounded on any chunk."),
        _info("refusal_no_declination", E, "Refusal that answers", "A refusal pair's answer does not decline or say the information is not available."),
        _info("multi_hop_one_document", W, "Multi-hop from one document", "A multi-hop pair must draw on chunks of two or more documents."),
        _info("multi_hop_one_sided", W, "One-sided multi-hop", "A multi-hop answer draws nothing specific from one of its source documents."),
        _info("offensive_content", E, "Offensive content", "A sentence of the pair is offensive according to the bundled classifier of alt-profanity-check (probability at least quality.offensive_threshold, 0.8)."),
        _info("pii_email", W, "Email address", "The pair contains an email address."),
        _info("pii_phone", W, "Phone number", "The pair contains a phone number."),
        _info("pii_ip", W, "IP address", "The pair contains a routable IPv4 or IPv6 address (loopback and unspecified addresses are ignored)."),
        _info("pii_credit_card", E, "Card number", "The pair contains a payment card number (Luhn-checked)."),
        _info("pii_iban", E, "IBAN", "The pair contains a bank account number (IBAN, mod-97-checked)."),
        _info("pii_api_key", E, "API key or token", "The pair contains what looks like a secret key or access token."),
        _info("pii_national_id", E, "National ID", "The pair contains a national identity number (US SSN pattern)."),
        _info("over_max_seq_length", W, "Longer than the training window", "The pair has more tokens than quality.max_seq_length and would be truncated in training."),
        _info("judge_low_score", W, "Low judge score", "The local judge model scored the pair below quality.judge_threshold (7/10)."),
        _info("stale_source", INFO, "Source changed", "A source chunk changed after this pair was made; the pair may no longer match its document."),
    ]
)

__all__ = ["CHECKS", "CheckInfo"]
