"""Handoffs end to end over the API: detection, the packet field by field, one human wins the
take, replies reach the channel marked as human, hand-back continuity, the signed webhook,
and the numbers."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask.testing import FlaskClient
from retail_support import Customer, RetailBackend

from appliance.brands import BusinessHours, policy_of
from appliance.db.models import AdminUser, Conversation, Handoff, Message
from appliance.errors import Conflict, PermissionDenied
from appliance.handoff.webhooks import verify_signature
from appliance.services import Services

EMAIL = "olivia.ito5204@example.com"


class Channel(Customer):
    """A Lumen Goods customer on /v1, and the handoff their conversation opened."""

    def transcript(self) -> dict[str, Any]:
        return self.status()

    def handoff(self) -> Handoff:
        conversation = Conversation.get(Conversation.public_id == self.id)
        return Handoff.get(Handoff.conversation == conversation)


@pytest.fixture
def channel(client: FlaskClient, seeded: dict[str, Any], lumen: Any) -> Channel:
    return Channel(client, seeded["keys"]["lumen-goods"])


@pytest.fixture
def agents(services: Services, seeded: dict[str, Any]) -> tuple[AdminUser, AdminUser]:
    brand = services.brands.get("lumen-goods")
    services.users.create("ana", "a long password 1", "human_agent", brand=brand,
                          actor="test")
    services.users.create("ben", "a long password 2", "human_agent", brand=brand,
                          actor="test")
    return AdminUser.get(username="ana"), AdminUser.get(username="ben")


def test_an_angry_customer_mid_workflow_is_handed_off_with_a_packet_naming_their_order(
        channel: Channel) -> None:
    channel.says(f"I want to cancel order #W5442520, my email is {EMAIL}")
    reply = channel.says("This is ridiculous, your service is terrible and I am furious!!")

    assert "colleague" in reply
    assert channel.transcript()["status"] == "pending_human"
    handoff = channel.handoff()
    packet = handoff.packet
    assert packet["version"] == 1
    assert packet["reason"] in ("frustration_high", "frustration_rising")
    # Stored, the packet holds the email as its placeholder (appliance/privacy/vault.py).
    assert packet["customer"] == {"id": "olivia_ito_3591", "verified": True,
                                  "name": "Olivia Ito", "email": "[EMAIL_1]"}
    assert EMAIL not in json.dumps(packet)
    assert packet["workflow"]["name"] == "cancel_order"
    assert packet["workflow"]["status"] == "in progress"
    assert packet["workflow"]["slots"]["order_id"] == "#W5442520"
    assert "why you're cancelling" in packet["workflow"]["asked"]
    assert [(a["tool"], a["status"]) for a in packet["actions"]] == [
        ("find_user_by_email", "ok"), ("get_user", "ok"), ("get_order", "ok")]
    assert packet["sentiment"]["label"] == "angry"
    assert len(packet["sentiment"]["trajectory"]) == 2
    assert packet["sentiment"]["trajectory"][-1] >= 0.75
    assert packet["transcript"] == {"conversation_id": channel.id, "messages": 5,
                                    "customer_turns": 2}
    assert packet["suggested_next_step"].startswith("Acknowledge the frustration")
    summary = handoff.summary
    assert "Olivia Ito (verified, [EMAIL_1])" in summary
    assert "order id: #W5442520" in summary and "get_order ok" in summary
    assert summary == packet["summary"]


@pytest.mark.parametrize(("turns", "reason"), [
    (["let me talk to a real person please"], "human_request"),
    (["cancel my order", "one second please", "let me look for it", "still looking for it"],
     "slot_not_understood"),
])
def test_each_detection_rule_hands_off_over_http(
        channel: Channel, turns: list[str], reason: str) -> None:
    for text in turns:
        channel.says(text)
    state = channel.transcript()
    assert (state["status"], state["status_reason"]) == ("pending_human", reason)
    assert channel.handoff().reason == reason


def test_exactly_one_of_two_agents_taking_at_once_wins(
        channel: Channel, services: Services, agents: tuple[AdminUser, AdminUser]) -> None:
    channel.says("I want a human")
    handoff = channel.handoff()
    results: list[str] = []
    start = threading.Barrier(2)

    def take(user: AdminUser) -> None:
        start.wait()
        try:
            services.handoffs.take(handoff, user)
            results.append(user.username)
        except Conflict:
            results.append("conflict")

    threads = [threading.Thread(target=take, args=(user,)) for user in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results)[0] in ("ana", "ben") and results.count("conflict") == 1
    winner = Handoff.get_by_id(handoff.id).assigned_to.username
    assert winner in results


def test_a_human_reply_reaches_the_channel_and_only_the_assigned_agent_may_reply(
        channel: Channel, services: Services, agents: tuple[AdminUser, AdminUser]) -> None:
    ana, ben = agents
    channel.says("get me a human agent")
    handoff = services.handoffs.take(channel.handoff(), ana)
    with pytest.raises(PermissionDenied):
        services.handoffs.reply(handoff, ben, "hello from ben")
    services.handoffs.reply(handoff, ana, "Hi, I'm Ana. I can see our chat; how can I help?")

    messages = channel.transcript()["messages"]
    assert messages[-1]["role"] == "human"
    assert messages[-1]["author"] == "ana"
    assert not Message.select().where(Message.text == "hello from ben").exists()
    # While a human has it, the agent stays out of the way but never goes silent.
    assert "colleague" in channel.says("thanks")


def test_a_handed_back_conversation_goes_on_without_asking_again(
        channel: Channel, services: Services, agents: tuple[AdminUser, AdminUser],
        retail_backend: RetailBackend) -> None:
    ana, _ = agents
    channel.says(f"please cancel order #W5442520, I am {EMAIL}")
    channel.says("I want to speak to a person")
    handoff = services.handoffs.take(channel.handoff(), ana)
    services.handoffs.reply(handoff, ana, "I'll let our assistant finish the cancellation.")
    services.handoffs.hand_back(handoff, ana)

    resumed = channel.transcript()
    assert resumed["status"] == "active"
    assert "why you're cancelling" in resumed["messages"][-1]["text"]  # the pending question
    confirm = channel.says("I ordered it by mistake")
    assert "#W5442520" in confirm and "email" not in confirm.lower()
    assert "is cancelled" in channel.says("yes")
    assert retail_backend.order("#W5442520")["status"] == "cancelled"


def test_a_resolved_handoff_closes_the_conversation_with_its_outcome(
        channel: Channel, services: Services, agents: tuple[AdminUser, AdminUser]) -> None:
    ana, _ = agents
    channel.says("human please")
    handoff = services.handoffs.take(channel.handoff(), ana)
    done = services.handoffs.resolve(handoff, ana, "resolved")
    assert (done.status, done.outcome) == ("resolved", "resolved")
    assert channel.transcript()["status"] == "closed"


def test_a_reviewed_handoff_becomes_an_eval_case_and_training_utterances(
        channel: Channel, services: Services) -> None:
    for text in ("cancel my order", "one second please", "let me look for it",
                 "still looking for it"):
        channel.says(text)
    handoff = services.handoffs.review(channel.handoff(), "agent_should_have", "cx")
    assert handoff.review == "agent_should_have"
    case = services.handoffs.eval_case(handoff)
    assert "workflow: cancel_order" in case and "cancel my order" in case
    assert services.handoffs.customer_turns(handoff)[0] == "cancel my order"


@pytest.fixture
def helpdesk() -> Iterator[list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"headers": dict(self.headers), "body": body})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    received.append({"url": f"http://127.0.0.1:{httpd.server_address[1]}/tickets"})
    yield received
    httpd.shutdown()


def test_the_brands_helpdesk_gets_a_verifiable_signed_payload(
        channel: Channel, services: Services, helpdesk: list[dict[str, Any]]) -> None:
    url = helpdesk.pop(0)["url"]
    brand = services.brands.get("lumen-goods")
    _, secret = services.webhooks.add(brand, url, actor="test")
    channel.says(f"cancel order #W5442520 for {EMAIL}")
    channel.says("I need to talk to a real person")

    assert services.webhooks.deliver_due()["delivered"] == 1
    request = helpdesk[0]
    headers = request["headers"]
    assert verify_signature(secret, headers["X-Switchboard-Timestamp"], request["body"],
                            headers["X-Switchboard-Signature"])
    payload = json.loads(request["body"])
    assert payload["event"] == "handoff.created"
    assert payload["handoff"]["id"] == channel.handoff().public_id
    assert payload["handoff"]["workflow"]["slots"]["order_id"] == "#W5442520"
    assert payload["conversation"]["id"] == channel.id


def test_it_reports_the_escalation_numbers_from_the_api(
        channel: Channel, client: FlaskClient, services: Services,
        agents: tuple[AdminUser, AdminUser]) -> None:
    channel.says("let me speak to a person")
    services.handoffs.take(channel.handoff(), agents[0])
    response = client.get("/v1/metrics/escalations?days=7", headers=channel.headers)
    assert response.status_code == 200
    body = response.json
    assert body["conversations"] == 1 and body["handoffs"] == 1  # type: ignore[index]
    assert body["escalation_rate"] == 1.0  # type: ignore[index]
    assert body["by_reason"] == {"human_request": 1}  # type: ignore[index]
    assert body["time_to_human_s"]["taken"] == 1  # type: ignore[index]
    bad = client.get("/v1/metrics/escalations?days=zero", headers=channel.headers)
    assert bad.status_code == 400 and bad.json["error"]["param"] == "days"  # type: ignore[index]


@pytest.mark.parametrize(("at", "open_"), [
    ("2026-12-07 14:30", True),    # Monday 09:30 in New York
    ("2026-12-07 13:30", False),   # Monday 08:30
    ("2026-12-05 15:00", False),   # Saturday
    ("2026-12-07 22:30", True),    # Monday 17:30, with a late shift until 02:00
    ("2026-12-08 06:30", True),    # Tuesday 01:30: Monday's late shift
    ("2026-12-06 06:30", False),   # Sunday 01:30: no Saturday shift
])
def test_it_knows_its_business_hours_across_time_zones_and_midnight(at: str,
                                                                    open_: bool) -> None:
    hours = BusinessHours(timezone="America/New_York", days=(0, 1, 2, 3, 4),
                          open=dt.time(9), close=dt.time(2))
    assert hours.is_open(dt.datetime.fromisoformat(at)) is open_


def test_after_hours_the_customer_is_told_and_the_handoff_becomes_a_ticket(
        channel: Channel, services: Services) -> None:
    brand = services.brands.get("lumen-goods")
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)).time().replace(second=0,
                                                                               microsecond=0)
    closed = BusinessHours(timezone="UTC", days=tuple(range(7)), open=later,
                           close=(dt.datetime.combine(dt.date.today(), later)
                                  + dt.timedelta(hours=1)).time())
    services.brands.update("lumen-goods", actor="test", policy=policy_of(brand).model_copy(
        update={"business_hours": closed}))

    reply = channel.says("I want to talk to a person")

    assert "away right now" in reply and f"{later.strftime('%H:%M')}" in reply
    packet = channel.handoff().packet
    assert packet["after_hours"] is True
    assert "ticket" in packet["summary"]


def test_the_channel_receives_a_human_reply_on_the_events_stream(
        channel: Channel, client: FlaskClient, services: Services,
        agents: tuple[AdminUser, AdminUser]) -> None:
    ana, _ = agents
    channel.says("I want a human")
    last = channel.transcript()["messages"][-1]["id"]
    handoff = services.handoffs.take(channel.handoff(), ana)
    quiet = client.get(f"/v1/conversations/{channel.id}/events?after={last}&wait=0.2",
                       headers=channel.headers)
    assert quiet.get_data(as_text=True) == "event: ping\ndata: {}\n\n"

    later = threading.Timer(0.6, services.handoffs.reply, (handoff, ana, "Hi, Ana here."))
    later.start()
    response = client.get(f"/v1/conversations/{channel.id}/events?after={last}&wait=10",
                          headers=channel.headers)
    later.join()

    assert response.mimetype == "text/event-stream"
    event, data = response.get_data(as_text=True).strip().split("\n", 1)
    assert event == "event: message"
    message = json.loads(data.removeprefix("data: "))
    assert (message["role"], message["author"], message["text"]) == (
        "human", "ana", "Hi, Ana here.")
    bad = client.get(f"/v1/conversations/{channel.id}/events?after=msg_nope",
                     headers=channel.headers)
    assert bad.status_code == 400 and bad.json["error"]["param"] == "after"  # type: ignore[index]
