"""Outcome attribution (appliance/outcomes.py) over real conversation records in SQLite (and
PostgreSQL when configured), and the API around it.

The rule tests write the conversation's record as the turn pipeline would (messages, handoffs,
tool calls, workflow state) and end it through the real ConversationService; the API tests
run real turns of the demo brands through the Flask app.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from appliance.billing.contracts import parse_contract, set_contract
from appliance.billing.evidence import transcript_sha256
from appliance.brands import Persona
from appliance.db.models import Brand, Conversation, Handoff, Message, Outcome, ToolCall, utcnow
from appliance.errors import Conflict
from appliance.outcomes import Attribution, confirms, outcome_json
from appliance.services import Services

DATA = Path(__file__).parent / "data" / "clinc150_thanks.csv"
PERSONA = Persona(agent_name="Juniper", tone="Warm.", greeting="Hi!")
CITATION = [{"article": "returns", "title": "Returns", "location": "", "source_ids": []}]


@pytest.fixture
def brand(services: Services) -> Brand:
    return services.brands.create("acme", "Acme", PERSONA, actor="test")


class Record:
    """A conversation's record written as the turn pipeline writes it."""

    def __init__(self, services: Services, brand: Brand) -> None:
        self.services = services
        self.conversation, _ = services.conversations.start(brand, {}, "web")
        self._at = utcnow()  # after the greeting

    def say(self, role: str, text: str, citations: list[dict[str, Any]] | None = None
            ) -> Message:
        self._at += dt.timedelta(seconds=10)
        return Message.create(public_id=f"msg_{self._at.timestamp()}_{role}",
                              conversation=self.conversation, role=role, text=text,
                              citations=citations, created_at=self._at)

    def state(self, state: dict[str, Any]) -> None:
        Conversation.update(state=state).where(
            Conversation.id == self.conversation.id).execute()

    def close(self) -> Outcome:
        self.services.conversations.close(self.conversation.brand, self.conversation.public_id)
        outcome = self.services.outcomes.of(self.conversation)
        assert outcome is not None
        return outcome


@pytest.fixture
def record(services: Services, brand: Brand) -> Callable[[], Record]:
    return lambda: Record(services, brand)


def test_a_greeting_only_conversation_is_abandoned(record: Callable[[], Record]) -> None:
    outcome = record().close()

    assert (outcome.type, outcome.how, outcome.state) == ("abandoned", None, "provisional")
    assert outcome.evidence == {"rule": "greeting_only", "ended": "closed"}


def test_an_answer_the_customer_left_is_assumed_and_settles_after_the_assume_window(
    record: Callable[[], Record], services: Services
) -> None:
    r = record()
    asked = r.say("customer", "how long do refunds take?")
    answered = r.say("agent", "Refunds take 5 to 7 business days.", CITATION)

    outcome = r.close()

    assert (outcome.type, outcome.how) == ("resolved", "assumed")
    assert outcome.evidence["rule"] == "answered_then_left"
    assert outcome.evidence["messages"] == [asked.public_id, answered.public_id]
    assert outcome.settles_at >= answered.created_at + dt.timedelta(hours=24)
    assert services.outcomes.settle(now=outcome.settles_at - dt.timedelta(seconds=1)) == 0
    assert services.outcomes.settle(now=outcome.settles_at) == 1
    assert services.outcomes.settle(now=outcome.settles_at) == 0  # idempotent
    assert Outcome.get_by_id(outcome.id).state == "settled"


def test_thanks_after_an_answer_is_a_confirmed_resolution(record: Callable[[], Record]) -> None:
    r = record()
    r.say("customer", "how long do refunds take?")
    answer = r.say("agent", "Refunds take 5 to 7 business days.", CITATION)
    thanks = r.say("customer", "great, thanks!")
    r.say("agent", "You're welcome!")

    outcome = r.close()

    assert (outcome.type, outcome.how, outcome.evidence["rule"]) == (
        "resolved", "confirmed", "confirmed_in_words")
    assert outcome.evidence["messages"] == [answer.public_id, thanks.public_id]


@pytest.mark.parametrize(("text", "expected"), [
    ("thanks, that helped", True), ("perfect, got it", True), ("cheers", True),
    ("thanks but it didn't work", False), ("thanks, and how do I return it?", False),
    ("no thanks", False), ("I still have a problem", False),
])
def test_what_counts_as_confirming_in_words(text: str, expected: bool) -> None:
    assert confirms(text) is expected


