"""A month of one brand's billing, end to end: conversations of every outcome end, settle, one
comes back, one line is disputed and credited, and the month's invoice and ledger are exactly
what the contract says; then a billed transcript is edited and the ledger no longer verifies.

Real services over SQLite (and PostgreSQL when configured): the conversation service ends
the conversations, the outcome service attributes and settles them, the dispute and invoice
services do the rest. The conversations' records are written as the turn pipeline writes them.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from appliance.billing.contracts import parse_contract, set_contract
from appliance.billing.ledger import EntryType, Ledger
from appliance.brands import Persona
from appliance.db.models import (
    AdminUser,
    Brand,
    Conversation,
    Handoff,
    Message,
    ToolCall,
    utcnow,
)
from appliance.services import Services

CITED = [{"article": "refunds", "title": "Refunds", "location": "", "source_ids": []}]
CONTRACT = ('currency = "EUR"\nprice_per_resolution = 0.99\nprice_per_save = 12.50\n'
            "upsell_share = 0.1\nmonthly_minimum = 0\neffective_from = 2026-01-01\n")


class Month:
    """Writes one brand's conversations as the turn pipeline records them."""

    def __init__(self, services: Services, brand: Brand) -> None:
        self.services, self.brand = services, brand
        self.clock = utcnow() - dt.timedelta(hours=1)  # the conversations happened earlier

    def conversation(self, *turns: str, cited: bool = False) -> Conversation:
        """`turns` alternate customer, agent; the agent's replies cite the knowledge when
        `cited`."""
        conversation, greeting = self.services.conversations.start(self.brand, {}, "web")
        Message.update(created_at=self.clock).where(Message.id == greeting.id).execute()
        for n, text in enumerate(turns):
            self.clock += dt.timedelta(seconds=5)
            role = "customer" if n % 2 == 0 else "agent"
            Message.create(public_id=f"{conversation.public_id}_{n}", conversation=conversation,
                           role=role, text=text, created_at=self.clock,
                           citations=CITED if cited and role == "agent" else None)
        return conversation

    def workflow(self, conversation: Conversation, name: str, outcome: str, tool: str,
                 slots: dict[str, Any]) -> None:
        ToolCall.create(brand=self.brand.id, conversation=conversation, workflow=name,
                        tool=tool, method="POST", path=f"/{tool}", arguments={}, status="ok",
                        code="ok", latency_ms=1.0, attempts=1)
        Conversation.update(state={"history": [
            {"workflow": name, "status": "done", "outcome": outcome, "slots": slots}]}).where(
            Conversation.id == conversation.id).execute()

    def close(self, conversation: Conversation) -> None:
        self.services.conversations.close(self.brand, conversation.public_id)


@pytest.fixture
def month(services: Services) -> Month:
    brand = services.brands.create("acme", "Acme", Persona(
        agent_name="Juniper", tone="Warm.", greeting="Hi!"), actor="test")
    set_contract(services.db, brand, parse_contract(CONTRACT), actor="test")
    services.users.create("edi", "correct horse battery staple", "cx_editor", brand,
                          actor="test")
    services.users.create("ada", "correct horse battery staple", "it_admin", None,
                          actor="test")
    # The brand's systems: these tools write (as its tools.yaml would say).
    services.outcomes._write_tools = lambda brand: {"close_card", "apply_card"}
    return Month(services, brand)


