"""PII detection and redaction: checksums, placeholders, no false positives, undoable redaction."""

from __future__ import annotations

import pytest

from engine.models import Pair
from engine.quality import find_pii, redact_pairs, redact_text
from engine.quality.pii import iban_valid, luhn_valid


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("mail jane.doe@example.com now", "email"),
        ("call +1 415 555 0134", "phone"),
        ("call (415) 555-0134", "phone"),
        ("host 10.0.3.17 is down", "ip"),
        ("host 2001:db8::8a2e:370:7334", "ip"),
        ("card 4111 1111 1111 1111", "credit_card"),
        ("IBAN GB82 WEST 1234 5698 7654 32", "iban"),
        ("key sk-abcdefghijklmnopqrstuvwxyz123456", "api_key"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "api_key"),
        ("aws AKIAIOSFODNN7EXAMPLE", "api_key"),
        ('api_key = "a8Fk29dLq0ZxP3mN7tR2"', "api_key"),
        ("SSN 123-45-6789", "national_id"),
    ],
)
def test_finds_each_kind(text: str, kind: str) -> None:
    assert [m.kind for m in find_pii(text)] == [kind]


@pytest.mark.parametrize(
    "text",
    [
        "Tidewater 1.3.0 was released on 2024-03-18.",
        "tidewaterd listens on 127.0.0.1:7420 or 0.0.0.0:7420.",
        "Set timeout to 300000 ms; the log is 1234567890 bytes.",
        "card 4111 1111 1111 1112 fails Luhn",
        "api_token is empty; refusing to listen",
        "token = ${TIDEWATER_TOKEN}",
        "Backoff is 2, 4, 8 and 16 seconds at 10:30:00.",
        "version 10.2.3.4.5 of the driver",
    ],
)
def test_no_false_positives(text: str) -> None:
    assert find_pii(text) == []


def test_iban_with_bad_check_digits_is_not_an_iban() -> None:
    assert "iban" not in {m.kind for m in find_pii("IBAN GB82 WEST 1234 5698 7654 33 fails mod-97")}


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89 3704 0044 0532 0130 00") and not iban_valid("DE89 3704 0044 0532 0130 01")


def test_redact_text_uses_typed_placeholders() -> None:
    text = "Call Jane Doe at +1 415 555 0134 or write to jane.doe@example.com."
    assert redact_text(text) == "Call Jane Doe at [PHONE] or write to [EMAIL]."


def test_redact_pairs_is_an_undoable_logged_edit(project) -> None:
    dirty, clean = project.add_pairs([
        Pair.simple("Who is on call?", "Write to jane.doe@example.com or call +1 415 555 0134."),
        Pair.simple("Which port is used?", "Port 7420 on 127.0.0.1 by default."),
    ])
    assert redact_pairs(project, dry_run=True) == 1
    assert "jane.doe" in project.get_pair(dirty.id).response
    assert redact_pairs(project) == 1
    assert project.get_pair(dirty.id).response == "Write to [EMAIL] or call [PHONE]."
    assert project.get_pair(clean.id).revision == clean.revision
    assert project.log_tail(1, step="redact")[0].count == 1
    project.undo()
    assert "jane.doe" in project.get_pair(dirty.id).response
