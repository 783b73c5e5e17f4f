"""PII detection: each recogniser finds what it should and leaves the near misses customers
write every day (order and item ids, amounts, delivery dates); redaction numbers values per
kind; a brand's own pattern must compile; and on the labelled set (public dialogues and
written sentences, scripts/bench/pii_set.py) detection keeps the precision and recall
recorded in docs/benchmarks.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.errors import ConfigError
from appliance.privacy.detect import Detector, redact

LABELLED = Path(__file__).resolve().parents[2] / "scripts" / "bench" / "data" / \
    "pii_labelled.jsonl"


def kinds(text: str, detector: Detector | None = None) -> list[tuple[str, str]]:
    return [(s.kind, s.of(text)) for s in (detector or Detector()).find(text)]


@pytest.mark.parametrize(("text", "found"), [
    ("card 4111 1111 1111 1111 please", [("CARD", "4111 1111 1111 1111")]),
    ("amex 3782-822463-10005", [("CARD", "3782-822463-10005")]),
    ("ssn 536-22-1234", [("SSN", "536-22-1234")]),
    ("my social security number is 536221234", [("SSN", "536221234")]),
    ("IBAN GB82 WEST 1234 5698 7654 32 thanks", [("IBAN", "GB82 WEST 1234 5698 7654 32")]),
    ("account number: 00123456789", [("ACCOUNT", "00123456789")]),
    ("call me on (206) 555-0293", [("PHONE", "(206) 555-0293")]),
    ("my number 2065550293", [("PHONE", "2065550293")]),
    ("+44 20 7946 0958 is my UK line", [("PHONE", "+44 20 7946 0958")]),
    ("mail kenji.tanaka@outlook.com", [("EMAIL", "kenji.tanaka@outlook.com")]),
    ("DOB: 07/22/1985", [("DOB", "07/22/1985")]),
    ("I was born on July 22, 1985", [("DOB", "July 22, 1985")]),
])
def test_it_finds_each_kind(text: str, found: list[tuple[str, str]]) -> None:
    assert kinds(text) == found


@pytest.mark.parametrize("text", [
    "card 4111 1111 1111 1112 please",           # fails Luhn
    "ssn 666-12-3456 or 000-12-3456",            # areas never issued
    "IBAN GB83 WEST 1234 5698 7654 32",          # wrong check digits
    "I'd like to return item 8090061879",        # a τ-bench item id: ten bare digits
    "order #W3657213 via credit_card_4190576",   # order and payment method ids
    "order number 12345678, it never came",      # not an account
    "it was delivered on 07/22/2024",            # a date, not a birthday
    "I was charged $1,500.00 on March 4th at 10:30 am for 3 nights",
])
def test_it_leaves_the_near_misses(text: str) -> None:
    assert kinds(text) == []


def test_a_checked_kind_wins_an_overlap() -> None:
    # Sixteen digits that pass Luhn also look like a phone number after "call".
    assert kinds("call 4111111111111111") == [("CARD", "4111111111111111")]


def test_redaction_numbers_each_value_per_kind() -> None:
    text = "a@x.com, b@y.org and a@x.com again; card 4111 1111 1111 1111"

    assert redact(text, Detector()) == (
        "[EMAIL_1], [EMAIL_2] and [EMAIL_1] again; card [CARD_1]")
    assert redact("nothing here", Detector()) == "nothing here"


def test_a_brands_own_pattern_finds_its_group() -> None:
    detector = Detector({"MEMBER_ID": r"\bmember (?:id )?(RB-\d{6})\b"})

    assert kinds("my member id RB-123456, thanks", detector) == [("MEMBER_ID", "RB-123456")]


@pytest.mark.parametrize(("patterns", "named"), [
    ({"MEMBER_ID": "RB-(\\d{6}"}, "'MEMBER_ID' does not compile"),
    ({"member id": "RB-\\d{6}"}, "'member id': its name must be"),
])
def test_a_bad_pattern_is_refused_naming_it(patterns: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Detector(patterns)


def test_it_keeps_its_recorded_precision_and_recall_on_the_labelled_set() -> None:
    detector = Detector()
    right = found = hit = labelled = 0
    for line in LABELLED.read_text().splitlines():
        record = json.loads(line)
        gold = [tuple(s) for s in record["spans"]]
        spans = [(s.start, s.end, s.kind) for s in detector.find(record["text"])]
        found += len(spans)
        right += sum(any(g[2] == s[2] and g[0] < s[1] and s[0] < g[1] for g in gold)
                     for s in spans)
        labelled += len(gold)
        hit += sum(any(g[2] == s[2] and g[0] < s[1] and s[0] < g[1] for s in spans)
                   for g in gold)

    assert labelled > 700
    assert right / found >= 0.99
    assert hit / labelled >= 0.99
