"""Webhooks to a brand's helpdesk: real HTTP receivers on loopback, a real database, time
driven by the `now` passed to `deliver_due` (a fake clock, no sleeps)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from webhook_receiver import Receiver, receiving

from appliance.cli import cli
from appliance.cli import webhooks as webhooks_cli
from appliance.cli.context import CliContext
from appliance.config import Settings
from appliance.db.models import Brand, Conversation, JobRun, WebhookDelivery, utcnow
from appliance.errors import InvalidRequest
from appliance.handoff.webhooks import (
    DELIVERED,
    FAILED,
    PENDING,
    WebhookService,
    backoff,
    sign,
    verify_signature,
    zendesk_ticket,
)
from appliance.jobs import JOBS, run_job
from appliance.services import Services

TIMEOUT_S = 0.3
MAX_ATTEMPTS = 4
EMPTY_CONFIG = Path(__file__).resolve().parents[1] / "empty-config.toml"

#: A handoff packet as the handoff subsystem builds it (Lumen Goods, a τ-bench customer).
HANDOFF: dict[str, Any] = {
    "id": "hof_5c1e0f2b9d4a7e8c3b6a1d0f",
    "reason": "frustration_high",
    "reason_text": "The customer is very frustrated.",
    "customer": {"name": "Yusuf Rossi", "email": "yusuf.rossi7301@example.com",
                 "verified": True, "customer_id": "yusuf_rossi_9620"},
    "intent": {"name": "cancel_order", "confidence": 0.93},
    "workflow": {"name": "cancel_order", "step": "confirm_cancel",
                 "slots": {"order_id": "#W2378156", "reason": "ordered by mistake"}},
    "sentiment": {"label": "negative", "frustration": 0.86},
    "summary": "Yusuf wants to cancel pending order #W2378156 (ordered by mistake). Identity "
               "verified by email. The cancellation failed twice and he asked for a person.",
    "transcript": [
        {"role": "customer", "text": "Cancel order #W2378156, I ordered it by mistake."},
        {"role": "agent", "text": "I'm sorry, I couldn't cancel it just now."},
        {"role": "customer", "text": "This is ridiculous. Get me a human."},
    ],
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Short timeouts and few attempts keep the failure paths quick."""
    return dataclasses.replace(settings, webhook_timeout_s=TIMEOUT_S,
                               webhook_max_attempts=MAX_ATTEMPTS,
                               webhook_console_url="https://switchboard.example.internal")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as listening:
        yield listening


@pytest.fixture
def lumen(services: Services, seeded: dict[str, Any]) -> Brand:
    return services.brands.get("lumen-goods")


@pytest.fixture
def conversation(services: Services, lumen: Brand) -> Conversation:
    conversation, _ = services.conversations.start(
        lumen, {"email": "yusuf.rossi7301@example.com"}, "web")
    return conversation


def hand_off(services: Services, conversation: Conversation) -> list[WebhookDelivery]:
    """What the handoff subsystem does: change the conversation and enqueue, in one
    transaction."""
    with services.db.atomic():
        conversation.status = "pending_human"
        conversation.save()
        return services.webhooks.enqueue_handoff(conversation, HANDOFF)


def add_endpoint(services: Services, brand: Brand, url: str,
                 events: tuple[str, ...] = ("handoff.created",)) -> str:
    _, secret = services.webhooks.add(brand, url, events, actor="test")
    return secret


def reload(delivery: WebhookDelivery) -> WebhookDelivery:
    fresh: WebhookDelivery = WebhookDelivery.get_by_id(delivery.id)
    return fresh


# --- sending and signing --------------------------------------------------------------------