def test_an_unanswered_question_is_unresolved(record: Callable[[], Record]) -> None:
    r = record()
    asked = r.say("customer", "can I pay with crypto?")
    r.say("agent", "I don't know that one. Would you like a colleague to help?")

    outcome = r.close()

    assert (outcome.type, outcome.evidence["rule"]) == ("unresolved", "not_answered")
    assert outcome.evidence["messages"] == [asked.public_id]


def test_a_handed_off_conversation_is_escalated_even_if_the_customer_thanks_the_human(
    record: Callable[[], Record]
) -> None:
    r = record()
    r.say("customer", "I want a person")
    Handoff.create(public_id="hof_1", brand=r.conversation.brand_id,
                   conversation=r.conversation, reason="human_request", status="resolved",
                   packet={}, summary="")
    r.say("human", "Done, your refund is on its way.", CITATION)
    r.say("customer", "thanks!")

    outcome = r.close()

    assert (outcome.type, outcome.evidence) == (
        "escalated", {"rule": "handed_off", "ended": "closed", "handoffs": ["hof_1"]})


@pytest.mark.parametrize(("workflow_outcome", "expected"), [
    ("resolved", ("resolved", "workflow", "workflow_resolved")),
    ("saved", ("saved", None, "workflow_saved")),
    ("upsold", ("upsell", None, "workflow_upsold")),
])
def test_a_workflow_that_completed_its_write_bills_as_its_outcome(
    record: Callable[[], Record], services: Services, workflow_outcome: str,
    expected: tuple[str, str | None, str],
) -> None:
    services.outcomes._write_tools = lambda brand: {"cancel_order"}  # the write tool
    r = record()
    r.say("customer", "cancel order #1")
    r.say("agent", "Done: order #1 is cancelled.")
    write = ToolCall.create(brand=r.conversation.brand_id, conversation=r.conversation,
                            workflow="cancel_order", tool="cancel_order", method="POST",
                            path="/orders/1/cancel", arguments={}, status="ok", code="ok",
                            latency_ms=1.0, attempts=1)
    ToolCall.create(brand=r.conversation.brand_id, conversation=r.conversation,
                    workflow="cancel_order", tool="get_order", method="GET", path="/orders/1",
                    arguments={}, status="ok", code="ok", latency_ms=1.0, attempts=1)
    r.state({"history": [{"workflow": "cancel_order", "status": "done",
                          "outcome": workflow_outcome, "slots": {"order_id": "1"}}]})

    outcome = r.close()

    assert (outcome.type, outcome.how, outcome.evidence["rule"]) == expected
    assert outcome.evidence["tool_calls"] == [write.id]
    assert outcome.evidence["workflow"]["slots"] == {"order_id": "1"}


def test_a_workflow_without_a_successful_write_is_not_a_workflow_resolution(
    record: Callable[[], Record], services: Services
) -> None:
    services.outcomes._write_tools = lambda brand: {"cancel_order"}
    r = record()
    r.say("customer", "cancel order #1")
    r.say("agent", "Sorry, that order can no longer be cancelled.")
    r.state({"history": [{"workflow": "cancel_order", "status": "done",
                          "outcome": "resolved", "slots": {}}]})

    assert r.close().type == "unresolved"


def test_leaving_in_the_middle_of_a_workflow_is_abandoned(record: Callable[[], Record]) -> None:
    r = record()
    r.say("customer", "cancel my order")
    r.say("agent", "Which order?")
    r.state({"run": {"workflow": "cancel_order", "slots": {}}})

    outcome = r.close()

    assert (outcome.type, outcome.evidence["rule"]) == ("abandoned", "left_mid_workflow")


def test_feedback_decides_over_what_the_agent_said(
    record: Callable[[], Record], services: Services
) -> None:
    r = record()
    r.say("customer", "how long do refunds take?")
    r.say("agent", "Refunds take 5 to 7 business days.", CITATION)
    assert r.close().type == "resolved"

    services.outcomes.feedback(r.conversation, resolved=False, csat=2, comment="wrong answer")

    outcome = services.outcomes.of(r.conversation)
    assert outcome is not None
    assert (outcome.type, outcome.evidence["rule"]) == ("unresolved", "feedback_unresolved")
    assert outcome.evidence["feedback"]["csat"] == 2

    services.outcomes.feedback(r.conversation, resolved=True, csat=5, comment=None)

    outcome = services.outcomes.of(r.conversation)
    assert outcome is not None
    assert (outcome.type, outcome.how, outcome.evidence["rule"]) == (
        "resolved", "confirmed", "feedback_resolved")


