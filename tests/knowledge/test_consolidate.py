"""Consolidation: quantities and their units, near-duplicate groups, and contradictions between
sources (but not between a help center's parallel pages, table rows or bare attribute lines)."""

from __future__ import annotations

import pytest

from appliance.knowledge.consolidate import (
    Passage,
    contradictions,
    near_duplicate_groups,
    quantities,
    statements,
)

RETURNS = ("Items can be returned within 30 days of delivery for a refund to the original "
           "payment method or an existing gift card. Start a return from your order page, pack "
           "the item in its original box and drop it at any carrier location near you.")
SHIPPING = ("Standard shipping usually takes 3 to 5 business days. Express orders placed before "
            "noon leave the warehouse the same day and arrive the next business day.")
#: A longer page, where one edited word leaves most word 5-shingles intact (Jaccard ~0.9).
EXCHANGES = ("An item can be exchanged for another item of the same product type, for example a "
             "different size, color or capacity, as long as the order has been delivered. Each "
             "delivered order can be exchanged only once, so collect every item you want to swap "
             "before you ask. The new item must be available in our store at the time of the "
             "exchange. If the new item costs more, the difference is charged to the payment "
             "method you choose; if it costs less, the difference is refunded to it. Return the "
             "original item within the return window using the prepaid label in your account, "
             "and we ship the replacement as soon as the carrier scans the parcel.")
WARRANTY = ("Every lamp carries a two-year warranty against manufacturing defects. Send us a "
            "photo of the fault together with your order number to open a claim.")


# --- quantities -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "unit", "value"), [
    ("within 30 days", "day", 30),
    ("1 day", "day", 1),
    ("in 5 business days", "business_day", 5),
    ("7 working days", "business_day", 7),
    ("10 calendar days", "day", 10),
    ("2 weeks", "week", 2),
    ("6 months", "month", 6),
    ("1 year", "year", 1),
    ("48 hours", "hour", 48),
    ("15 minutes", "minute", 15),
    ("costs $15.00", "usd", 15),
    ("a $1,500 limit", "usd", 1500),
    ("40 dollars", "usd", 40),
    ("25 USD", "usd", 25),
    ("€12.50", "eur", 12.5),
    ("9 euros", "eur", 9),
    ("£7", "gbp", 7),
    ("3 pounds", "gbp", 3),
    ("10% off", "percent", 10),
    ("3.5 percent", "percent", 3.5),
    ("up to 3 items", "item", 3),
    ("5 times a month", "times", 5),
])
def test_it_reads_quantities_with_normalised_units(text: str, unit: str, value: float) -> None:
    found = quantities(text)

    assert [(q.unit, q.value) for q in found] == [(unit, value)]


def test_it_reads_every_quantity_in_order_and_ignores_bare_numbers() -> None:
    found = quantities("Order 12345 ships in 2 days; express costs $9.99 and saves 10%.")

    assert [(q.unit, q.value, q.text) for q in found] == [
        ("day", 2, "2 days"), ("usd", 9.99, "$9.99"), ("percent", 10, "10%"),
    ]


def test_it_does_not_read_a_unit_inside_a_longer_word() -> None:
    assert quantities("Call 3 daysprings or 4 itemsets") == []


# --- near duplicates --------------------------------------------------------------------------


def test_it_groups_exact_and_near_duplicates_and_keeps_different_texts_apart() -> None:
    texts = [
        RETURNS,
        SHIPPING,
        RETURNS.upper(),  # an exact duplicate but for case
        WARRANTY,
        EXCHANGES,
        EXCHANGES.replace("for example a different", "e.g. a different"),  # one edit
        SHIPPING.replace("3 to 5 business days", "about a week"),  # a third of it changed
    ]

    groups = near_duplicate_groups(texts)

    assert groups == [[0, 2], [1], [3], [4, 5], [6]]


def test_it_puts_every_text_in_exactly_one_group() -> None:
    texts = [RETURNS, "", SHIPPING, RETURNS, "   ", WARRANTY]

    groups = near_duplicate_groups(texts)

    assert sorted(i for group in groups for i in group) == list(range(len(texts)))
    assert [0, 3] in groups


# --- contradictions ---------------------------------------------------------------------------


def _passages(*documents: tuple[str, int, int]) -> list[Passage]:
    """Statements of each (text, source, article), numbered as documents in order."""
    return [p for number, (text, source, article) in enumerate(documents)
            for p in statements(number, text, source, article)]


def test_it_flags_the_same_statement_with_another_number_across_sources() -> None:
    wiki = RETURNS.replace("30 days", "14 days")

    found = contradictions(_passages((RETURNS, 1, 10), (SHIPPING, 1, 11), (wiki, 2, 20)))

    assert len(found) == 1
    conflict = found[0]
    assert (conflict.unit, conflict.values) == ("day", (30.0, 14.0))
    assert (conflict.first.document, conflict.second.document) == (0, 2)
    assert "30 days" in conflict.first.text
    assert "14 days" in conflict.second.text


def test_it_flags_duplicates_merged_into_one_article_that_disagree() -> None:
    copy = RETURNS.replace("30 days", "14 days")

    found = contradictions(_passages((RETURNS, 1, 10), (copy, 1, 10)))

    assert [(c.unit, c.values) for c in found] == [("day", (30.0, 14.0))]


def test_it_does_not_flag_the_same_statement_with_the_same_number() -> None:
    found = contradictions(_passages((RETURNS, 1, 10), (RETURNS, 2, 20)))

    assert found == []


def test_it_does_not_flag_different_units() -> None:
    other = RETURNS.replace("30 days", "30 weeks")

    assert contradictions(_passages((RETURNS, 1, 10), (other, 2, 20))) == []


def test_it_does_not_flag_parallel_pages_of_one_source() -> None:
    blue = ("With the Blue Account you can earn up to $15 in ATM fee rebates every statement "
            "cycle when you use out-of-network machines.")
    purple = blue.replace("Blue", "Purple").replace("$15", "$30")

    assert contradictions(_passages((blue, 1, 10), (purple, 1, 11))) == []
    # The same two pages from two sources do disagree.
    assert len(contradictions(_passages((blue, 1, 10), (purple, 2, 20)))) == 1


def test_it_does_not_flag_a_table_that_repeats_a_sentence_with_other_values() -> None:
    fees = ("Early closure fee: $15 if the account is closed within 30 days of opening.\n"
            "Early closure fee: $25 if the account is closed within 60 days of opening.\n"
            "Early closure fee: $35 if the account is closed within 90 days of opening.")
    other = "Early closure fee: $50 if the account is closed within 30 days of opening."

    assert statements(0, fees) == []
    assert contradictions(_passages((fees, 1, 10), (other, 2, 20))) == []


def test_it_does_not_flag_short_attribute_lines() -> None:
    gold = "Gold Rewards Card\nAnnual fee: $95\nForeign transaction fee: 0%"
    bronze = "Bronze Rewards Card\nAnnual fee: $0\nForeign transaction fee: 3%"

    assert statements(0, gold) == []
    assert contradictions(_passages((gold, 1, 10), (bronze, 2, 20))) == []


def test_it_takes_only_sentences_that_state_a_quantity() -> None:
    found = statements(3, RETURNS + " " + WARRANTY, source=4, article=5)

    assert [(p.document, p.source, p.article) for p in found] == [(3, 4, 5)]
    assert found[0].text.startswith("Items can be returned within 30 days")