def test_it_sends_the_payload_signed_so_the_receiver_can_verify_it(
    services: Services, lumen: Brand, conversation: Conversation, receiver: Receiver
) -> None:
    secret = add_endpoint(services, lumen, receiver.url)
    [delivery] = hand_off(services, conversation)

    summary = services.webhooks.deliver_due()

    assert summary == {"delivered": 1, "retrying": 0, "failed": 0, "skipped": 0}
    [request] = receiver.received
    headers, body = request["headers"], request["body"]
    assert request["path"] == "/hooks/switchboard"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Switchboard-Event"] == "handoff.created"
    assert headers["X-Switchboard-Delivery"] == delivery.public_id
    assert abs(int(headers["X-Switchboard-Timestamp"]) - time.time()) < 60
    assert verify_signature(secret, headers["X-Switchboard-Timestamp"], body,
                            headers["X-Switchboard-Signature"])
    payload = json.loads(body)
    assert payload == {
        "version": 1,
        "id": delivery.event_id,
        "event": "handoff.created",
        "created_at": payload["created_at"],
        "brand": {"slug": "lumen-goods", "name": "Lumen Goods"},
        "conversation": {
            "id": conversation.public_id, "channel": "web", "status": "pending_human",
            "url": "https://switchboard.example.internal/admin/conversations/"
                   + conversation.public_id,
        },
        "handoff": {**HANDOFF, "console_url": "https://switchboard.example.internal/admin/"
                                              f"handoffs/{HANDOFF['id']}"},
    }
    assert payload["id"].startswith("evt_")
    assert dt.datetime.fromisoformat(payload["created_at"]).tzinfo == dt.UTC
    stored = reload(delivery)
    assert (stored.status, stored.attempts, stored.last_status, stored.last_error) == (
        DELIVERED, 1, 200, None)
    assert stored.delivered_at is not None


def test_it_sends_nothing_twice_once_delivered(
    services: Services, lumen: Brand, conversation: Conversation, receiver: Receiver
) -> None:
    add_endpoint(services, lumen, receiver.url)
    hand_off(services, conversation)
    services.webhooks.deliver_due()

    later = services.webhooks.deliver_due(now=utcnow() + dt.timedelta(days=1))

    assert later == {"delivered": 0, "retrying": 0, "failed": 0, "skipped": 0}
    assert len(receiver.received) == 1


def test_it_retries_a_failing_receiver_until_it_accepts(
    services: Services, lumen: Brand, conversation: Conversation, receiver: Receiver
) -> None:
    receiver.answers = [500, 500, 200]
    add_endpoint(services, lumen, receiver.url)
    [delivery] = hand_off(services, conversation)
    now = utcnow()

    assert services.webhooks.deliver_due(now=now)["retrying"] == 1
    first = reload(delivery)
    assert (first.status, first.attempts, first.last_status) == (PENDING, 1, 500)
    assert first.last_error == "HTTP 500: Not Found here"
    assert 30 <= (first.next_attempt_at - now).total_seconds() <= 33

    # Not yet due: nothing is sent.
    early = first.next_attempt_at - dt.timedelta(seconds=1)
    assert services.webhooks.deliver_due(now=early)["retrying"] == 0
    assert len(receiver.received) == 1

    now = first.next_attempt_at
    assert services.webhooks.deliver_due(now=now)["retrying"] == 1
    second = reload(delivery)
    assert 60 <= (second.next_attempt_at - now).total_seconds() <= 66

    assert services.webhooks.deliver_due(now=second.next_attempt_at)["delivered"] == 1
    done = reload(delivery)
    assert (done.status, done.attempts, done.last_status, done.last_error) == (
        DELIVERED, 3, 200, None)
    assert len(receiver.received) == 3
    # Every attempt is the same delivery with the same body, freshly signed.
    assert {r["headers"]["X-Switchboard-Delivery"] for r in receiver.received} == {
        delivery.public_id}
    assert {r["body"] for r in receiver.received} == {delivery.body.encode()}


@pytest.mark.parametrize(("answer", "error"), [
    ("hang", f"timeout after {TIMEOUT_S:g} s"),
    (404, "HTTP 404: Not Found here"),
    ("garbage", "RemoteProtocolError"),
])
def test_it_backs_off_from_a_broken_receiver_then_gives_up(
    services: Services, lumen: Brand, conversation: Conversation, receiver: Receiver,
    answer: int | str, error: str,
) -> None:
    receiver.answers = [answer]
    add_endpoint(services, lumen, receiver.url)
    [delivery] = hand_off(services, conversation)
    now = utcnow()
    waits = []

    for attempt in range(1, MAX_ATTEMPTS + 1):
        summary = services.webhooks.deliver_due(now=now)
        stored = reload(delivery)
        assert stored.attempts == attempt
        assert stored.last_error is not None and stored.last_error.startswith(error)
        assert stored.last_status == (answer if isinstance(answer, int) else None)
        if attempt < MAX_ATTEMPTS:
            assert summary["retrying"] == 1 and stored.status == PENDING
            waits.append((stored.next_attempt_at - now).total_seconds())
            now = stored.next_attempt_at

    assert summary["failed"] == 1
    assert reload(delivery).status == FAILED
    assert waits == sorted(waits) and waits[0] >= 30 and waits[-1] >= 4 * 30
    assert len(receiver.received) == MAX_ATTEMPTS
    services.webhooks.deliver_due(now=now + dt.timedelta(days=1))
    assert len(receiver.received) == MAX_ATTEMPTS