def test_the_evidence_hash_is_of_the_transcript_when_attributed(
    record: Callable[[], Record]
) -> None:
    r = record()
    said = r.say("customer", "how long do refunds take?")
    r.say("agent", "Refunds take 5 to 7 business days.", CITATION)
    outcome = r.close()
    assert outcome.transcript_sha256 == transcript_sha256(r.conversation)

    Message.update(text="something else").where(Message.id == said.id).execute()

    assert outcome.transcript_sha256 != transcript_sha256(r.conversation)


def test_an_idle_closed_conversation_reopens_and_reverses_its_outcome(
    record: Callable[[], Record], services: Services
) -> None:
    r = record()
    r.say("customer", "how long do refunds take?")
    r.say("agent", "Refunds take 5 to 7 business days.", CITATION)
    Conversation.update(updated_at=utcnow() - dt.timedelta(days=2)).where(
        Conversation.id == r.conversation.id).execute()
    assert services.conversations.close_idle(60) == 1
    conversation = Conversation.get_by_id(r.conversation.id)
    assert services.outcomes.may_reopen(conversation)

    services.conversations._reopen(conversation)

    outcome = services.outcomes.of(conversation)
    assert outcome is not None
    assert (outcome.state, outcome.reversal_reason) == ("reversed", "the customer wrote again")
    assert Conversation.get_by_id(conversation.id).status == "active"


def test_a_conversation_its_channel_closed_does_not_reopen(
    record: Callable[[], Record], services: Services
) -> None:
    r = record()
    r.say("customer", "how long do refunds take?")
    r.say("agent", "Refunds take 5 to 7 business days.", CITATION)
    r.close()

    with pytest.raises(Conflict):
        services.conversations._reopen(Conversation.get_by_id(r.conversation.id))
    outcome = services.outcomes.of(r.conversation)
    assert outcome is not None and outcome.state == "provisional"


def test_a_settled_outcome_is_not_attributed_again(
    record: Callable[[], Record], services: Services
) -> None:
    r = record()
    r.say("customer", "how long do refunds take?")
    r.say("agent", "Refunds take 5 to 7 business days.", CITATION)
    outcome = r.close()
    services.outcomes.settle(now=outcome.settles_at)

    services.outcomes.feedback(r.conversation, resolved=False, csat=1, comment=None)

    kept = services.outcomes.of(r.conversation)
    assert kept is not None and (kept.type, kept.state) == ("resolved", "settled")


def test_attribution_is_a_frozen_value() -> None:
    found = Attribution("resolved", "assumed", "answered_then_left")
    with pytest.raises(AttributeError):
        found.type = "saved"  # type: ignore[misc]


# --- over the API, with real turns of the demo brands -------------------------------------


def test_a_handoff_over_the_api_is_escalated_at_once(
    client: FlaskClient, seeded: dict[str, Any], auth: Callable[[str], dict[str, str]]
) -> None:
    opened = client.post("/v1/conversations", json={}, headers=auth("rho-bank"))
    conversation_id = opened.get_json()["id"]

    reply = client.post(f"/v1/conversations/{conversation_id}/messages",
                        json={"text": "I want to talk to a human agent please"},
                        headers=auth("rho-bank"))
    assert reply.status_code == 200

    transcript = client.get(f"/v1/conversations/{conversation_id}",
                            headers=auth("rho-bank")).get_json()
    assert transcript["status"] == "pending_human"
    assert transcript["outcome"]["type"] == "escalated"
    assert transcript["outcome"]["billable"] is False
    assert transcript["outcome"]["evidence"]["ended"] == "handed_off"


def test_feedback_and_outcomes_over_the_api(
    client: FlaskClient, seeded: dict[str, Any], auth: Callable[[str], dict[str, str]]
) -> None:
    opened = client.post("/v1/conversations", json={}, headers=auth("lumen-goods"))
    conversation_id = opened.get_json()["id"]
    client.post(f"/v1/conversations/{conversation_id}/close", headers=auth("lumen-goods"))

    given = client.post(f"/v1/conversations/{conversation_id}/feedback",
                        json={"resolved": True, "csat": 4}, headers=auth("lumen-goods"))
    listed = client.get("/v1/outcomes", headers=auth("lumen-goods")).get_json()
    elsewhere = client.get("/v1/outcomes", headers=auth("rho-bank")).get_json()

    assert given.status_code == 200
    assert given.get_json()["csat"] == 4
    # Feedback alone on a greeting-only conversation resolves nothing.
    [outcome] = [o for o in listed["outcomes"] if o["conversation"] == conversation_id]
    assert (outcome["type"], outcome["evidence"]["rule"]) == ("abandoned", "greeting_only")
    assert all(o["conversation"] != conversation_id for o in elsewhere["outcomes"])


