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
