"""A scripted day of the demo brands for the reporting tests, and what its records say.

Real turns of the demo brands go through the Flask app (the tiny model answers; a request for
a person hands off), and are closed and rated over the API. Workflow runs that write to a
brand's system (a save, an upsell) and one left waiting for the customer are recorded as the
turn pipeline records them (tool calls and workflow state; see
tests/billing/test_billing_scenario.py), since the demo's systems are not running. Lumen Goods
has a contract, so its billable outcomes reach its ledger; a resolution the customer then
says did not help is reversed there.

The expected figures are read back from the records themselves (outcomes, handoffs, feedback,
ledger entries), never from the reporting service.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask.testing import FlaskClient

from appliance.billing.contracts import parse_contract, set_contract
from appliance.billing.ledger import EntryType, month_bounds
from appliance.db.models import Brand, Conversation, Handoff, Message, Outcome, ToolCall, utcnow
from appliance.outcomes import REVERSED
from appliance.reporting import DateRange
from appliance.services import Services

BRAND = "lumen-goods"
OTHER = "rho-bank"
CONTRACT = ('currency = "EUR"\nprice_per_resolution = 0.99\nprice_per_save = 12.50\n'
            "upsell_share = 0.1\nhuman_cost_per_contact = 4.20\n")
CITED = [{"article": "refunds", "title": "Refunds", "location": "", "source_ids": []}]
#: The demo brand's tools that write, as its tools.yaml would say for these runs.
WRITE_TOOLS = {"cancel_subscription", "apply_card"}


@dataclass
class Day:
    """The scripted conversations and the range that covers them."""

    services: Services
    brand: Brand
    period: DateRange
    #: The CSAT each conversation was last given, by public id.
    ratings: dict[str, int]


def _api(client: FlaskClient, key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _turns(client: FlaskClient, key: str, *texts: str, close: bool = True,
           feedback: dict[str, Any] | None = None) -> str:
    """A conversation of `texts` over the API; closed, then rated, when asked."""
    opened = client.post("/v1/conversations", json={}, headers=_api(client, key))
    assert opened.status_code == 201, opened.get_data(as_text=True)
    conversation: str = opened.get_json()["id"]
    for text in texts:
        reply = client.post(f"/v1/conversations/{conversation}/messages", json={"text": text},
                            headers=_api(client, key))
        assert reply.status_code == 200, reply.get_data(as_text=True)
    if close:
        client.post(f"/v1/conversations/{conversation}/close", headers=_api(client, key))
    if feedback is not None:
        given = client.post(f"/v1/conversations/{conversation}/feedback", json=feedback,
                            headers=_api(client, key))
        assert given.status_code == 200, given.get_data(as_text=True)
    return conversation


def _recorded(services: Services, brand: Brand, *texts: str,
              state: dict[str, Any] | None = None, writes: tuple[str, str] | None = None,
              cited: bool = False) -> Conversation:
    """A conversation recorded as the turn pipeline records it, then closed by its channel.
    `writes`: (workflow, tool) of a successful write."""
    conversation, _ = services.conversations.start(brand, {}, "web")
    at = utcnow()
    for n, text in enumerate(texts):
        at += dt.timedelta(seconds=5)
        role = "customer" if n % 2 == 0 else "agent"
        Message.create(public_id=f"{conversation.public_id}_{n}", conversation=conversation,
                       role=role, text=text, created_at=at,
                       citations=CITED if cited and role == "agent" else None)
    if writes is not None:
        ToolCall.create(brand=brand.id, conversation=conversation, workflow=writes[0],
                        tool=writes[1], method="POST", path=f"/{writes[1]}", arguments={},
                        status="ok", code="ok", latency_ms=1.0, attempts=1)
    if state is not None:
        Conversation.update(state=state).where(Conversation.id == conversation.id).execute()
    services.conversations.close(brand, conversation.public_id)
    return conversation


def _done(workflow: str, outcome: str, slots: dict[str, Any]) -> dict[str, Any]:
    return {"history": [{"workflow": workflow, "status": "done", "outcome": outcome,
                         "slots": slots}], "customer_id": "olivia", "assurance": "contact"}


def script_day(services: Services, client: FlaskClient, seeded: dict[str, Any]) -> Day:
    """Run the scripted conversations; the range covers them and their settling."""
    started = utcnow() - dt.timedelta(seconds=1)
    brand = services.brands.get(BRAND)
    set_contract(services.db, brand, parse_contract(
        CONTRACT + f"effective_from = {started.date() - dt.timedelta(days=31)}\n"),
        actor="test")
    services.outcomes._write_tools = lambda _brand: WRITE_TOOLS
    key, other = seeded["keys"][BRAND], seeded["keys"][OTHER]

    _turns(client, other, "I want to talk to a human agent please", close=False)
    _turns(client, key, "I want to talk to a human agent please", close=False)
    _turns(client, key)  # greeting only
    rated = {
        _turns(client, key, "can I pay with crypto?", feedback={"csat": 2}): 2,
        _turns(client, key, "what are your opening hours?",
               feedback={"resolved": True, "csat": 5}): 5,
    }
    _turns(client, key, "hello?", close=False)  # still open
    _recorded(services, brand, "cancel my subscription", "Would a free month keep you?",
              "ok, keep it", "Done: your next month is free.",
              state=_done("cancel_subscription", "saved", {}),
              writes=("cancel_subscription", "cancel_subscription"))
    _recorded(services, brand, "I want the Gold card", "Done: your application is in.",
              state=_done("apply_card", "upsold", {"upsell_value": 300}),
              writes=("apply_card", "apply_card"))
    _recorded(services, brand, "cancel my order", "Which order is it?",
              state={"run": {"workflow": "cancel_order"}, "customer_id": "olivia"})
    answered = _recorded(services, brand, "how long do refunds take?",
                         "5 to 7 business days.", cited=True)
    services.outcomes.feedback(answered, resolved=False, csat=1, comment=None)
    rated[answered.public_id] = 1
    # The customer takes the agent's word for it: settles, and is invoiced this month.
    settled = _recorded(services, brand, "do you ship to Norway?", "Yes, in 3 to 5 days.",
                        cited=True)
    outcome = services.outcomes.of(settled)
    assert outcome is not None
    services.outcomes.settle(now=outcome.settles_at)
    until = max(outcome.settles_at, utcnow()) + dt.timedelta(seconds=1)
    return Day(services, brand, DateRange(started, until), rated)


@dataclass(frozen=True)
class Recorded:
    """What the records say about the brand's conversations in the range."""

    conversations: int
    outcomes: Counter[str]
    resolutions: Counter[str]
    involved: int
    handoff_reasons: Counter[str]
    escalated_conversations: int
    billed: Decimal
    settled_this_month: Decimal
    upsell_value: Decimal


