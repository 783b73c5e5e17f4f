"""PII detection: where customers' card numbers, SSNs, IBANs, account numbers, phone numbers,
emails and dates of birth are in a text, plus a brand's own patterns.

Each recogniser finds candidates with a pattern and keeps those a checksum or a rule accepts:
- cards: 13 to 19 digits, spaces or dashes between, that pass Luhn (python-stdnum);
- US SSNs: 123-45-6789, or nine digits after "SSN" or "social security", that python-stdnum
  accepts (no 000, 666 or 9xx area, no 00 group, no 0000 serial);
- IBANs: country code, check digits and up to 30 more, spaces allowed, that pass mod 97;
- account numbers: 6 to 17 digits right after "account", "acct" or "a/c" (and "number",
  "no." or "#"), since nothing else tells a bank account from an order number;
- phone numbers: what `phonenumbers` (Google's libphonenumber) finds valid, written as a phone
  number is (+, parentheses, spaces, dots or dashes between groups) or right after a word
  such as "phone" or "call": a bare run of ten digits is an item or order id far more often;
- emails;
- dates of birth: a date in a usual format, right after "born", "birth", "DOB" or
  "birthday" (other dates are orders, deliveries and travel, not personal data).

Why not Microsoft Presidio's analyzer: on the same labelled set (scripts/bench/pii.py,
docs/benchmarks.md) its pattern recognisers read bare ten-digit item ids as phone numbers
(precision 0.919 against 1.000 here), every date as personal (0.586 for dates of birth), and
find no account number above their own low score; its e-mail recogniser tries to download
the public-suffix list on first use, which an air-gapped box must never do; and the analyzer
brings spaCy. The libraries it relies on for checksums and phone numbers are used here.

Spans never overlap: where two recognisers claim the same characters, the checked one wins
(a card over a phone number), then the longer.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers
from stdnum import iban, luhn
from stdnum.us import ssn

from appliance.errors import ConfigError

CARD, SSN, IBAN, ACCOUNT, PHONE, EMAIL, DOB = (
    "CARD", "SSN", "IBAN", "ACCOUNT", "PHONE", "EMAIL", "DOB")
#: Every kind the built-in recognisers find, in order of precedence on overlaps.
KINDS = (IBAN, CARD, SSN, ACCOUNT, EMAIL, PHONE, DOB)

_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SSN = re.compile(r"(?<![\d-])(\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4})(?![\d-])")
_SSN_BARE = re.compile(
    r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\s*(?:is|:|#)?\s*(\d{9})(?!\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_ACCOUNT = re.compile(
    r"(?i)\b(?:account|acct|a/c)\.?\s*(?:number|num|no\.?|#)?\s*(?:is|:)?\s*"
    r"(\d(?:[ -]?\d){5,16})(?![\d-])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE_CONTEXT = re.compile(r"(?i)\b(?:phone|call|text|mobile|cell|tel|number|reach|sms)\b")
_PHONE_FORMATTED = re.compile(r"[+()\s.-]")
_MONTHS = ("jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
           "sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?")
_DATE = (rf"\d{{1,2}}[/.-]\d{{1,2}}[/.-](?:\d{{4}}|\d{{2}})|\d{{4}}-\d{{2}}-\d{{2}}|"
         rf"(?:{_MONTHS})\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}|"
         rf"\d{{1,2}}(?:st|nd|rd|th)? (?:of )?(?:{_MONTHS})\.?,? \d{{4}}")
_DOB = re.compile(
    rf"(?i)\b(?:born(?: on)?|birth(?: ?date)?|date of birth|d\.?o\.?b\.?|birthday)"
    rf"(?: is)?\s*(?:[:\-]\s*)?(?:on\s+)?({_DATE})\b")
#: How far before a phone number its context word may be, in characters.
_CONTEXT_CHARS = 32


@dataclass(frozen=True)
class Span:
    """`text[start:end]` is PII of `kind`."""

    start: int
    end: int
    kind: str

    def of(self, text: str) -> str:
        return text[self.start:self.end]


class Detector:
    """The built-in recognisers, plus `patterns` (kind name -> regular expression) of a
    brand's own; a pattern's first group, if it has one, is the span."""

    def __init__(self, patterns: Mapping[str, str] | None = None) -> None:
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        for name, pattern in (patterns or {}).items():
            if not re.fullmatch(r"[A-Z][A-Z0-9_]{0,31}", name):
                raise ConfigError(f"PII pattern {name!r}: its name must be upper case letters, "
                                  "digits and underscores (it becomes the placeholder)")
            try:
                self._patterns.append((name, re.compile(pattern)))
            except re.error as exc:
                raise ConfigError(f"PII pattern {name!r} does not compile: {exc}") from exc

    def find(self, text: str) -> list[Span]:
        """The PII spans of `text`, in order, none overlapping."""
        ranked = sorted(self._candidates(text), key=lambda s: (_rank(s.kind), s.start - s.end))
        taken: list[Span] = []
        for span in ranked:
            if all(span.end <= t.start or span.start >= t.end for t in taken):
                taken.append(span)
        return sorted(taken, key=lambda s: s.start)

    def _candidates(self, text: str) -> Iterator[Span]:
        for match in _CARD.finditer(text):
            digits = re.sub(r"\D", "", match.group())
            if 13 <= len(digits) <= 19 and luhn.is_valid(digits):
                yield Span(match.start(), match.end(), CARD)
        for match in _IBAN.finditer(text):
            if iban.is_valid(match.group()):
                yield Span(match.start(), match.end(), IBAN)
        for pattern in (_SSN, _SSN_BARE):
            for match in pattern.finditer(text):
                if ssn.is_valid(match.group(1)):
                    yield Span(match.start(1), match.end(1), SSN)
        yield from _groups(_ACCOUNT, text, ACCOUNT)
        for match in _EMAIL.finditer(text):
            yield Span(match.start(), match.end(), EMAIL)
        yield from _phones(text)
        yield from _groups(_DOB, text, DOB)
        for name, pattern in self._patterns:
            for match in pattern.finditer(text):
                group = 1 if pattern.groups else 0
                if match.end(group) > match.start(group):
                    yield Span(match.start(group), match.end(group), name)


@functools.lru_cache(maxsize=64)
def _detector(patterns: tuple[tuple[str, str], ...]) -> Detector:
    return Detector(dict(patterns))


def detector_for(policy: Any) -> Detector:
    """The detector of a brand's policy: the built-in recognisers and its `pii_patterns`."""
    patterns: Mapping[str, str] = policy.pii_patterns
    return _detector(tuple(sorted(patterns.items())))


