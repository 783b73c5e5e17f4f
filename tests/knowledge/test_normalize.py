"""Normalised text, content hashes, and heading-aware chunks bounded in tokens."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

import pytest

from appliance.knowledge.base import Section
from appliance.knowledge.normalize import (
    MAX_CHUNK_TOKENS,
    ChunkDraft,
    approx_tokens,
    chunk_sections,
    content_hash,
    normalize_text,
)

Counter = Callable[[str], int]


def words(text: str) -> int:
    """An exact counter (one token per word), so bounds can be checked to the token."""
    return len(text.split())


def sentences(count: int, topic: str = "returns") -> str:
    return " ".join(f"Sentence {n} explains one more rule about {topic} and refunds."
                    for n in range(count))


def paragraph(word: str, count: int) -> str:
    return " ".join([word] * count)


def size(chunk: ChunkDraft, count: Counter) -> int:
    """What the chunk costs the embedder: its heading line and its text."""
    return count(f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text)


# --- normalising and hashing ------------------------------------------------------------------


def test_it_normalises_spaces_blank_lines_and_compatibility_characters() -> None:
    raw = "  Returns\u00a0and\t refunds \r\n\r\n\r\n\r\nWithin \uff13\uff10 days.  \n"

    assert normalize_text(raw) == "Returns and refunds\n\nWithin 30 days."


@pytest.mark.parametrize("variant", [
    "Returns within 30 days.\n\nRefunds in 5 business days.",
    "  RETURNS   within 30 DAYS.\r\n\r\n\r\nRefunds in 5 business days.  ",
    "returns within 30 days. refunds in 5 business days.",
    "Returns\u00a0within\t30 days.\nRefunds in 5 business days.",
])
def test_it_hashes_whitespace_and_case_variants_alike(variant: str) -> None:
    original = content_hash("Returns", "Returns within 30 days.\n\nRefunds in 5 business days.")

    assert content_hash("RETURNS", variant) == original


def test_it_hashes_different_text_differently() -> None:
    base = content_hash("Returns", "Returns within 30 days.")

    assert content_hash("Returns", "Returns within 14 days.") != base
    assert content_hash("Refunds", "Returns within 30 days.") != base
    # The parts are separated: moving words between title and text is a change.
    assert content_hash("Returns Returns", "within 30 days.") != base


# --- chunking ---------------------------------------------------------------------------------


SHAPES = {
    "one long section": [Section("Returns > Refunds", sentences(90))],
    "one sentence longer than a chunk": [Section("Terms", paragraph("clause", 700))],
    "short paragraph then a nearly full one": [
        Section("Fees", paragraph("alpha", 30) + "\n\n" + paragraph("beta", 180)),
    ],
    "short paragraphs around a long one": [
        Section("Cards", "\n\n".join([sentences(2, "cards"), paragraph("gamma", 145),
                                     sentences(3, "pins"), paragraph("delta", 120)])),
    ],
    "many short sections": [Section(f"Topic {n}", sentences(2, f"topic {n}"))
                            for n in range(30)],
}


@pytest.mark.parametrize("counter", [approx_tokens, words], ids=["approx_tokens", "words"])
@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_it_keeps_every_chunk_within_the_token_limit(shape: str, counter: Counter) -> None:
    chunks = chunk_sections(SHAPES[shape], count=counter)

    assert chunks
    too_big = [size(c, counter) for c in chunks if size(c, counter) > MAX_CHUNK_TOKENS]
    assert too_big == [], f"chunks over {MAX_CHUNK_TOKENS} tokens: {too_big}"


def test_it_loses_no_text_when_it_splits() -> None:
    text = sentences(90)

    chunks = chunk_sections([Section("Returns > Refunds", text)], count=words)

    found = " ".join(c.text for c in chunks)
    for number in range(90):
        assert f"Sentence {number} explains" in found


def test_it_overlaps_consecutive_chunks_of_a_long_section() -> None:
    chunks = chunk_sections([Section("Returns > Refunds", sentences(90))], count=words,
                            max_tokens=100, overlap=25)

    numbers = [[int(n) for n in re.findall(r"Sentence (\d+) ", c.text)] for c in chunks]
    assert len(chunks) >= 5
    for first, second in itertools.pairwise(numbers):
        shared = sorted(set(first) & set(second))
        assert shared, (first, second)
        # The shared sentences end the first chunk and start the next one.
        assert first[-len(shared):] == shared == second[:len(shared)]
        assert len(shared) * words(sentences(1)) <= 25


def test_it_keeps_the_heading_on_every_chunk_of_a_split_section() -> None:
    chunks = chunk_sections([Section("Returns > Refunds", sentences(90))])

    assert len(chunks) > 1
    assert {c.heading for c in chunks} == {"Returns > Refunds"}
    assert all("Returns > Refunds" not in c.text for c in chunks)


def test_it_packs_short_sections_each_with_its_heading_line() -> None:
    sections = [
        Section("Returns", "Returns are free within 30 days."),
        Section("Returns > Labels", "Print the prepaid label from your order page."),
        Section("", "Questions? Write to us any time."),
        Section("Exchanges", "Exchanges ship once we receive the original item."),
    ]

    chunks = chunk_sections(sections)

    assert chunks == [ChunkDraft("Returns", (
        "Returns are free within 30 days.\n\n"
        "Returns > Labels\nPrint the prepaid label from your order page.\n\n"
        "Questions? Write to us any time.\n\n"
        "Exchanges\nExchanges ship once we receive the original item."
    ))]


def test_it_starts_a_new_chunk_when_the_next_section_does_not_fit() -> None:
    sections = [Section("Shipping", paragraph("ship", 120)), Section("Returns",
                                                                  paragraph("return", 90))]

    chunks = chunk_sections(sections, count=words, max_tokens=200)

    assert [(c.heading, words(c.text)) for c in chunks] == [("Shipping", 120), ("Returns", 90)]


def test_it_normalises_the_text_it_chunks() -> None:
    chunks = chunk_sections([Section("  Returns\t ", "Within\u00a030   days.\r\n\r\n\r\nFree.")])

    assert chunks == [ChunkDraft("Returns", "Within 30 days.\n\nFree.")]