def test_a_month_of_outcomes_ends_in_the_exact_ledger_and_invoice(
    month: Month, services: Services
) -> None:
    m, brand = month, month.brand
    assumed = m.conversation("how long do refunds take?", "5 to 7 business days.", cited=True)
    confirmed = m.conversation("how long do refunds take?", "5 to 7 business days.",
                               "great, thanks!", "You're welcome!", cited=True)
    escalated = m.conversation("I want a person", "Connecting you.")
    Handoff.create(public_id="hof_scenario", brand=brand.id, conversation=escalated,
                   reason="human_request", status="resolved", packet={}, summary="")
    abandoned = m.conversation()
    unresolved = m.conversation("can I pay in crypto?", "I don't know that one.")
    saved = m.conversation("close my card", "Would a fee waiver keep you?", "ok, keep it",
                           "Done: the fee is waived.")
    m.workflow(saved, "close_card", "saved", "close_card", {})
    upsold = m.conversation("I want the Gold card", "Done: your application is in.")
    m.workflow(upsold, "apply_card", "upsold", "apply_card", {"upsell_value": 300})
    returned = m.conversation("how long do refunds take?", "5 to 7 business days.", cited=True)

    for conversation in (assumed, confirmed, escalated, abandoned, unresolved, saved, upsold):
        m.close(conversation)
    Conversation.update(updated_at=utcnow() - dt.timedelta(days=2)).where(
        Conversation.id == returned.id).execute()
    assert services.conversations.close_idle(60) == 1
    services.conversations._reopen(Conversation.get_by_id(returned.id))  # the customer is back

    types = {c.public_id: services.outcomes.of(c) for c in (
        assumed, confirmed, escalated, abandoned, unresolved, saved, upsold, returned)}
    assert {cid: (o.type, o.how, o.state) for cid, o in types.items() if o} == {
        assumed.public_id: ("resolved", "assumed", "provisional"),
        confirmed.public_id: ("resolved", "confirmed", "provisional"),
        escalated.public_id: ("escalated", None, "provisional"),
        abandoned.public_id: ("abandoned", None, "provisional"),
        unresolved.public_id: ("unresolved", None, "provisional"),
        saved.public_id: ("saved", None, "provisional"),
        upsold.public_id: ("upsell", None, "provisional"),
        returned.public_id: ("resolved", "assumed", "reversed"),
    }

    # Every window has passed: settle (twice: the second bills nothing).
    settle_at = utcnow() + dt.timedelta(days=5)
    assert services.outcomes.settle(now=settle_at) == 7
    assert services.outcomes.settle(now=settle_at) == 0

    ledger = Ledger(services.db)
    lines = [(e.type, e.conversation, e.amount) for e in ledger.entries(brand)]
    billed = {assumed.public_id: "0.99", confirmed.public_id: "0.99",
              saved.public_id: "12.5", upsold.public_id: "30"}
    provisional = [(t, c, a) for t, c, a in lines if t == "provisional"]
    assert sorted(provisional) == sorted(
        [("provisional", cid, amount) for cid, amount in billed.items()]
        + [("provisional", returned.public_id, "0.99")])
    assert [(t, c, a) for t, c, a in lines if t == "reversal"] == [
        ("reversal", returned.public_id, "-0.99")]
    assert sorted((c, a) for t, c, a in lines if t == "settled") == sorted(billed.items())

    # The brand disputes the confirmed resolution; the administrator accepts it.
    [line] = [e for e in ledger.entries(brand)
              if e.type == "settled" and e.conversation == confirmed.public_id]
    dispute = services.disputes.open(brand, line.seq, "a person solved it on the phone",
                                     AdminUser.get(AdminUser.username == "edi"))
    services.disputes.decide(brand, dispute.seq, accept=True, reason="agreed",
                             user=AdminUser.get(AdminUser.username == "ada"))

    period = settle_at.strftime("%Y-%m")
    month_end = (settle_at.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    # The dispute and credit were written now; the settled lines in the settle month. Both
    # land in the invoice of their own month: close the settle month's.
    invoice = services.invoices.close(brand, period, actor="test", now=month_end)
    same_month = period == utcnow().strftime("%Y-%m")
    assert invoice["lines"] == [
        {"type": "resolved", "count": 2, "unit_price": "0.99", "amount": "1.98"},
        {"type": "saved", "count": 1, "unit_price": "12.5", "amount": "12.5"},
        {"type": "upsell", "count": 1, "unit_price": "30", "amount": "30"},
    ]
    credit = Decimal("-0.99") if same_month else Decimal(0)
    assert Decimal(invoice["credits"]["amount"]) == credit
    assert Decimal(invoice["total"]) == Decimal("44.48") + credit
    assert ledger.verify(brand).ok
    assert [e.type for e in ledger.entries(brand)][-1] == EntryType.INVOICE_CLOSE.value

    # Someone edits a billed transcript afterwards: the ledger says which line no longer holds.
    Message.update(text="how long do refunds take? (edited)").where(
        Message.public_id == f"{assumed.public_id}_0").execute()
    check = ledger.verify(brand)
    assert not check.ok
    first = next(e for e in ledger.entries(brand) if e.conversation == assumed.public_id)
    assert check.failed_seq == first.seq