def records_of(day: Day) -> Recorded:
    """Read the brand's records with plain queries and the ledger's own entries."""
    brand, period = day.brand, day.period
    conversations = [c for c in Conversation.select().where(Conversation.brand == brand.id)
                     if period.since <= c.created_at < period.until]
    ids = {c.id for c in conversations}
    outcomes = [o for o in Outcome.select().where(Outcome.brand == brand.id)
                if o.conversation_id in ids and o.state != REVERSED]
    handoffs = [h for h in Handoff.select().where(Handoff.brand == brand.id)
                if h.conversation_id in ids]
    entries = list(day.services.ledger.entries(brand))
    start, end = month_bounds(period.period)
    return Recorded(
        conversations=len(conversations),
        outcomes=Counter(o.type for o in outcomes),
        resolutions=Counter(o.how for o in outcomes if o.type == "resolved"),
        involved=sum(1 for o in outcomes if o.evidence["rule"] != "greeting_only"),
        handoff_reasons=Counter(h.reason for h in handoffs),
        escalated_conversations=len({h.conversation_id for h in handoffs}),
        billed=sum((Decimal(e.amount) for e in entries
                    if e.type in (EntryType.PROVISIONAL, EntryType.REVERSAL)
                    and period.since <= e.created_at < period.until), Decimal(0)),
        settled_this_month=sum((Decimal(e.amount) for e in entries
                                if e.type == EntryType.SETTLED and start <= e.created_at < end),
                               Decimal(0)),
        upsell_value=sum((Decimal(str(o.evidence["workflow"]["slots"]["upsell_value"]))
                          for o in outcomes if o.type == "upsell"), Decimal(0)),
    )
