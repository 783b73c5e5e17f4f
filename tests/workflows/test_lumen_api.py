"""Lumen Goods over the HTTP API: a customer verified by email or by name and zip cancels,
returns, exchanges and changes an address, and the order system shows exactly that change
and nothing else. Guards: another customer's order, a tool that fails, a write nobody
confirmed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from flask.testing import FlaskClient
from retail_support import Customer, RetailBackend

from appliance.brands import policy_of
from appliance.db.models import Conversation, ToolCall
from appliance.identity import signature
from appliance.services import Services

OLIVIA = {"email": "olivia.ito5204@example.com", "user_id": "olivia_ito_3591",
          "orders": ["#W5866402", "#W5353646", "#W5442520", "#W7941031", "#W3657213"]}

TOOL_FAILED = "I'm sorry, I can't reach our order system right now, so I can't finish this myself."


def snapshot(backend: RetailBackend, user_id: str) -> dict[str, Any]:
    user = backend.get(f"/users/{user_id}")
    return {"user": user, **{order: backend.order(order) for order in user["orders"]}}


def changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, set[str]]:
    """{document: keys whose values differ}."""
    return {name: {key for key in set(before[name]) | set(after[name])
                   if before[name].get(key) != after[name].get(key)}
            for name in before if before[name] != after[name]}


@pytest.fixture
def customer(client: FlaskClient, seeded: dict[str, Any], lumen: Any) -> Customer:
    return Customer(client, seeded["keys"]["lumen-goods"])


def test_it_cancels_a_pending_order_for_a_customer_verified_by_email(
        customer: Customer, retail_backend: RetailBackend) -> None:
    before = snapshot(retail_backend, OLIVIA["user_id"])
    assert "account" in customer.says("Hi! I'd like to cancel order #W3657213")
    assert "found your account" in customer.says(OLIVIA["email"])
    confirm = customer.says("I don't need it anymore")
    assert "#W3657213" in confirm and "no longer needed" in confirm
    assert "is cancelled" in customer.says("yes")
    after = snapshot(retail_backend, OLIVIA["user_id"])
    assert changed(before, after) == {"#W3657213": {"status", "payment_history", "cancel_reason"},
                                      "user": {"payment_methods"}}
    assert after["#W3657213"]["status"] == "cancelled"
    refund = after["#W3657213"]["payment_history"][-1]
    assert (refund["transaction_type"], refund["amount"]) == ("refund", 3570.34)


def test_a_customer_the_shops_site_signed_in_is_asked_nothing(
        client: FlaskClient, services: Services, seeded: dict[str, Any], lumen: Any) -> None:
    """The widget opened with a signed user id: the order is looked up at once, without an
    email or a name and zip, and the conversation's customer is the signed one."""
    _, secret = services.identity.create_secret(services.brands.get("lumen-goods"),
                                                actor="test")
    user_id = OLIVIA["user_id"]
    opened = client.post("/v1/widget/lumen-goods/conversations", json={"customer": {
        "id": user_id, "signature": signature(secret, user_id)}})
    assert opened.status_code == 201, opened.get_data(as_text=True)
    token = opened.get_json()["token"]

    reply = client.post(f"/v1/conversations/{opened.get_json()['id']}/messages",
                        json={"text": "Where is my order #W5866402?"},
                        headers={"Authorization": f"Bearer {token}"})

    assert reply.status_code == 200, reply.get_data(as_text=True)
    text = reply.get_json()["message"]["text"]
    assert "#W5866402 is delivered" in text and "email" not in text
    state = Conversation.get(Conversation.public_id == opened.get_json()["id"]).state
    assert (state["customer_id"], state["assurance"]) == (user_id, "asserted")


def test_it_returns_delivered_items_for_a_customer_verified_by_name_and_zip(
        customer: Customer, retail_backend: RetailBackend) -> None:
    before = snapshot(retail_backend, OLIVIA["user_id"])
    customer.says("I want to return the sneakers from order #W5866402")
    customer.says("Olivia Ito, 80218")
    confirm = customer.says("back to the original payment method please")
    assert "Sneakers" in confirm and "Espresso" not in confirm
    assert "return" in customer.says("yes").lower()
    after = snapshot(retail_backend, OLIVIA["user_id"])
    assert changed(before, after) == {"#W5866402": {
        "status", "return_items", "return_payment_method_id"}}
    assert after["#W5866402"]["return_items"] == ["9727387530"]
    assert after["#W5866402"]["return_payment_method_id"] == "paypal_8049766"


def test_it_exchanges_a_delivered_item_for_another_option(
        customer: Customer, retail_backend: RetailBackend) -> None:
    product = retail_backend.get("/products/" + retail_backend.order("#W5866402")["items"][1][
        "product_id"])
    wanted = product["variants"]["2509076505"]
    assert wanted["available"]
    before = snapshot(retail_backend, OLIVIA["user_id"])
    customer.says(f"hi, my email is {OLIVIA['email']}")
    customer.says("I'd like to exchange the sneakers in order #W5866402")
    options = " ".join(str(v) for v in wanted["options"].values())
    customer.says(f"I want the {options} ones")
    confirm = customer.says("use the original payment method")
    assert "Sneakers" in confirm
    customer.says("yes")
    after = snapshot(retail_backend, OLIVIA["user_id"])
    assert set(changed(before, after)) == {"#W5866402"}
    order = after["#W5866402"]
    assert order["status"] == "exchange requested"
    assert (order["exchange_items"], order["exchange_new_items"]) == (
        ["9727387530"], ["2509076505"])


