"""What an extractive answer quotes: whole sentences or a list with its lead-in, relevant to the
question, of customer-facing material only; and what a grounded prompt carries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.agent.quoting import Quoter, facts, passage_units
from appliance.brands import Policy
from appliance.config import load_settings
from appliance.knowledge.normalize import approx_tokens
from appliance.knowledge.service import Hit
from appliance.llm.manifest import load_manifest
from appliance.signals import build_embedder
from appliance.signals.base import Embedder


def _hit(visibility: str | None, title: str, score: float) -> Hit:
    source = {"kind": "markdown", "external_id": title, "location": title}
    return Hit(chunk_id=1, article_id=1, article_key=f"1/{title}", title=title, heading="",
               text="Returns within 30 days.", score=score,
               provenance=[{**source, "visibility": visibility} if visibility else source])


def test_only_passages_of_customer_sources_are_customer_facing() -> None:
    assert _hit("customer", "Returns FAQ", 0.8).customer_facing
    assert not _hit("internal", "Returns quick guide", 0.8).customer_facing
    assert not _hit(None, "Returns quick guide", 0.8).customer_facing, "unknown: internal"
    assert not _hit("customer", "Internal: Filing a dispute", 0.8).customer_facing


# --- the units a passage is quoted in ----------------------------------------------------------

RETURNS = """Returns and refunds

Only orders that have been **delivered** can be returned. If your order is still *pending*, \
you can cancel it instead (see [Cancelling an order](cancellations.md)).

Contact us through chat or email and tell us:

1. your order number (it starts with `#W`),
2. which items from that order you are sending back, and
3. where you would like the refund to go.

Refunds to a credit card take 5 to 7 business days, e.g. for card payments. Gift card refunds \
are immediate.

