"""The admin billing pages: a brand's contract, its invoices with their lines and the
conversations behind them, CSV and PDF downloads, and disputes, over the real Flask app."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient

from appliance.billing.contracts import parse_contract, set_contract
from appliance.billing.ledger import EntryType
from appliance.db.models import utcnow
from appliance.services import Services

BRAND = "rho-bank"
PERIOD = (utcnow().replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
Submit = Callable[[FlaskClient, str, str, dict[str, str]], Any]


@pytest.fixture
def billed(services: Services, seeded: dict[str, Any]) -> int:
    """Last month: one settled resolution of a real conversation; its line's seq."""
    brand = services.brands.get(BRAND)
    set_contract(services.db, brand, parse_contract(
        'currency = "EUR"\nprice_per_resolution = 0.99\neffective_from = 2026-01-01\n'),
        actor="test")
    conversation, _ = services.conversations.start(brand, {}, "web")
    at = dt.datetime.strptime(PERIOD, "%Y-%m") + dt.timedelta(days=3)
    body = {"outcome": "resolved", "how": "assumed", "rule": "answered_then_left",
            "unit_price": "0.99"}
    services.ledger.append(brand, EntryType.PROVISIONAL, amount=Decimal("0.99"),
                           currency="EUR", body=body, conversation=conversation, at=at)
    line = services.ledger.append(brand, EntryType.SETTLED, amount=Decimal("0.99"),
                                  currency="EUR", body=body, conversation=conversation,
                                  at=at + dt.timedelta(days=3))
    seq: int = line.seq
    return seq


def test_the_billing_page_shows_the_contract_and_last_months_invoice(
    admin_client: FlaskClient, billed: int
) -> None:
    page = admin_client.get(f"/admin/brands/{BRAND}/billing").get_data(as_text=True)

    assert "Contract in force" in page and "0.99 EUR" in page
    assert f'id="invoice-{PERIOD}"' in page
    assert "1 resolved" in page


def test_the_invoice_page_drills_down_to_each_billed_conversation(
    admin_client: FlaskClient, billed: int, services: Services
) -> None:
    page = admin_client.get(f"/admin/brands/{BRAND}/billing/{PERIOD}").get_data(as_text=True)

    assert f'id="line-{billed}"' in page
    assert "answered_then_left" in page
    assert "/admin/conversations/conv_" in page
    assert "0.99 EUR" in page


def test_downloads_are_the_ledger_csv_and_a_pdf(admin_client: FlaskClient, billed: int) -> None:
    csv = admin_client.get(f"/admin/brands/{BRAND}/billing/{PERIOD}.csv")
    pdf = admin_client.get(f"/admin/brands/{BRAND}/billing/{PERIOD}.pdf")

    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert csv.get_data(as_text=True).splitlines()[0].startswith("brand,seq,type")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF-")


def test_an_editor_disputes_a_line_and_an_it_admin_accepts_it(
    client: FlaskClient, billed: int, services: Services,
    sign_in_as: Callable[..., FlaskClient], submit: Submit,
) -> None:
    editor = sign_in_as("cx_editor", BRAND)
    page = f"/admin/brands/{BRAND}/billing/{PERIOD}"
    disputed = submit(editor, page, f"/admin/brands/{BRAND}/billing/disputes",
                      {"line": str(billed), "reason": "a human solved it",
                       "period": PERIOD})
    assert disputed.status_code == 302
    [dispute] = services.disputes.list(services.brands.get(BRAND))

    submit(editor, page, "/admin/logout", {})
    admin = sign_in_as("it_admin")
    decided = submit(admin, f"/admin/brands/{BRAND}/billing",
                     f"/admin/brands/{BRAND}/billing/disputes/{dispute.seq}",
                     {"decision": "accept", "reason": "agreed"})

    assert decided.status_code == 302
    [after] = services.disputes.list(services.brands.get(BRAND))
    assert after.state == "accepted"


def test_a_viewer_cannot_dispute_and_another_brands_user_sees_nothing(
    billed: int, sign_in_as: Callable[..., FlaskClient], submit: Submit
) -> None:
    viewer = sign_in_as("viewer", BRAND)
    page = viewer.get(f"/admin/brands/{BRAND}/billing/{PERIOD}").get_data(as_text=True)
    assert "Dispute</button>" not in page
    refused = submit(viewer, f"/admin/brands/{BRAND}/billing",
                     f"/admin/brands/{BRAND}/billing/disputes",
                     {"line": str(billed), "reason": "no"})
    assert refused.status_code == 403

    submit(viewer, f"/admin/brands/{BRAND}/billing", "/admin/logout", {})
    outsider = sign_in_as("viewer", "lumen-goods")
    assert outsider.get(f"/admin/brands/{BRAND}/billing").status_code == 404