def test_it_records_an_unreachable_receiver_as_a_failed_attempt(
    services: Services, lumen: Brand, conversation: Conversation
) -> None:
    with socket.socket() as sock:  # a port nobody listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    add_endpoint(services, lumen, f"http://127.0.0.1:{port}/nobody-listens")
    [delivery] = hand_off(services, conversation)

    summary = services.webhooks.deliver_due()

    assert summary["retrying"] == 1
    stored = reload(delivery)
    assert stored.last_error is not None and stored.last_error.startswith("connection failed")


def test_it_sends_each_delivery_once_when_senders_run_at_once(
    services: Services, lumen: Brand, conversation: Conversation, receiver: Receiver
) -> None:
    receiver.delay_s = 0.05
    for _ in range(3):
        add_endpoint(services, lumen, receiver.url)
    deliveries = hand_off(services, conversation) + hand_off(services, conversation)
    now = utcnow()
    start = threading.Barrier(4)
    summaries: list[dict[str, int]] = []

    def sender() -> None:
        with services.db.connection_context():
            start.wait()
            summaries.append(services.webhooks.deliver_due(now=now))

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    sent = [r["headers"]["X-Switchboard-Delivery"] for r in receiver.received]
    assert sorted(sent) == sorted(d.public_id for d in deliveries)
    assert sum(s["delivered"] for s in summaries) == len(deliveries) == 6
    assert {reload(d).attempts for d in deliveries} == {1}
    # They did race: a sender found deliveries another had claimed (each send takes 50 ms,
    # long after all four have read the due list).
    assert sum(s["skipped"] for s in summaries) > 0


# --- the outbox -----------------------------------------------------------------------------


def test_it_stores_no_delivery_when_the_change_rolls_back(
    services: Services, lumen: Brand, conversation: Conversation, receiver: Receiver
) -> None:
    add_endpoint(services, lumen, receiver.url)

    with pytest.raises(RuntimeError, match="handoff failed"), services.db.atomic():
        Conversation.update(status="pending_human").where(
            Conversation.id == conversation.id).execute()
        assert len(services.webhooks.enqueue_handoff(conversation, HANDOFF)) == 1
        raise RuntimeError("handoff failed")

    assert WebhookDelivery.select().count() == 0
    assert Conversation.get_by_id(conversation.id).status == "active"
    services.webhooks.deliver_due()
    assert receiver.received == []


def test_it_refuses_to_enqueue_outside_a_transaction(
    services: Services, lumen: Brand, conversation: Conversation, receiver: Receiver
) -> None:
    add_endpoint(services, lumen, receiver.url)

    with pytest.raises(RuntimeError, match="inside the transaction"):
        services.webhooks.enqueue_handoff(conversation, HANDOFF)

    assert WebhookDelivery.select().count() == 0


def test_it_queues_only_for_active_endpoints_of_the_brand_subscribed_to_the_event(
    services: Services, lumen: Brand, conversation: Conversation
) -> None:
    wants = services.webhooks.add(lumen, "https://help.example/created", ["handoff.created"],
                                  actor="test")[0]
    services.webhooks.add(lumen, "https://help.example/resolved", ["handoff.resolved"],
                          actor="test")
    gone = services.webhooks.add(lumen, "https://help.example/old", actor="test")[0]
    services.webhooks.disable(lumen, gone.id, actor="test")
    bank = services.brands.get("rho-bank")
    services.webhooks.add(bank, "https://help.example/bank", actor="test")

    deliveries = hand_off(services, conversation)

    assert [d.endpoint_id for d in deliveries] == [wants.id]
    assert [d.public_id for d in services.webhooks.deliveries(lumen)] == [
        deliveries[0].public_id]
    assert services.webhooks.deliveries(bank) == []


def test_it_marks_pending_deliveries_failed_when_their_endpoint_is_disabled(
    services: Services, lumen: Brand, conversation: Conversation, receiver: Receiver
) -> None:
    endpoint, _ = services.webhooks.add(lumen, receiver.url, actor="test")
    [delivery] = hand_off(services, conversation)

    services.webhooks.disable(lumen, endpoint.id, actor="test")
    services.webhooks.deliver_due()

    stored = reload(delivery)
    assert (stored.status, stored.last_error) == (FAILED, "endpoint disabled")
    assert receiver.received == []
    assert [e.active for e in services.webhooks.list(lumen)] == [False]


