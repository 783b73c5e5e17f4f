"""Retention, legal holds, export and erasure, on SQLite and PostgreSQL: a customer is found by
the same key whether the API named them or a workflow verified them; purge and erasure delete
a conversation with everything hung off it and never touch what is held; the ledger still
verifies and says what was purged; the audit log never names the customer."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask.testing import FlaskClient
from retail_support import Customer

from appliance.billing.ledger import EntryType
from appliance.brands import Persona, policy_of
from appliance.db.models import (
    AuditLog,
    Brand,
    Conversation,
    ConversationSubject,
    Handoff,
    Message,
    PurgedConversation,
    ToolCall,
    WebhookDelivery,
)
from appliance.errors import InvalidRequest, NotFound
from appliance.services import Services

OLIVIA = "olivia.ito5204@example.com"
NOW = dt.datetime(2026, 12, 1, 12)


@pytest.fixture
def brand(services: Services) -> Brand:
    persona = Persona(agent_name="Juniper", tone="Warm.", greeting="Hi, I'm Juniper!")
    brand = services.brands.create("acme", "Acme", persona, actor="test")
    policy = policy_of(brand).model_copy(update={"retention_days": 30})
    return services.brands.update("acme", policy=policy, actor="test")


def opened(services: Services, brand: Brand, customer: dict[str, Any],
           last_active: dt.datetime, *lines: str) -> Conversation:
    """A conversation as the API opens one, with `role: text` lines, last active then."""
    conversation, _ = services.conversations.start(brand, customer, "api")
    for n, line in enumerate(lines):
        role, text = line.split(": ", 1)
        Message.create(public_id=f"{conversation.public_id}_m{n}", conversation=conversation,
                       role=role, text=text)
    Conversation.update(updated_at=last_active, created_at=last_active).where(
        Conversation.id == conversation.id).execute()
    return Conversation.get_by_id(conversation.id)


def exists(conversation: Conversation) -> bool:
    return Conversation.get_or_none(Conversation.id == conversation.id) is not None


def test_the_api_customer_and_a_verified_customer_share_one_subject_key(
        client: FlaskClient, services: Services, seeded: dict[str, Any], lumen: Brand) -> None:
    """Olivia verified by email in a cancel workflow, and Olivia named (in capitals) by the
    API in another conversation: one customer to export and erase."""
    verified = Customer(client, seeded["keys"]["lumen-goods"])
    verified.says("Hi! I'd like to cancel order #W3657213")
    assert "found your account" in verified.says(OLIVIA)
    named = client.post("/v1/conversations", json={"customer": {"email": OLIVIA.upper()}},
                        headers=verified.headers)
    assert named.status_code == 201
    someone_else = Customer(client, seeded["keys"]["lumen-goods"])
    someone_else.says("hello")

    found = {c.public_id for c in services.privacy.subjects.conversations(lumen, OLIVIA)}
    assert found == {verified.id, named.get_json()["id"]}
    export = services.privacy.export(lumen, OLIVIA, actor="dpo")
    texts = [m["text"] for c in export["conversations"] for m in c["messages"]]
    assert "Hi! I'd like to cancel order #W3657213" in texts
    assert any(call["tool"] for c in export["conversations"] for call in c["tool_calls"])

    result = services.privacy.erase(lumen, OLIVIA, actor="dpo")

    assert sorted(result.erased) == sorted(found) and result.held == []
    assert not Conversation.select().where(Conversation.public_id.in_(list(found))).exists()
    assert Conversation.get_or_none(Conversation.public_id == someone_else.id) is not None
    assert ToolCall.select().where(ToolCall.conversation.is_null(False)).count() == 0
    entries = list(AuditLog.select().where(AuditLog.action.startswith("privacy.")))
    assert [e.action for e in entries] == ["privacy.export", "privacy.erase"]
    logged = json.dumps([[e.target, e.detail] for e in entries]).lower()
    assert OLIVIA not in logged and f"subject:{result.subject}" in logged


def test_purge_deletes_what_is_past_retention_with_all_hung_off_it_and_keeps_holds(
        services: Services, brand: Brand) -> None:
    services.webhooks.add(brand, "https://crm.example.com/hooks", actor="test")
    old = opened(services, brand, {"email": "old@example.com"}, NOW - dt.timedelta(days=31),
                 "customer: my card 4111 1111 1111 1111 was charged twice", "agent: sorry!")
    with services.db.atomic():
        handoff = services.handoffs.open(old, "human_requested", {})
    recent = opened(services, brand, {"email": "new@example.com"}, NOW - dt.timedelta(days=29))
    with services.db.atomic():
        services.handoffs.open(recent, "human_requested", {})
    assert WebhookDelivery.select().count() == 2
    held_customer = opened(services, brand, {"id": "cust-7"}, NOW - dt.timedelta(days=400))
    held_one = opened(services, brand, {}, NOW - dt.timedelta(days=90))
    services.privacy.hold(brand, identifier="cust-7", reason="matter 2026-114", actor="legal")
    services.privacy.hold(brand, conversation=held_one.public_id, reason="complaint 88",
                          actor="legal")

    report = services.privacy.purge(NOW)

    assert report == {"acme": {"purged": 1, "held": 2}}
    assert not exists(old) and exists(recent) and exists(held_customer) and exists(held_one)
    assert not Message.select().where(Message.conversation == old.id).exists()
    assert Handoff.get_or_none(Handoff.id == handoff.id) is None
    # The handoff's webhook carried the packet (the transcript): it goes too.
    bodies = [d.body for d in WebhookDelivery.select()]
    assert len(bodies) == 1 and recent.public_id in bodies[0] and "4111" not in bodies[0]
    assert not ConversationSubject.select().where(
        ConversationSubject.conversation == old.id).exists()
    purged = PurgedConversation.get(PurgedConversation.public_id == old.public_id)
    assert purged.reason == "retention" and len(purged.transcript_sha256) == 64
    # A second run finds nothing more, and a brand without retention keeps everything.
    assert services.privacy.purge(NOW) == {"acme": {"purged": 0, "held": 2}}
    services.brands.update("acme", policy=policy_of(brand).model_copy(
        update={"retention_days": None}), actor="test")
    assert services.privacy.purge(NOW + dt.timedelta(days=3650)) == {}
    assert exists(recent)


def test_released_holds_are_purged_at_the_next_run(services: Services, brand: Brand) -> None:
    kept = opened(services, brand, {"email": "A@Example.com"}, NOW - dt.timedelta(days=60))
    services.privacy.hold(brand, identifier="a@example.com", reason="matter 1", actor="legal")
    assert services.privacy.purge(NOW)["acme"] == {"purged": 0, "held": 1}

    assert services.privacy.release(brand, identifier="a@example.com", actor="legal") == 1

    assert services.privacy.purge(NOW)["acme"] == {"purged": 1, "held": 0}
    assert not exists(kept)
    with pytest.raises(NotFound):
        services.privacy.release(brand, identifier="a@example.com", actor="legal")


def test_erasure_keeps_held_conversations_and_says_which(services: Services,
                                                         brand: Brand) -> None:
    first = opened(services, brand, {"email": "b@example.com"}, NOW, "customer: hi")
    second = opened(services, brand, {"email": "b@example.com"}, NOW, "customer: again")
    services.privacy.hold(brand, conversation=second.public_id, reason="chargeback",
                          actor="legal")

    result = services.privacy.erase(brand, "b@example.com", actor="dpo")

    assert (result.erased, result.held) == ([first.public_id], [second.public_id])
    assert not exists(first) and exists(second)


def test_erasing_an_unknown_customer_changes_nothing(services: Services, brand: Brand) -> None:
    other = opened(services, brand, {"email": "c@example.com"}, NOW, "customer: hi")

    result = services.privacy.erase(brand, "nobody@example.com", actor="dpo")

    assert (result.erased, result.held) == ([], [])
    assert exists(other)
    assert PurgedConversation.select().count() == 0


def test_the_ledger_verifies_after_a_purge_and_counts_what_was_purged(
        services: Services, brand: Brand) -> None:
    billed = opened(services, brand, {"email": "d@example.com"}, NOW - dt.timedelta(days=45),
                    "customer: cancel my order", "agent: it is cancelled")
    services.ledger.append(brand, EntryType.PROVISIONAL, amount=Decimal("0.99"),
                           currency="EUR", body={"outcome": "resolved"}, conversation=billed)
    kept = opened(services, brand, {}, NOW, "customer: hello")
    services.ledger.append(brand, EntryType.PROVISIONAL, amount=Decimal("0.99"),
                           currency="EUR", body={"outcome": "resolved"}, conversation=kept)

    services.privacy.purge(NOW)

    check = services.ledger.verify(brand)
    assert (check.ok, check.count, check.purged) == (True, 2, 1)
    # A conversation deleted outside retention and erasure is still a failure.
    Conversation.delete().where(Conversation.id == kept.id).execute()
    check = services.ledger.verify(brand)
    assert not check.ok and check.problem and kept.public_id in check.problem


@pytest.mark.parametrize(("given", "code"), [
    ({"identifier": "x@example.com", "conversation": "conv_x"}, "hold_target_required"),
    ({}, "hold_target_required"),
    ({"identifier": "x@example.com", "reason": "  "}, "reason_required"),
])
def test_a_hold_names_one_target_and_a_reason(services: Services, brand: Brand,
                                             given: dict[str, str], code: str) -> None:
    arguments: dict[str, Any] = {"reason": "matter", **given}
    with pytest.raises(InvalidRequest) as refused:
        services.privacy.hold(brand, actor="legal", **arguments)
    assert refused.value.code == code


def test_a_hold_on_a_conversation_of_another_brand_is_refused(
        services: Services, brand: Brand) -> None:
    other = services.brands.create("globex", "Globex", Persona(
        agent_name="Gil", tone="Calm.", greeting="Hello."), actor="test")
    theirs = opened(services, other, {}, NOW)
    with pytest.raises(NotFound):
        services.privacy.hold(brand, conversation=theirs.public_id, reason="x", actor="legal")


def test_the_cli_holds_exports_erases_and_purges(
        services: Services, brand: Brand, invoke: Callable[..., Result], tmp_path: Path) -> None:
    customer = opened(services, brand, {"email": "e@example.com"}, NOW - dt.timedelta(days=40),
                      "customer: my email is e@example.com")

    held = invoke("customers", "hold", "--brand", "acme", "--email", "e@example.com",
                  "--reason", "matter 9")
    assert held.exit_code == 0, held.output
    listed = invoke("customers", "holds", "--brand", "acme")
    assert "matter 9" in listed.output and "e@example.com" not in listed.output
    purged = invoke("retention", "purge", "--now", "2026-12-01T12:00:00Z")
    assert purged.exit_code == 0, purged.output
    assert "acme" in purged.output and exists(customer)

    out = tmp_path / "export.json"
    exported = invoke("customers", "export", "--brand", "acme", "--email", "E@example.com",
                      "--out", str(out))
    assert exported.exit_code == 0, exported.output
    document = json.loads(out.read_text())
    assert document["conversations"][0]["messages"][-1]["text"] == "my email is e@example.com"
    assert out.stat().st_mode & 0o777 == 0o600

    kept = invoke("customers", "erase", "--brand", "acme", "--email", "e@example.com")
    assert kept.exit_code == 0 and "kept 1 under legal hold" in kept.output
    assert invoke("customers", "release", "--brand", "acme", "--email",
                  "e@example.com").exit_code == 0
    erased = invoke("customers", "erase", "--brand", "acme", "--email", "e@example.com")
    assert erased.exit_code == 0 and "erased 1 conversation" in erased.output
    assert not exists(customer)
    nothing = invoke("customers", "erase", "--brand", "acme", "--email", "e@example.com")
    assert nothing.exit_code == 0 and "nothing to erase" in nothing.output
    bad = invoke("retention", "purge", "--now", "yesterday")
    assert bad.exit_code != 0 and "ISO 8601" in str(bad.exception)
