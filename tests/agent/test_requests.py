"""A question about things of a kind asks about the policy, even when the customer mentions
what they did; a question about their own order is a request."""

from __future__ import annotations

import pytest

from appliance.agent.requests import asks_about_policy


@pytest.mark.parametrize("text", [
    "can a refund go to a different credit card than the one I paid with?",
    "how long does a refund take for something I bought on sale?",
    "is an exchange possible for an item I received as a gift?",
])
def test_a_question_about_things_of_a_kind_asks_about_the_policy(text: str) -> None:
    assert asks_about_policy(text)


@pytest.mark.parametrize("text", [
    "can I cancel an order I placed?",
    "I want to check on an order I placed",
    "can a refund go to my other card?",
    "does an order I placed as #W2611340 ship soon?",
])
def test_a_question_about_what_the_customer_did_is_a_request(text: str) -> None:
    assert not asks_about_policy(text)


@pytest.mark.parametrize("text", [
    "why is there a hold on my card after I checked into a hotel?",
    "if I close my credit card, do I lose my rewards?",
    "my balance went under the minimum for two days, am I going to get charged?",
    "how much do I need to keep in my savings to avoid the fee?",
    "is there a card for people rebuilding their credit after my bankruptcy?",
])
def test_a_question_about_how_a_rule_applies_to_the_customers_own_account_asks_the_policy(
    text: str,
) -> None:
    assert asks_about_policy(text)


@pytest.mark.parametrize("text", [
    "why won't you cancel my order #W2611340?",
    "can you tell me why my card was declined and fix it?",
    "I want to know how much my refund is, please check",
    "when will my order arrive",
    # Found by a simulated customer: the card's own figures are account data, not a rule.
    "how much do I owe on my card?",
    "how much is left on my credit card",
])
def test_a_request_about_the_customers_own_record_stays_a_request(text: str) -> None:
    assert not asks_about_policy(text)


@pytest.mark.parametrize(("text", "about_policy"), [
    ("I want to dispute a charge", False),
    ("I'd like to get the annual fee waived", False),
    ("I need to report a fraudulent charge", False),
    ("I want to check the fees", True),
    ("I'd like to know the charges for a wire transfer", True),
    ("how much is the fee if I want to close the account?", True),
    ("I need information about overdraft charges", True),
])
def test_saying_what_should_be_done_is_a_request_even_when_it_names_a_fee_or_a_charge(
    text: str, about_policy: bool,
) -> None:
    """A fee or a charge named in a request to act on it is not a question about fees; wanting
    to know about them still is. (On Bitext's 8,175 and Banking77's 10,003 public utterances
    the rule changes 5 verdicts, each a request read as a question before: "I need to change
    the personal info", "I want to get rid of the account"; the 300 policy questions here
    keep theirs.)"""
    assert asks_about_policy(text) is about_policy