def redact(text: str, detector: Detector) -> str:
    """`text` with each PII span replaced by a typed placeholder, numbered per kind in order
    of first appearance: the same value twice is the same placeholder ("[EMAIL_1] ...
    [EMAIL_1]"), another value the next number."""
    numbers: dict[tuple[str, str], int] = {}
    out, at = [], 0
    for span in detector.find(text):
        key = (span.kind, span.of(text))
        if key not in numbers:
            numbers[key] = 1 + sum(kind == span.kind for kind, _ in numbers)
        out += [text[at:span.start], f"[{span.kind}_{numbers[key]}]"]
        at = span.end
    return "".join(out) + text[at:]


def _groups(pattern: re.Pattern[str], text: str, kind: str) -> Iterable[Span]:
    return (Span(m.start(1), m.end(1), kind) for m in pattern.finditer(text))


def _phones(text: str) -> Iterator[Span]:
    for match in phonenumbers.PhoneNumberMatcher(text, "US",
                                                 leniency=phonenumbers.Leniency.VALID):
        before = text[max(0, match.start - _CONTEXT_CHARS):match.start]
        if _PHONE_FORMATTED.search(match.raw_string) or _PHONE_CONTEXT.search(before):
            yield Span(match.start, match.end, PHONE)


def _rank(kind: str) -> int:
    """Checked kinds first; a brand's own patterns after the built-in ones."""
    return KINDS.index(kind) if kind in KINDS else len(KINDS)