@pytest.mark.parametrize(("body", "param"), [
    ({"csat": 6}, "csat"), ({"csat": 0}, "csat"), ({"resolved": "yes"}, "resolved"),
    ({"mood": "ok"}, "mood"),
])
def test_bad_feedback_is_a_400_naming_the_field(
    client: FlaskClient, seeded: dict[str, Any], auth: Callable[[str], dict[str, str]],
    body: dict[str, Any], param: str,
) -> None:
    opened = client.post("/v1/conversations", json={}, headers=auth("lumen-goods"))
    conversation_id = opened.get_json()["id"]

    response = client.post(f"/v1/conversations/{conversation_id}/feedback", json=body,
                           headers=auth("lumen-goods"))

    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == param


def test_feedback_on_another_brands_conversation_is_a_404(
    client: FlaskClient, seeded: dict[str, Any], auth: Callable[[str], dict[str, str]]
) -> None:
    opened = client.post("/v1/conversations", json={}, headers=auth("lumen-goods"))
    conversation_id = opened.get_json()["id"]

    response = client.post(f"/v1/conversations/{conversation_id}/feedback",
                           json={"resolved": True}, headers=auth("rho-bank"))

    assert response.status_code == 404


def test_the_cli_lists_and_settles_outcomes(
    services: Services, record: Callable[[], Record], monkeypatch: pytest.MonkeyPatch
) -> None:
    from appliance.cli import cli
    from appliance.cli.context import CliContext

    r = record()
    r.say("customer", "how long do refunds take?")
    r.say("agent", "Refunds take 5 to 7 business days.", CITATION)
    outcome = r.close()
    monkeypatch.setattr(CliContext, "services", property(lambda self: services))
    runner = CliRunner()

    listed = runner.invoke(cli, ["outcomes", "list", "--brand", "acme", "--json"])
    early = runner.invoke(cli, ["outcomes", "settle", "--now", "2000-01-01T00:00:00"])
    late = runner.invoke(cli, ["outcomes", "settle", "--now",
                               (outcome.settles_at + dt.timedelta(minutes=1))
                               .strftime("%Y-%m-%dT%H:%M:%S")])

    assert listed.exit_code == 0, listed.output
    [shown] = json.loads(listed.output)["outcomes"]
    assert (shown["evidence"]["rule"], shown["amount"]) == ("answered_then_left", None)
    assert early.output.strip() == "settled 0 outcomes"
    assert late.output.strip() == "settled 1 outcome"


def test_the_windows_come_from_the_brands_contract(
    record: Callable[[], Record], services: Services, brand: Brand
) -> None:
    terms = parse_contract('currency = "EUR"\nprice_per_resolution = 1\n'
                           "reopen_window_hours = 2\nassume_resolved_after_hours = 1\n"
                           f"effective_from = {utcnow().date() - dt.timedelta(days=1)}\n")
    set_contract(services.db, brand, terms, actor="test")
    r = record()
    r.say("customer", "can I pay with crypto?")
    r.say("agent", "I don't know that one.")

    outcome = r.close()

    assert outcome.settles_at == outcome.attributed_at + dt.timedelta(hours=2)


# --- what outcomes bill, in the brand's ledger ------------------------------------------------

CONTRACT = ('currency = "EUR"\nprice_per_resolution = 0.99\nprice_per_save = 12.50\n'
            "upsell_share = 0.1\nreopen_window_hours = 72\nassume_resolved_after_hours = 24\n")


@pytest.fixture
def contract(services: Services, brand: Brand) -> None:
    since = utcnow().date() - dt.timedelta(days=30)
    set_contract(services.db, brand, parse_contract(CONTRACT + f"effective_from = {since}\n"),
                 actor="test")


def _ledger(services: Services, brand: Brand) -> list[tuple[str, str, str | None]]:
    from appliance.billing.ledger import Ledger

    return [(e.type, e.amount, e.conversation) for e in Ledger(services.db).entries(brand)]


def _answered(record: Callable[[], Record]) -> Record:
    r = record()
    r.say("customer", "how long do refunds take?")
    r.say("agent", "Refunds take 5 to 7 business days.", CITATION)
    return r


