"""Consolidation: exact and near-duplicate documents become one canonical article; passages
from different documents that say the same thing with different numbers are contradictions.

Near duplicates: MinHash over word 5-shingles with LSH (datasketch) at `NEAR_DUPLICATE`
Jaccard similarity. Contradictions: sentences that state a quantity (a duration, an amount, a
percentage, a count) are compared with their quantities masked; two sentences from different
documents that match masked (LSH at `SAME_STATEMENT`) but differ in a quantity of the same unit
are flagged, e.g. "returns within 30 days" vs "returns within 14 days".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from datasketch import MinHash, MinHashLSH

NEAR_DUPLICATE = 0.8
SAME_STATEMENT = 0.7
_PERMUTATIONS = 128

_UNIT = (
    r"business days?|working days?|calendar days?|days?|weeks?|months?|years?|hours?|"
    r"minutes?|percent|%|dollars?|usd|eur|euros?|gbp|pounds?|items?|times"
)
QUANTITY = re.compile(
    rf"(?P<currency>[$€£])\s?(?P<amount>\d[\d,]*(?:\.\d+)?)"
    rf"|(?P<value>\d[\d,]*(?:\.\d+)?)\s?(?P<unit>{_UNIT})(?![a-z])",
    re.IGNORECASE,
)
_WORD = re.compile(r"[a-z0-9<>]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass(frozen=True)
class Quantity:
    unit: str
    value: float
    text: str


def quantities(text: str) -> list[Quantity]:
    """Durations, amounts, percentages and counts stated in `text`, units normalised."""
    found = []
    for match in QUANTITY.finditer(text):
        if match.group("currency"):
            unit = {"$": "usd", "€": "eur", "£": "gbp"}[match.group("currency")]
            raw = match.group("amount")
        else:
            unit = _unit(match.group("unit"))
            raw = match.group("value")
        try:
            value = float(raw.replace(",", ""))
        except ValueError:
            continue
        found.append(Quantity(unit, value, match.group(0)))
    return found


def _unit(unit: str) -> str:
    unit = unit.lower().removeprefix("calendar ")
    if "business" in unit or "working" in unit:
        return "business_day"
    for stem, name in (("day", "day"), ("week", "week"), ("month", "month"), ("year", "year"),
                       ("hour", "hour"), ("minute", "minute"), ("item", "item"),
                       ("time", "times")):
        if unit.startswith(stem):
            return name
    return {"%": "percent", "percent": "percent", "dollar": "usd", "dollars": "usd",
            "usd": "usd", "eur": "eur", "euro": "eur", "euros": "eur", "gbp": "gbp",
            "pound": "gbp", "pounds": "gbp"}.get(unit, unit)


def _minhash(tokens: Sequence[str], size: int) -> MinHash:
    digest = MinHash(num_perm=_PERMUTATIONS, seed=7)
    shingles = {" ".join(tokens[i:i + size]) for i in range(max(1, len(tokens) - size + 1))}
    digest.update_batch([shingle.encode("utf-8") for shingle in shingles])
    return digest


def near_duplicate_groups(texts: Sequence[str]) -> list[list[int]]:
    """Indexes of `texts` grouped by near-duplication (every index in exactly one group)."""
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    lsh = MinHashLSH(threshold=NEAR_DUPLICATE, num_perm=_PERMUTATIONS)
    for index, text in enumerate(texts):
        tokens = _WORD.findall(text.casefold())
        if not tokens:
            continue
        digest = _minhash(tokens, 5)
        for other in lsh.query(digest):
            parent[find(index)] = find(int(other))
        lsh.insert(str(index), digest)
    groups: dict[int, list[int]] = {}
    for index in range(len(texts)):
        groups.setdefault(find(index), []).append(index)
    return sorted(groups.values(), key=lambda group: group[0])


@dataclass(frozen=True)
class Passage:
    """A sentence of a document, with where it came from."""

    document: int
    text: str
    #: The source the document came from, and the canonical article it was merged into.
    source: int = 0
    article: int = 0


@dataclass(frozen=True)
class Contradiction:
    first: Passage
    second: Passage
    unit: str
    values: tuple[float, float]


#: A statement needs this many content words besides its quantities: "Annual fee: $95" in a
#: product's page says nothing about which product; comparing it across pages would flag
#: every product with a different fee.
MIN_STATEMENT_WORDS = 5
_FILLER = frozenset({
    "a", "an", "the", "is", "are", "be", "to", "of", "in", "on", "for", "and", "or", "it",
    "your", "you", "we", "our", "this", "that", "with", "by", "at", "as", "q", "<q>",
})


def statements(document: int, text: str, source: int = 0, article: int = 0) -> list[Passage]:
    """The sentences of a document that state a quantity about something they name.

    A sentence shape that the same document repeats with other values ("Early closure fee: $15
    if closed within 30 days", "...$25 if closed within 60 days") is a table whose rows depend
    on context the sentence does not carry; such sentences are not compared.
    """
    by_shape: dict[str, list[str]] = {}
    for sentence in _SENTENCE.split(text):
        sentence = sentence.strip()
        if not sentence or not QUANTITY.search(sentence):
            continue
        tokens = _masked_tokens(sentence)
        words = [w for w in tokens if w not in _FILLER and not w.isdigit()]
        if len(words) >= MIN_STATEMENT_WORDS:
            by_shape.setdefault(" ".join(tokens), []).append(sentence)
    return [
        Passage(document, sentences[0], source, article)
        for sentences in by_shape.values()
        if len({tuple((q.unit, q.value) for q in quantities(s)) for s in sentences}) == 1
    ]


def _masked_tokens(sentence: str) -> list[str]:
    return _WORD.findall(QUANTITY.sub(" <q> ", sentence).casefold())


def contradictions(passages: Sequence[Passage]) -> list[Contradiction]:
    """Pairs of passages that say the same thing with different quantities of the same unit,
    from different sources, or from duplicates merged into one article.

    Documents of one source are not compared with each other: a help center has parallel
    pages per product ("up to $15 in rebates" for one account, "$30" for another) whose
    subject is in the title, not the sentence.
    """
    lsh = MinHashLSH(threshold=SAME_STATEMENT, num_perm=_PERMUTATIONS)
    digests = []
    found: dict[tuple[int, int], Contradiction] = {}
    for index, passage in enumerate(passages):
        tokens = _masked_tokens(passage.text)
        digest = _minhash(tokens, 2)
        digests.append(digest)
        for other_key in lsh.query(digest):
            other = int(other_key)
            earlier = passages[other]
            if earlier.document == passage.document or (
                earlier.source == passage.source and earlier.article != passage.article
            ):
                continue
            conflict = _conflict(passages[other], passage)
            if conflict is not None:
                found.setdefault((other, index), conflict)
        lsh.insert(str(index), digest)
    return list(found.values())


def _conflict(first: Passage, second: Passage) -> Contradiction | None:
    a = quantities(first.text)
    b = quantities(second.text)
    if len(a) != len(b):
        return None
    for qa, qb in zip(a, b, strict=True):
        if qa.unit == qb.unit and qa.value != qb.value:
            return Contradiction(first, second, qa.unit, (qa.value, qb.value))
    return None