def test_it_keeps_the_envelope_keys_its_own(
    services: Services, lumen: Brand, conversation: Conversation
) -> None:
    add_endpoint(services, lumen, "https://help.example/x")

    with pytest.raises(InvalidRequest, match="may not set brand, id"), services.db.atomic():
        services.webhooks.enqueue(lumen, "handoff.created", {"id": "mine", "brand": {}})

    assert WebhookDelivery.select().count() == 0


def test_it_links_the_console_page_by_path_without_a_console_url(
    services: Services, conversation: Conversation
) -> None:
    ref = WebhookService(services.db).conversation_ref(conversation)

    assert ref["url"] == f"/admin/conversations/{conversation.public_id}"


@pytest.mark.parametrize(("url", "events", "param"), [
    ("ftp://help.example/x", ["handoff.created"], "url"),
    ("https:///no-host", ["handoff.created"], "url"),
    ("https://help.example/x", ["order.created"], "events"),
    ("https://help.example/x", [], "events"),
])
def test_it_refuses_a_bad_endpoint(
    services: Services, lumen: Brand, url: str, events: list[str], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        services.webhooks.add(lumen, url, events, actor="test")

    assert caught.value.param == param
    assert services.webhooks.list(lumen) == []


def test_it_generates_a_secret_per_endpoint_and_audits_without_it(
    services: Services, lumen: Brand
) -> None:
    from appliance.audit import recent

    first = add_endpoint(services, lumen, "https://help.example/a")
    second = add_endpoint(services, lumen, "https://help.example/b")

    assert first != second and first.startswith("whsec_") and len(first) > 40
    entry = recent(1)[0]
    assert entry.action == "webhook.add" and entry.target == "lumen-goods"
    assert second not in json.dumps(entry.detail)


# --- signatures -----------------------------------------------------------------------------


def test_it_verifies_only_an_untampered_recent_signature() -> None:
    secret, body, ts = "whsec_test", b'{"event":"handoff.created"}', 1_800_000_000
    header = sign(secret, ts, body)

    assert header.startswith("v1=") and len(header) == 3 + 64
    assert verify_signature(secret, str(ts), body, header, now=ts + 299)
    assert verify_signature(secret, ts, body.decode(), f"v1=deadbeef, {header}", now=ts)
    assert not verify_signature(secret, ts, b'{"event":"handoff.resolved"}', header, now=ts)
    assert not verify_signature(secret, ts, body, header, now=ts + 301)  # replayed later
    assert not verify_signature(secret, ts, body, header, now=ts - 301)
    assert not verify_signature(secret, ts + 1, body, header, now=ts)
    assert not verify_signature("whsec_other", ts, body, header, now=ts)
    assert not verify_signature(secret, "yesterday", body, header, now=ts)
    assert not verify_signature(secret, ts, body, "v1=" + "0" * 64, now=ts)
    assert not verify_signature(secret, ts, body, "", now=ts)
    assert not verify_signature(secret, ts, body, "v1=é", now=ts)


def test_it_backs_off_exponentially_with_a_little_jitter_up_to_an_hour() -> None:
    for attempts, base in [(1, 30), (2, 60), (3, 120), (7, 1920)]:
        wait = backoff(attempts).total_seconds()
        assert base <= wait <= base * 1.1
    assert backoff(8).total_seconds() == backoff(500).total_seconds() == 3600


# --- the job and the CLI --------------------------------------------------------------------


def test_it_delivers_from_the_scheduler_job(
    services: Services, lumen: Brand, conversation: Conversation, receiver: Receiver
) -> None:
    job = JOBS["webhooks.deliver"]
    assert job.trigger == ("interval", {"minutes": 1}) and job.at_start
    add_endpoint(services, lumen, receiver.url)
    hand_off(services, conversation)

    run = run_job(services, "webhooks.deliver")

    assert run.status == "ok"
    assert run.detail == {"delivered": 1, "retrying": 0, "failed": 0, "skipped": 0}
    assert len(receiver.received) == 1


def _env(settings: Settings) -> dict[str, str | None]:
    unset: dict[str, str | None] = {"APPLIANCE_DATABASE_URL_FILE": None}
    return unset | {
        "APPLIANCE_CONFIG": str(EMPTY_CONFIG),
        "APPLIANCE_DATA_DIR": str(settings.data_dir),
        "APPLIANCE_DATABASE_URL": settings.database_url,
        "APPLIANCE_WEBHOOK_TIMEOUT_S": str(TIMEOUT_S),
    }


def test_it_runs_the_job_from_the_command_line(
    services: Services, lumen: Brand, conversation: Conversation, receiver: Receiver
) -> None:
    add_endpoint(services, lumen, receiver.url)
    hand_off(services, conversation)

    result = CliRunner().invoke(cli, ["jobs", "run", "webhooks.deliver"],
                                env=_env(services.settings))

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["detail"]["delivered"] == 1
    assert len(receiver.received) == 1
    assert JobRun.select().where(JobRun.job_id == "webhooks.deliver").count() == 1


def test_it_manages_endpoints_and_deliveries_from_the_command_line(
    services: Services, lumen: Brand, conversation: Conversation, receiver: Receiver
) -> None:
    import click

    group = click.Group()
    webhooks_cli.register(group)

    def invoke(*args: str) -> str:
        context = CliContext()
        try:
            result = CliRunner().invoke(group, ["webhooks", *args], obj=context,
                                        env=_env(services.settings))
        finally:
            context.close()
        assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
        return result.stdout

    secret = invoke("add", "--brand", "lumen-goods", "--url", receiver.url,
                    "--event", "handoff.created").strip()
    assert secret.startswith("whsec_")
    listed = invoke("list", "--brand", "lumen-goods")
    assert receiver.url in listed and "handoff.created" in listed and secret not in listed

    receiver.answers = [503]
    hand_off(services, conversation)
    assert json.loads(invoke("deliver"))["detail"]["retrying"] == 1
    rows = invoke("deliveries", "--brand", "lumen-goods").splitlines()
    assert rows[0].split()[:5] == ["delivery", "event", "endpoint", "status", "attempts"]
    assert rows[2].split()[1:7] == ["handoff.created", "1", "pending", "1", "503", "HTTP"]
    assert verify_signature(secret, receiver.received[0]["headers"]["X-Switchboard-Timestamp"],
                            receiver.received[0]["body"],
                            receiver.received[0]["headers"]["X-Switchboard-Signature"])

    endpoint_id = listed.splitlines()[2].split()[0]
    assert "disabled" in invoke("disable", "--brand", "lumen-goods", endpoint_id)
    assert "failed" in invoke("deliveries", "--brand", "lumen-goods")


# --- Zendesk --------------------------------------------------------------------------------


def _payload(handoff: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": 1, "id": "evt_1", "event": "handoff.created",
        "created_at": "2026-11-25T10:00:00Z",
        "brand": {"slug": "lumen-goods", "name": "Lumen Goods"},
        "conversation": {"id": "conv_abc", "channel": "web", "status": "pending_human",
                         "url": "https://switchboard.example.internal/admin/conversations/"
                                "conv_abc"},
        "handoff": handoff,
    }


def test_it_maps_a_handoff_to_a_zendesk_ticket_field_by_field() -> None:
    ticket = zendesk_ticket(_payload(HANDOFF), field_ids={"conversation_id": 360001,
                                                          "order_id": 360003})["ticket"]

    assert ticket["subject"] == "[Lumen Goods] Handoff: frustration high — cancel order"
    assert ticket["comment"] == {"body": HANDOFF["summary"] + "\n\nConversation: "
                                 "https://switchboard.example.internal/admin/conversations/"
                                 "conv_abc"}
    assert ticket["requester"] == {"name": "Yusuf Rossi", "email": "yusuf.rossi7301@example.com"}
    assert ticket["tags"] == ["lumen-goods", "frustration_high", "cancel_order"]
    assert ticket["custom_fields"] == [
        {"id": 360001, "value": "conv_abc"},
        {"id": "sentiment", "value": "negative"},
        {"id": 360003, "value": "#W2378156"},
    ]
    assert ticket["priority"] == "high"
    assert ticket["external_id"] == "conv_abc"


def test_it_maps_a_sparse_handoff_to_a_normal_ticket_without_requester() -> None:
    ticket = zendesk_ticket(_payload({"reason": "human_request",
                                      "customer": {"name": "Anonymous visitor"}}))["ticket"]

    assert ticket["subject"] == "[Lumen Goods] Handoff: human request"
    assert ticket["comment"]["body"].startswith("No summary.")
    assert "requester" not in ticket
    assert ticket["tags"] == ["lumen-goods", "human_request"]
    assert ticket["custom_fields"] == [{"id": "conversation_id", "value": "conv_abc"}]
    assert ticket["priority"] == "normal"