How long refunds take
- Refunds to a gift card are available immediately.
- Refunds to a credit card or PayPal account take 5 to 7 business days to appear."""


def test_it_splits_a_passage_into_whole_sentences_and_list_items() -> None:
    units = passage_units(RETURNS)

    texts = [unit.text for unit in units]
    # Headings are no units; "e.g." ends no sentence; links to the source's own pages keep
    # only their words; list markers go.
    assert texts == [
        "Only orders that have been **delivered** can be returned.",
        "If your order is still *pending*, you can cancel it instead (see Cancelling an order).",
        "Contact us through chat or email and tell us:",
        "your order number (it starts with `#W`),",
        "which items from that order you are sending back, and",
        "where you would like the refund to go.",
        "Refunds to a credit card take 5 to 7 business days, e.g. for card payments.",
        "Gift card refunds are immediate.",
        "Refunds to a gift card are available immediately.",
        "Refunds to a credit card or PayPal account take 5 to 7 business days to appear.",
    ]
    lead, *items = units[2:6]
    assert lead.leads and all(item.item for item in items)
    assert {unit.heading for unit in units[:8]} == {"Returns and refunds"}
    assert {unit.heading for unit in units[8:]} == {"How long refunds take"}
    assert {unit.group for unit in units[2:6]} == {lead.group}  # the list goes with its lead
    assert units[6].group != lead.group


def _passage(text: str, chunk_id: int = 1, visibility: str = "customer",
             title: str = "Returns", heading: str = "") -> Hit:
    return Hit(chunk_id=chunk_id, article_id=chunk_id, article_key=f"{chunk_id}/{title}",
               title=title, heading=heading, text=text, score=0.7,
               provenance=[{"kind": "markdown", "external_id": title, "location": title,
                            "visibility": visibility}])


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedder]:
    """The real embedder of the shipped model store, loaded once for the module."""
    settings = load_settings(
        overrides={"data_dir": str(tmp_path_factory.mktemp("quoting"))},
        env={"APPLIANCE_CONFIG": str(Path(__file__).parents[1] / "empty-config.toml")})
    model = build_embedder(load_manifest(settings.model_store), settings)
    yield model
    model.close()


@pytest.fixture(scope="module")
def quoter(embedder: Embedder) -> Quoter:
    return Quoter(embedder)


def test_it_quotes_a_list_with_its_lead_in_never_from_the_middle(
    quoter: Quoter, embedder: Embedder
) -> None:
    question = embedder.embed_one("What details do I need to give you to return something?")

    quoted = quoter.quote(quoter.rank(question, [_passage(RETURNS)], 0.3))

    assert quoted is not None
    _, text = quoted
    assert ("Contact us through chat or email and tell us:\n\n"
            "- your order number (it starts with `#W`),\n"
            "- which items from that order you are sending back, and\n"
            "- where you would like the refund to go.") in text


def test_it_quotes_a_list_whole_when_one_item_answers(
    quoter: Quoter, embedder: Embedder
) -> None:
    question = embedder.embed_one("How long does a refund to my PayPal take?")

    quoted = quoter.quote(quoter.rank(question, [_passage(RETURNS)], 0.3), max_units=1)

    assert quoted is not None
    assert quoted[1] == ("- Refunds to a gift card are available immediately.\n"
                         "- Refunds to a credit card or PayPal account take 5 to 7 business "
                         "days to appear.")


def test_it_quotes_whole_sentences_in_passage_order(quoter: Quoter, embedder: Embedder) -> None:
    question = embedder.embed_one("My order is still pending, can I send it back?")

    quoted = quoter.quote(quoter.rank(question, [_passage(RETURNS)], 0.3), max_units=2)

    assert quoted is not None
    # Sentences of one paragraph stay one paragraph, in the passage's order.
    assert quoted[1] == (
        "Only orders that have been **delivered** can be returned. If your order is still "
        "*pending*, you can cancel it instead (see Cancelling an order).")


def test_it_quotes_nothing_when_no_sentence_bears_on_the_question(
    quoter: Quoter, embedder: Embedder
) -> None:
    scams = _passage("Beware of callers who say they are from the bank. We will never ask you for "
                 "your full PIN or a one-time code over the phone. Hang up and call the number "
                 "on the back of your card.", title="Phone scams")
    question = embedder.embed_one("How do I reset my online banking password?")

    ranked = quoter.rank(question, [scams], Policy().knowledge_min_relevance)

    assert ranked == []
    assert quoter.quote(ranked) is None


def test_it_quotes_customer_facing_passages_only(quoter: Quoter, embedder: Embedder) -> None:
    question = embedder.embed_one("How long does a refund to my PayPal take?")
    wiki = _passage("Refunds to PayPal take 5 to 7 business days to appear.", chunk_id=2,
                    visibility="internal", title="Returns quick guide")
    alone = quoter.rank(question, [wiki], 0.3)
    assert alone, "the internal passage is relevant: it may ground a draft"

    quoted = quoter.quote(quoter.rank(question, [wiki, _passage(RETURNS)], 0.3))

    assert quoted is not None
    assert quoted[0].title == "Returns"
    assert quoter.quote(alone) is None, "never the internal one, even when nothing else is"


def test_it_fits_the_most_relevant_units_into_the_prompt_budget_in_passage_order(
    quoter: Quoter, embedder: Embedder
) -> None:
    question = embedder.embed_one("How long does a refund to my credit card take?")
    ranked = quoter.rank(question, [_passage(RETURNS)], 0.0)

    chosen = facts(ranked, budget=40, count=approx_tokens)

    [(hit, sentences)] = chosen
    assert hit.title == "Returns"
    assert sum(approx_tokens(s) + 2 for s in sentences) <= 40
    assert "Refunds to a credit card take 5 to 7 business days, e.g. for card payments." in (
        sentences)
    texts = [unit.text for unit in passage_units(RETURNS)]
    assert sentences == sorted(sentences, key=texts.index)


def test_it_never_quotes_a_helpdesk_placeholder() -> None:
    macro = ("Hi {{ticket.requester.first_name}},\n\nSorry your pay has not shown up yet. Direct "
             "deposits can take up to 3 days.\n\n{{current_user.first_name}}")

    assert [unit.text for unit in passage_units(macro)] == [
        "Sorry your pay has not shown up yet.", "Direct deposits can take up to 3 days."]


# A FAQ chunk as the knowledge stores it: its first question is the chunk's heading, the next
# ones are lines of their own above their answers.
SHIPPING_FAQ = """Standard shipping usually takes 3 to 5 business days from the day your order is \
processed.

