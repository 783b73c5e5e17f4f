"""A Rho-Bank customer in the chat page, in a real headless Chromium against a real gunicorn
whose Rho-Bank tools call the demo bank's own service (`bank_backend`): verified by what they
know, they report a lost card, keep a card with the retention offer, dispute a charge and apply
for a card, and each write is in the bank afterwards.

The customers' messages are those the workflow evals play (evals/report_card.yaml,
close_credit_card.yaml, dispute_transaction.yaml, apply_for_credit_card.yaml), so what each
turn does is already proven there; this test holds the page and the bank to it.

The `browser`, `page` and `screenshot` fixtures are in tests/web/conftest.py; `live_server`
and `bank_backend` in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from demo_backends import BankBackend
from playwright.sync_api import Locator, Page, expect

pytestmark = pytest.mark.browser
#: The session fixture `live_server` (tests/conftest.py LiveServer): url, key(slug), credentials.
LiveServer = Any
#: screenshot(page, name), the fixture in tests/web/conftest.py.
Screenshot = Callable[[Page, str], Path]

#: A turn may embed the message and read its signals on the CPU: leave room for a loaded machine.
REPLY_TIMEOUT_MS = 60_000
KENJI = "6680a37184"
SOFIA = "584f9c5d00"


@pytest.fixture
def bank(bank_backend: BankBackend) -> Iterator[BankBackend]:
    """The bank's service, fresh from its seed; reset again after, since the live server and
    the bank are shared by the session."""
    bank_backend.reset()
    yield bank_backend
    bank_backend.reset()


def open_chat(page: Page, live_server: LiveServer) -> Locator:
    """Rho-Bank's chat page, ready for the customer's first message; the widget."""
    page.goto(f"{live_server.url}/chat/rho-bank")
    widget = page.locator("#switchboard-chat")
    expect(widget).to_have_attribute("data-state", "ready", timeout=30_000)
    expect(page.locator(".sbw-agent .sbw-text").first).to_contain_text("I'm Ada")
    return widget


def say(page: Page, text: str) -> Locator:
    """Send `text` as the customer and wait for the whole reply; the reply's bubble."""
    replies = page.locator(".sbw-agent .sbw-text")
    before = replies.count()
    page.get_by_label("Message Ada").fill(text)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#switchboard-chat")).to_have_attribute(
        "data-state", "ready", timeout=REPLY_TIMEOUT_MS)
    expect(replies).to_have_count(before + 1)
    assert page.locator(".sbw-error").count() == 0
    return replies.last


