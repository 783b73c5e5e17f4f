"""Keeping replies honest: facts absent from the retrieved knowledge, sentences the knowledge
does not support, and the extractive answer that replaces a draft that fails."""

from __future__ import annotations

import pytest

from appliance.agent.grounding import (
    quotes_internal,
    says_something,
    ungrounded_facts,
    unsupported,
)

KNOWLEDGE = [
    "Items can be returned within 30 days of delivery. Refunds reach your card within 5 "
    "business days after the warehouse receives the parcel.",
    "Express shipping costs $12.00 and arrives the next business day. Orders over $1,500 need "
    "a signature. Members save 10% on every order.",
]


# --- facts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("draft", [
    "You can return items within 30 days of delivery.",
    "Refunds take 5 business days.",
    "Express shipping is $12.",  # $12 and $12.00 are the same amount
    "Express shipping is 12 dollars.",
    "Anything over $1500 needs a signature.",
    "Orders over 1,500 dollars need a signature.",
    "Members save 10 percent.",
    "Sure, I can help with that.",
])
def test_it_accepts_facts_the_knowledge_states(draft: str) -> None:
    assert ungrounded_facts(draft, KNOWLEDGE) == []


@pytest.mark.parametrize(("draft", "missing"), [
    ("You can return items within 14 days.", ["14 days"]),
    ("Returns are accepted for 30 weeks.", ["30 weeks"]),  # the number alone is not enough
    ("Refunds take 5 days.", ["5 days"]),  # 5 business days is not 5 days
    ("Express shipping costs $15.", ["$15"]),
    ("Express shipping costs €12.", ["€12"]),
    ("Members save 20%.", ["20%"]),
    ("Call us on extension 4417.", ["4417"]),
    ("Returns take 60 days and cost $3.", ["60 days", "$3"]),
])
def test_it_flags_facts_the_knowledge_does_not_state(draft: str, missing: list[str]) -> None:
    assert ungrounded_facts(draft, KNOWLEDGE) == missing


def test_it_takes_calendar_days_for_days() -> None:
    knowledge = ["Items can be returned within 30 calendar days of delivery."]

    assert ungrounded_facts("You have 30 days to return an item.", knowledge) == []
    assert ungrounded_facts("You have 14 days to return an item.", knowledge) == ["14 days"]


def test_it_flags_a_bare_number_only_once_when_it_belongs_to_a_quantity() -> None:
    assert ungrounded_facts("Wait 45 minutes, then press 7.", KNOWLEDGE) == ["45 minutes", "7"]


def test_it_flags_every_fact_when_there_is_no_knowledge() -> None:
    assert ungrounded_facts("Returns within 30 days.", []) == ["30 days"]


# --- support ----------------------------------------------------------------------------------


def test_it_finds_a_sentence_drawn_from_the_knowledge_supported() -> None:
    assert not unsupported("Refunds reach your card after the warehouse receives the parcel.",
                           KNOWLEDGE)
    # Plurals and case do not matter.
    assert not unsupported("REFUND reaches the cards once warehouses receive parcels.",
                           KNOWLEDGE)


def test_it_finds_pleasantries_and_invented_content_unsupported() -> None:
    assert unsupported("Our friendly team loves solving every question you bring.", KNOWLEDGE)
    assert unsupported("Gift wrapping is available for birthdays and weddings.", KNOWLEDGE)


def test_it_does_not_judge_a_sentence_with_too_few_content_words() -> None:
    assert not unsupported("Happy to help!", KNOWLEDGE)
    assert not unsupported("Certainly, gladly.", KNOWLEDGE)


# --- saying something ---------------------------------------------------------------------------

QUESTION = "can I change the size of an item before the order ships?"
ITEMS = ["Yes, if the order is pending you can change the options of the items in it, for "
         "example size or color. You can only do this once per order."]


@pytest.mark.parametrize("sentence", [
    "Yes, while the order is pending you can change its options.",
    "You can only do this once per order.",
])
def test_a_sentence_that_states_the_knowledge_says_something(sentence: str) -> None:
    assert says_something(sentence, ITEMS, QUESTION)


@pytest.mark.parametrize("sentence", [
    "Absolutely, I'd be happy to help you with that.",  # courtesy
    "Can you please specify what you want to change?",  # the question handed back
    "You can change the size of an item before the order ships.",  # the question, restated
    "Sure, we certainly can help with your question.",
])
def test_courtesy_and_the_question_echoed_say_nothing(sentence: str) -> None:
    assert not says_something(sentence, ITEMS, QUESTION)


PROCEDURE = ["Open the order in the back office, choose Goodwill refund and note the reason in "
             "the ticket before you confirm it."]
PUBLIC = ["Note the reason in the ticket if you write to us about a refund."]


@pytest.mark.parametrize(("sentence", "quotes"), [
    ("Open the order in the back office and choose Goodwill refund.", True),
    ("A colleague can look at a goodwill refund for your order.", False),  # a paraphrase
    ("Please note the reason in the ticket when you write.", False),  # public words too
])
def test_a_sentence_quotes_internal_knowledge_when_it_copies_a_run_of_it(
    sentence: str, quotes: bool
) -> None:
    assert quotes_internal(sentence, PROCEDURE, PUBLIC) is quotes
