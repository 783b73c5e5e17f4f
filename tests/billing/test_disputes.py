"""Disputes (appliance/billing/disputes.py): a brand user contests a billed line, an it_admin
accepts it (a credit the next invoice subtracts) or rejects it; everything in the ledger and
the audit log."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

import pytest
from click.testing import Result

from appliance.billing.contracts import parse_contract, set_contract
from appliance.billing.ledger import EntryType, Ledger
from appliance.brands import Persona
from appliance.db.models import AdminUser, AuditLog, Brand, Conversation
from appliance.errors import Conflict, InvalidRequest, PermissionDenied
from appliance.services import Services

Talk = Callable[..., Conversation]
Invoke = Callable[..., Result]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def users(services: Services, brand: Brand) -> dict[str, AdminUser]:
    other = services.brands.create(
        "other", "Other", Persona(agent_name="Ola", tone="Calm.", greeting="Hello!"),
        actor="test")
    made = {
        "editor": services.users.create("edi", PASSWORD, "cx_editor", brand, actor="test"),
        "admin": services.users.create("ada", PASSWORD, "it_admin", None, actor="test"),
        "viewer": services.users.create("vic", PASSWORD, "viewer", brand, actor="test"),
        "outsider": services.users.create("oto", PASSWORD, "cx_editor", other, actor="test"),
    }
    return made


@pytest.fixture
def billed(services: Services, brand: Brand, ledger: Ledger, talk: Talk) -> int:
    """A settled line of 0.99 EUR; its seq."""
    set_contract(services.db, brand, parse_contract(
        'currency = "EUR"\nprice_per_resolution = 0.99\neffective_from = 2026-01-01\n'),
        actor="test")
    conversation = talk("customer: how long do refunds take?", "agent: 5 to 7 days.")
    ledger.append(brand, EntryType.PROVISIONAL, amount=Decimal("0.99"), currency="EUR",
                  body={"outcome": "resolved", "unit_price": "0.99"}, conversation=conversation)
    line = ledger.append(brand, EntryType.SETTLED, amount=Decimal("0.99"), currency="EUR",
                         body={"outcome": "resolved", "unit_price": "0.99"},
                         conversation=conversation)
    seq: int = line.seq
    return seq


def test_an_accepted_dispute_is_a_credit_of_the_line(
    services: Services, brand: Brand, ledger: Ledger, users: dict[str, AdminUser], billed: int
) -> None:
    opened = services.disputes.open(brand, billed, "the customer called us the next day",
                                    users["editor"])
    decided = services.disputes.decide(brand, opened.seq, accept=True, reason="agreed",
                                       user=users["admin"])

    assert (opened.state, decided.state) == ("open", "accepted")
    entries = list(ledger.entries(brand))
    assert [(e.type, e.amount) for e in entries[-2:]] == [("dispute", "0"), ("credit", "-0.99")]
    assert json.loads(entries[-1].body)["line_seq"] == billed
    assert ledger.verify(brand).ok
    actions = {row.action for row in AuditLog.select()}
    assert {"ledger.dispute", "ledger.dispute.accept"} <= actions


def test_a_rejected_dispute_credits_nothing(
    services: Services, brand: Brand, ledger: Ledger, users: dict[str, AdminUser], billed: int
) -> None:
    opened = services.disputes.open(brand, billed, "not resolved", users["editor"])

    decided = services.disputes.decide(brand, opened.seq, accept=False,
                                       reason="the customer confirmed it", user=users["admin"])

    assert decided.state == "rejected"
    assert decided.decision is not None
    assert decided.decision["reason"] == "the customer confirmed it"
    assert EntryType.CREDIT.value not in {e.type for e in ledger.entries(brand)}


@pytest.mark.parametrize("who", ["viewer", "outsider"])
def test_only_the_brands_editors_and_admins_may_dispute(
    services: Services, brand: Brand, users: dict[str, AdminUser], billed: int, who: str
) -> None:
    with pytest.raises(PermissionDenied):
        services.disputes.open(brand, billed, "no", users[who])


def test_only_an_it_admin_decides(
    services: Services, brand: Brand, users: dict[str, AdminUser], billed: int
) -> None:
    opened = services.disputes.open(brand, billed, "not resolved", users["editor"])

    with pytest.raises(PermissionDenied):
        services.disputes.decide(brand, opened.seq, accept=True, reason="self-served",
                                 user=users["editor"])


def test_a_line_is_disputed_and_decided_once(
    services: Services, brand: Brand, users: dict[str, AdminUser], billed: int
) -> None:
    opened = services.disputes.open(brand, billed, "not resolved", users["editor"])
    with pytest.raises(Conflict):
        services.disputes.open(brand, billed, "again", users["admin"])
    services.disputes.decide(brand, opened.seq, accept=True, reason="ok", user=users["admin"])
    with pytest.raises(Conflict):
        services.disputes.decide(brand, opened.seq, accept=False, reason="no",
                                 user=users["admin"])


def test_only_a_settled_line_can_be_disputed(
    services: Services, brand: Brand, users: dict[str, AdminUser], billed: int
) -> None:
    with pytest.raises(InvalidRequest, match="only settled lines"):
        services.disputes.open(brand, billed - 1, "provisional", users["editor"])
    with pytest.raises(InvalidRequest, match="reason"):
        services.disputes.open(brand, billed, "   ", users["editor"])


def test_the_cli_disputes_decides_and_lists(
    brand: Brand, users: dict[str, AdminUser], billed: int, invoke: Invoke
) -> None:
    opened = invoke("ledger", "dispute", "--brand", "acme", "--line", str(billed),
                    "--reason", "the customer called back", "--as", "edi")
    decided = invoke("ledger", "decide", "--brand", "acme", "--dispute", str(billed + 1),
                     "--accept", "--reason", "agreed", "--as", "ada")
    listed = invoke("ledger", "disputes", "--brand", "acme", "--json")

    assert opened.output.strip() == f"acme: line {billed} disputed (dispute {billed + 1})"
    assert decided.output.strip() == f"acme: dispute {billed + 1} accepted"
    [row] = json.loads(listed.output)
    assert (row["line_seq"], row["state"], row["by"]) == (billed, "accepted", "edi")