What does "processed" mean?
Your order has been packed and handed to the carrier. It can't be cancelled or changed anymore.
"""


def test_a_faqs_questions_are_the_headings_of_their_answers() -> None:
    units = passage_units(SHIPPING_FAQ, "How long does delivery take?")

    assert [(unit.text, unit.heading) for unit in units] == [
        ("Standard shipping usually takes 3 to 5 business days from the day your order is "
         "processed.", "How long does delivery take?"),
        ("Your order has been packed and handed to the carrier.", 'What does "processed" mean?'),
        ("It can't be cancelled or changed anymore.", 'What does "processed" mean?'),
    ]


def test_an_answer_is_as_relevant_as_the_question_it_answers(
    quoter: Quoter, embedder: Embedder
) -> None:
    """Bitext's wording shares few words with the answer, but its question is the heading."""
    question = embedder.embed_one("will you give me information about the delivery period?")
    minimum = Policy().knowledge_min_relevance
    faq = _passage(SHIPPING_FAQ, chunk_id=3, heading="How long does delivery take?")
    bare = _passage(SHIPPING_FAQ.split("\n\n", 1)[0], chunk_id=4)

    quoted = quoter.quote(quoter.rank(question, [faq], minimum), max_units=1)

    assert quoted is not None
    assert quoted[1].startswith("Standard shipping usually takes 3 to 5 business days")
    assert quoter.rank(question, [bare], minimum) == [], "on its own words alone, too far"


# A help page's section with a sentence that goes on into a list, and a FAQ chunk whose
# passage answers two questions.
ACCOUNT = """How we verify it's you

Before we look at orders or make any change, we confirm who you are, even if you already gave \
us your user ID. We need either:

- the email address on your account, or
- your full name and the zip code of your address."""

ORDERS_FAQ = """Yes, as long as it is still pending. Once an order is processed it can't be \
cancelled.

Can I change the shipping address?
Only while the order is pending. After that it is already with the carrier."""


def test_a_sentence_that_leads_into_a_list_is_quoted_with_it(
    quoter: Quoter, embedder: Embedder
) -> None:
    question = embedder.embed_one("How do you verify who I am?")
    ranked = quoter.rank(question, [_passage(ACCOUNT, chunk_id=11, title="Your account")],
                         Policy().knowledge_min_relevance)

    quoted = quoter.quote(ranked)

    assert [c.unit.text for c in ranked][:1] == [
        "Before we look at orders or make any change, we confirm who you are, even if you "
        "already gave us your user ID."], "the list items alone are not relevant enough"
    assert quoted is not None
    assert quoted[1].endswith("We need either:\n\n- the email address on your account, or\n"
                              "- your full name and the zip code of your address.")


def test_a_quote_keeps_to_the_question_its_best_sentence_answers(
    quoter: Quoter, embedder: Embedder
) -> None:
    question = embedder.embed_one("can an order still be cancelled once it is processed?")
    faq = _passage(ORDERS_FAQ, chunk_id=12, title="Orders FAQ",
                   heading="Can I cancel my order?")

    quoted = quoter.quote(quoter.rank(question, [faq], 0.3))

    assert quoted is not None
    assert "processed it can't be cancelled" in quoted[1]
    assert "Only while the order is pending" not in quoted[1], "another question's answer"


def test_a_question_in_a_passage_is_never_chosen_as_an_answer(
    quoter: Quoter, embedder: Embedder
) -> None:
    thread = _passage("Mateo: Is our return window 14 or 30 days?\n\nRosa: It's 30 days from "
                      "delivery.", chunk_id=13, visibility="internal", title="support thread")
    question = embedder.embed_one("is the return window 14 or 30 days?")

    ranked = quoter.rank(question, [thread], 0.0)

    assert ranked and not any(c.unit.text.endswith("?") for c in ranked)


def test_the_prompt_carries_customer_facing_passages_where_they_are_relevant(
    quoter: Quoter, embedder: Embedder
) -> None:
    question = embedder.embed_one("How long do I have to return something?")
    wiki = _passage("Items can be returned within 14 days of delivery.", chunk_id=14,
                    visibility="internal", title="Returns quick guide")
    page = _passage("Our return window is 30 days, counted from the day your order was "
                    "delivered.", chunk_id=15, title="Returns")
    ranked = quoter.rank(question, [wiki, page], Policy().knowledge_min_relevance)
    assert {c.hit.title for c in ranked} == {"Returns quick guide", "Returns"}

    chosen = facts(ranked, budget=160, count=approx_tokens)

    assert [hit.title for hit, _ in chosen] == ["Returns"], "the wiki's stale figure stays out"
    assert facts(quoter.rank(question, [wiki], 0.0), 160, approx_tokens)[0][0].title == (
        "Returns quick guide"), "internal material still grounds when nothing else does"