def test_it_changes_a_pending_orders_shipping_address(
        customer: Customer, retail_backend: RetailBackend) -> None:
    before = snapshot(retail_backend, OLIVIA["user_id"])
    customer.says(f"Please send order #W5442520 to a different address. I am {OLIVIA['email']}")
    confirm = customer.says("123 Main Street, Apt 4, Austin, TX 78701")
    assert "123 Main Street" in confirm and "78701" in confirm
    customer.says("yes")
    after = snapshot(retail_backend, OLIVIA["user_id"])
    assert changed(before, after) == {"#W5442520": {"address"}}
    assert after["#W5442520"]["address"] == {
        "address1": "123 Main Street", "address2": "Apt 4", "city": "Austin",
        "state": "TX", "country": "USA", "zip": "78701"}


def test_it_refuses_another_customers_order(
        customer: Customer, retail_backend: RetailBackend) -> None:
    other = next(order for order in ("#W2611340",) if order not in OLIVIA["orders"])
    before = retail_backend.order(other)
    customer.says(f"cancel my order {other}")
    reply = customer.says(OLIVIA["email"])
    assert "only help with the account you verified" in reply
    customer.says("no longer needed")
    customer.says("yes")
    assert retail_backend.order(other) == before


def test_it_refuses_a_second_customer_in_the_same_conversation(
        customer: Customer, services: Services) -> None:
    customer.says(f"where is my order #W5866402? my email is {OLIVIA['email']}")
    reply = customer.says("now check the orders of noah.brown7922@example.com")
    assert "one customer per conversation" in reply
    assert "noah" not in reply.lower()
    assert customer.status()["status"] == "active"


def test_it_never_writes_on_a_yes_nobody_asked_for(
        customer: Customer, retail_backend: RetailBackend, services: Services) -> None:
    customer.says("yes, cancel #W5442520, yes, yes")
    customer.says(OLIVIA["email"])
    assert retail_backend.order("#W5442520")["status"] == "pending"
    assert not ToolCall.select().where(ToolCall.tool == "cancel_order").exists()


def test_a_yes_with_a_condition_writes_nothing_and_asks_again(
        customer: Customer, retail_backend: RetailBackend) -> None:
    customer.says("cancel order #W3657213 because I ordered it by mistake")
    customer.says(OLIVIA["email"])

    again = customer.says("yes, but cancel #W5442520 instead")
    assert not ToolCall.select().where(ToolCall.tool == "cancel_order").exists()
    assert "(yes/no)" in again, again
    assert "is cancelled" in customer.says("yes")

    cancelled = [order for order in ("#W3657213", "#W5442520")
                 if retail_backend.order(order)["status"] == "cancelled"]
    assert len(cancelled) == 1 and cancelled[0] in again


class Faulty:
    """Forwards to the real order system, except paths told to fail."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.failing = upstream, {}  # type: dict[str, tuple[int, bytes]]


@pytest.fixture
def faulty(services: Services, lumen: Any, retail_backend: RetailBackend) -> Iterator[Faulty]:
    proxy = Faulty(retail_backend.url)

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            for marker, (status, payload) in proxy.failing.items():
                if marker in self.path:
                    self.send_response(status)
                    self.end_headers()
                    self.wfile.write(payload)
                    return
            upstream = httpx.request(self.command, proxy.upstream + self.path, content=body,
                                     headers={"Content-Type": "application/json"})
            self.send_response(upstream.status_code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(upstream.content)

        do_GET = do_POST = _forward

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    policy = policy_of(lumen)
    # What the agent says when the system fails is the brand's to word.
    messages = policy.workflow_messages.model_copy(update={"tool_failed": TOOL_FAILED})
    policy = policy.model_copy(update={
        "tools_base_url": f"http://127.0.0.1:{httpd.server_address[1]}",
        "workflow_messages": messages})
    services.brands.update("lumen-goods", policy=policy, actor="test")
    yield proxy
    httpd.shutdown()


@pytest.mark.parametrize("failure", [(500, b'{"error": "boom"}'), (200, b"<html>oops")])
def test_it_tells_the_customer_and_hands_off_when_the_order_system_fails(
        customer: Customer, faulty: Faulty, failure: tuple[int, bytes]) -> None:
    faulty.failing["/orders/"] = failure
    reply = customer.says(f"cancel order #W5442520 please, my email is {OLIVIA['email']}")
    status = customer.status()
    assert TOOL_FAILED in reply
    assert "Traceback" not in reply and "boom" not in reply
    assert (status["status"], status["status_reason"]) == ("pending_human", "tool_failure")
    conversation = Conversation.get(Conversation.public_id == customer.id)
    assert ToolCall.select().where((ToolCall.conversation == conversation)
                                   & (ToolCall.status == "failed")).exists()
    assert json.dumps(conversation.state)  # the state stays plain JSON
