"""Personal data and secrets: find them, and replace them with typed placeholders."""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.models import Message, Pair

if TYPE_CHECKING:
    from engine.store import Store

PLACEHOLDERS: dict[str, str] = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "ip": "[IP_ADDRESS]",
    "credit_card": "[CREDIT_CARD]",
    "iban": "[IBAN]",
    "api_key": "[API_KEY]",
    "national_id": "[NATIONAL_ID]",
}


@dataclass(frozen=True)
class PiiMatch:
    """One piece of personal data: its kind (a key of PLACEHOLDERS), span and text."""

    kind: str
    start: int
    end: int
    text: str


_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")
_API_KEYS = re.compile(
    r"\b(?:sk-(?:proj-|live-|test-)?[A-Za-z0-9_-]{20,}"
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_-]{35})"
)
# key = value where the value is long and random-looking; names alone ("api_token is empty") never match.
_ASSIGNED_SECRET = re.compile(
    r"(?i)\b[\w.-]*(?:api[_-]?key|secret|token|passw(?:or)?d|access[_-]?key)[\w.-]*\s*[:=]\s*[\"']?"
    r"(?P<value>[A-Za-z0-9_\-./+=]{16,})"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,5}){1,4}(?![\w])")
_DATE_LIKE = re.compile(r"^\d{4}[-.]\d{1,2}[-.]\d{1,2}$|^\d{1,2}[-.]\d{1,2}[-.]\d{2,4}$")


def luhn_valid(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum of card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """Whether ``text`` is an IBAN with a correct mod-97 check."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _personal_ip(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    # Loopback, "any" and link-local addresses appear in every config guide and identify no one.
    return not (address.is_loopback or address.is_unspecified or address.is_link_local or address.is_multicast)


def _candidates(text: str) -> list[PiiMatch]:
    found: list[PiiMatch] = []

    def add(kind: str, start: int, end: int) -> None:
        found.append(PiiMatch(kind, start, end, text[start:end]))

    for m in _API_KEYS.finditer(text):
        add("api_key", m.start(), m.end())
    for m in _ASSIGNED_SECRET.finditer(text):
        value = m.group("value")
        if _entropy(value) >= 3.5 and any(c.isdigit() for c in value) and any(c.isalpha() for c in value):
            add("api_key", m.start("value"), m.end("value"))
    for m in _EMAIL.finditer(text):
        add("email", m.start(), m.end())
    for m in _IBAN.finditer(text):
        if iban_valid(m.group(0)):
            add("iban", m.start(), m.end())
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and digits[0] in "3456" and luhn_valid(digits):
            add("credit_card", m.start(), m.end())
    for m in _SSN.finditer(text):
        add("national_id", m.start(), m.end())
    for m in _IPV4.finditer(text):
        if _personal_ip(m.group(0)):
            add("ip", m.start(), m.end())
    for m in _IPV6.finditer(text):
        candidate = m.group(0)
        if candidate.count(":") >= 2 and any(c.isalnum() for c in candidate) and _personal_ip(candidate):
            add("ip", m.start(), m.end())
    for m in _PHONE.finditer(text):
        candidate = m.group(0)
        digits = re.sub(r"\D", "", candidate)
        international = candidate.startswith("+")
        if not (10 <= len(digits) <= 15 or (international and 8 <= len(digits) <= 15)):
            continue
        # Dotted groups are versions or addresses, dates are dates: neither is a phone number.
        if _DATE_LIKE.match(candidate) or ("." in candidate and " " not in candidate and not international):
            continue
        add("phone", m.start(), m.end())
    return found


def find_pii(text: str) -> list[PiiMatch]:
    """Personal data in ``text``, in order, without overlaps (the earlier-listed, more specific kind wins)."""
    if not text:
        return []
    accepted: list[PiiMatch] = []
    for match in _candidates(text):  # already in priority order
        if all(match.end <= other.start or match.start >= other.end for other in accepted):
            accepted.append(match)
    return sorted(accepted, key=lambda m: m.start)


def redact_text(text: str) -> str:
    """``text`` with every piece of personal data replaced by its typed placeholder, e.g. ``[EMAIL]``."""
    matches = find_pii(text)
    if not matches:
        return text
    parts: list[str] = []
    last = 0
    for match in matches:
        parts.append(text[last : match.start])
        parts.append(PLACEHOLDERS[match.kind])
        last = match.end
    parts.append(text[last:])
    return "".join(parts)


def redact_pair(pair: Pair) -> Pair | None:
    """A copy of ``pair`` with its messages and context redacted, or None when nothing changes."""
    messages = [Message(role=m.role, content=redact_text(m.content)) for m in pair.messages]
    context = redact_text(pair.context) if pair.context else pair.context
    if messages == pair.messages and context == pair.context:
        return None
    return pair.model_copy(update={"messages": messages, "context": context})


def redact_pairs(store: Store, ids: Sequence[int] | None = None, dry_run: bool = False) -> int:
    """Redact personal data in stored pairs (all, or ``ids``) as one undoable edit; returns how many changed.

    The edit is recorded with action "redact" (``pairforge undo`` reverts it) and in the pipeline log.
    With ``dry_run`` nothing is written and the count says how many pairs would change.
    """
    from engine.store import PairFilter

    changed: list[Pair] = []
    kinds: Counter[str] = Counter()
    flt = PairFilter(ids=list(ids)) if ids is not None else None
    for pair in store.iter_pairs(flt):
        redacted = redact_pair(pair)
        if redacted is None:
            continue
        for message in pair.messages:
            kinds.update(m.kind for m in find_pii(message.content))
        if pair.context:
            kinds.update(m.kind for m in find_pii(pair.context))
        changed.append(redacted)
    if dry_run or not changed:
        return len(changed)
    store.update_pairs(changed, action="redact")
    summary = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
    store.log(
        step="redact",
        action="redact",
        count=len(changed),
        message=f"Replaced personal data in {len(changed)} pair(s): {summary}.",
        detail={"pair_ids": [p.id for p in changed], "kinds": dict(kinds)},
    )
    return len(changed)


__all__ = ["PLACEHOLDERS", "PiiMatch", "find_pii", "iban_valid", "luhn_valid", "redact_pair", "redact_pairs", "redact_text"]