def closed_conversation(live_server: LiveServer, widget: Locator) -> dict[str, Any]:
    """Close the widget's conversation as the brand's site would; the conversation as the API
    then gives it, with its outcome."""
    conversation_id = widget.get_attribute("data-conversation-id")
    headers = {"Authorization": f"Bearer {live_server.key('rho-bank')}"}
    closed = httpx.post(f"{live_server.url}/v1/conversations/{conversation_id}/close",
                        headers=headers, timeout=10)
    assert closed.status_code == 200, closed.text
    response = httpx.get(f"{live_server.url}/v1/conversations/{conversation_id}",
                         headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_verified_customer_reports_a_lost_card_and_the_bank_replaces_it(
    page: Page, live_server: LiveServer, bank: BankBackend, screenshot: Screenshot
) -> None:
    open_chat(page, live_server)

    expect(say(page, "I lost my credit card")).to_contain_text("verify your identity")
    expect(say(page, "Kenji Tanaka, 07/22/1985, kenji.tanaka@outlook.com")).to_contain_text(
        "you're verified")
    say(page, "it's a credit card")
    say(page, "the Silver Rewards Card")
    confirm = say(page, "expedited please")
    expect(confirm).to_contain_text("To confirm")
    expect(confirm).to_contain_text("1847 Cherry Blossom Lane")
    done = say(page, "yes")
    expect(done).to_contain_text("the old card is blocked")
    expect(done).to_contain_text("replacement is ordered")
    screenshot(page, "chat-rho-bank-lost-card")

    kenji = bank.get(f"/users/{KENJI}")
    orders = [order for order in kenji["credit_card_orders"]
              if order["credit_card_account_id"] == "cc_6680a37184_silver"
              and order["status"] == "ORDERED"]
    assert len(orders) == 1, kenji["credit_card_orders"]
    assert orders[0]["reason"] == "lost"
    assert orders[0]["expedited_shipping"] is True
    assert orders[0]["previous_card_cancelled"] is True, "the lost card is blocked"
    assert kenji["verification_history"][-1]["method"] == "knowledge"


def test_a_customer_closing_a_card_accepts_the_retention_offer_and_keeps_it(
    page: Page, live_server: LiveServer, bank: BankBackend, screenshot: Screenshot
) -> None:
    widget = open_chat(page, live_server)

    say(page, "I want to close my credit card")
    say(page, "Sofia Papadopoulos, 01/25/1986, sofia.p@outlook.com")
    expect(say(page, "the annual fee is too expensive")).to_contain_text("note that reason")
    expect(say(page, "yes")).to_contain_text("waive this card's annual fee")
    say(page, "ok, I'll keep it with the waiver")
    expect(say(page, "yes")).to_contain_text("stays open")
    screenshot(page, "chat-rho-bank-retention")

    sofia = bank.get(f"/users/{SOFIA}")
    card = next(account for account in sofia["credit_card_accounts"]
                if account["account_id"] == "cc_584f9c5d00_gold")
    assert card.get("status") != "CLOSED", "the card stays open"
    assert [(r["credit_card_account_id"], r["closure_reason"])
            for r in sofia["credit_card_closure_reasons"]] == [
        ("cc_584f9c5d00_gold", "annual_fee")]
    waivers = [flag for flag in sofia["credit_card_account_flags"]
               if flag["flag_type"] == "annual_fee_waived" and flag["status"] == "ACTIVE"]
    assert [flag["credit_card_account_id"] for flag in waivers] == ["cc_584f9c5d00_gold"]
    assert closed_conversation(live_server, widget)["outcome"]["type"] == "saved"


def test_a_customer_disputes_a_charge_and_applies_for_a_card_in_one_chat(
    page: Page, live_server: LiveServer, bank: BankBackend, screenshot: Screenshot
) -> None:
    open_chat(page, live_server)

    reply = say(page, "There's a charge from Adobe Creative Cloud on my card I don't recognize."
                      " I'm Kenji Tanaka, kenji.tanaka@outlook.com, 07/22/1985")
    expect(reply).to_contain_text("you're verified")
    say(page, "no, I haven't contacted them")
    say(page, "I noticed it on 11/14/2025")
    say(page, "card ending in 4821")
    expect(say(page, "cancel it and send me a new card")).to_contain_text("To confirm")
    filed = say(page, "yes")
    expect(filed).to_contain_text("dispute is filed")
    # The customer is still verified: the next request goes straight to its questions.
    expect(say(page, "I'd like to apply for the platinum card")).to_contain_text(
        "annual income")
    expect(say(page, "I earn $120,000 a year")).to_contain_text("To confirm")
    expect(say(page, "yes")).to_contain_text(
        "application for the Platinum Rewards Card is submitted")
    screenshot(page, "chat-rho-bank-dispute-and-application")

    kenji = bank.get(f"/users/{KENJI}")
    disputed = [(d["dispute_reason"], d["card_action"], d["status"])
                for d in kenji["transaction_disputes"]
                if d["transaction_id"] == "txn_cedd88ce1f65"]
    assert disputed == [("unauthorized_fraudulent_charge", "cancel_and_reissue", "UNDER_REVIEW")]
    assert [(a["card_type"], a["status"]) for a in kenji["credit_card_applications"]] == [
        ("Platinum Rewards Card", "PENDING")]