@pytest.mark.usefixtures("contract")
def test_a_resolution_is_provisional_then_settled_in_the_ledger_once(
    record: Callable[[], Record], services: Services, brand: Brand
) -> None:
    from appliance.billing.ledger import Ledger

    r = _answered(record)
    outcome = r.close()
    conversation = r.conversation.public_id

    assert _ledger(services, brand) == [("provisional", "0.99", conversation)]
    shown = outcome_json(outcome, conversation, brand)
    assert (shown["amount"], shown["currency"], shown["billable"]) == ("0.99", "EUR", True)
    services.outcomes.settle(now=outcome.settles_at)
    services.outcomes.settle(now=outcome.settles_at + dt.timedelta(days=1))

    assert _ledger(services, brand) == [("provisional", "0.99", conversation),
                                        ("settled", "0.99", conversation)]
    check = Ledger(services.db).verify(brand)
    assert check.count == 2 and check.problem is None


@pytest.mark.usefixtures("contract")
def test_a_customer_who_returns_reverses_the_billed_resolution(
    record: Callable[[], Record], services: Services, brand: Brand
) -> None:
    r = _answered(record)
    Conversation.update(updated_at=utcnow() - dt.timedelta(days=2)).where(
        Conversation.id == r.conversation.id).execute()
    services.conversations.close_idle(60)

    services.conversations._reopen(Conversation.get_by_id(r.conversation.id))
    services.outcomes.settle(now=utcnow() + dt.timedelta(days=30))

    conversation = r.conversation.public_id
    assert _ledger(services, brand) == [("provisional", "0.99", conversation),
                                        ("reversal", "-0.99", conversation)]


@pytest.mark.usefixtures("contract")
def test_feedback_that_changes_the_outcome_is_a_reversal_and_a_new_line(
    record: Callable[[], Record], services: Services, brand: Brand
) -> None:
    r = _answered(record)
    r.close()

    services.outcomes.feedback(r.conversation, resolved=False, csat=1, comment=None)
    services.outcomes.feedback(r.conversation, resolved=False, csat=2, comment=None)

    conversation = r.conversation.public_id
    # Unresolved bills nothing; the second feedback changes nothing more.
    assert _ledger(services, brand) == [("provisional", "0.99", conversation),
                                        ("reversal", "-0.99", conversation)]


@pytest.mark.usefixtures("contract")
def test_nothing_unbillable_reaches_the_ledger(
    record: Callable[[], Record], services: Services, brand: Brand
) -> None:
    record().close()  # greeting only: abandoned
    r = record()
    r.say("customer", "can I pay with crypto?")
    r.say("agent", "I don't know that one.")
    r.close()

    assert _ledger(services, brand) == []


def test_a_brand_without_a_contract_is_billed_nothing(
    record: Callable[[], Record], services: Services, brand: Brand
) -> None:
    outcome = _answered(record).close()
    services.outcomes.settle(now=outcome.settles_at)

    assert outcome.type == "resolved"
    assert _ledger(services, brand) == []


@pytest.mark.usefixtures("contract")
def test_an_upsell_bills_the_contracts_share_of_its_value(
    record: Callable[[], Record], services: Services, brand: Brand
) -> None:
    services.outcomes._write_tools = lambda brand: {"apply_for_credit_card"}
    r = record()
    r.say("customer", "I'd like the Gold card")
    r.say("agent", "Done: your application is in.")
    ToolCall.create(brand=brand.id, conversation=r.conversation, workflow="apply_card",
                    tool="apply_for_credit_card", method="POST", path="/applications",
                    arguments={}, status="ok", code="ok", latency_ms=1.0, attempts=1)
    r.state({"history": [{"workflow": "apply_card", "status": "done", "outcome": "upsold",
                          "slots": {"upsell_value": 250}}]})

    r.close()

    assert _ledger(services, brand) == [("provisional", "25", r.conversation.public_id)]


def test_public_thanks_read_as_confirming_and_other_requests_do_not() -> None:
    """CLINC150's utterances, written by others (data/README.md): its `thank_you` phrasings
    confirm; a sample of its other intents' requests and questions almost never does."""
    with DATA.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    thanks = [row["text"] for row in rows if row["thanks"] == "1"]
    others = [row["text"] for row in rows if row["thanks"] == "0"]

    assert (len(thanks), len(others)) == (120, 3000)
    assert sum(map(confirms, thanks)) / len(thanks) >= 0.8  # 0.833 on 2026-12-07
    assert sum(map(confirms, others)) / len(others) <= 0.005  # 6 of 3,000
