"""The admin billing pages: a brand's contract, its invoices with their lines and the
conversations behind them, CSV and PDF downloads, and disputes, over the real Flask app."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient

from appliance.billing.contracts import contract_versions, parse_contract, set_contract
from appliance.billing.ledger import EntryType
from appliance.db.models import AuditLog, utcnow
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


def test_an_it_admin_adds_a_contract_version_from_the_page(
    admin_client: FlaskClient, billed: int, services: Services, submit: Submit
) -> None:
    page = f"/admin/brands/{BRAND}/billing"
    form = admin_client.get(page).get_data(as_text=True)
    # The form starts from the version in force, as TOML the parser reads back.
    assert "price_per_resolution = 0.99" in form

    saved = submit(admin_client, page, f"/admin/brands/{BRAND}/billing/contract", {
        "terms": 'currency = "EUR"\nprice_per_resolution = 1.25\n'
                 "effective_from = 2026-02-01\n"})

    assert saved.status_code == 302
    brand = services.brands.get(BRAND)
    assert [str(v.terms.price_per_resolution) for v in contract_versions(brand)] == [
        "0.99", "1.25"]
    shown = admin_client.get(page).get_data(as_text=True)
    assert "1.25 EUR" in shown and "Every version" in shown
    [entry] = AuditLog.select().where(AuditLog.action == "contract.set",
                                      AuditLog.actor == "admin")
    assert entry.target == BRAND


@pytest.mark.parametrize(("terms", "status", "named"), [
    ('currency = "EUR"\nprice_per_resolution = -1\neffective_from = 2026-02-01\n', 400,
     "price_per_resolution"),
    ('currency = "EUR"\nprice_per_resolution = 1\nbonus = 2\neffective_from = 2026-02-01\n',
     400, "bonus"),
    ('currency = "EUR"\nprice_per_resolution = 1\neffective_from = 2025-01-01\n', 409,
     "effective_from"),
    ("price_per_resolution = [", 400, "contract file"),
])
def test_a_bad_contract_is_refused_naming_the_key_and_kept_in_the_form(
    admin_client: FlaskClient, billed: int, services: Services, submit: Submit,
    terms: str, status: int, named: str,
) -> None:
    page = f"/admin/brands/{BRAND}/billing"
    refused = submit(admin_client, page, f"/admin/brands/{BRAND}/billing/contract",
                     {"terms": terms})

    assert refused.status_code == status
    body = refused.get_data(as_text=True)
    assert "Not saved." in body and named in body
    assert len(contract_versions(services.brands.get(BRAND))) == 1


def test_only_an_it_admin_sets_a_contract(
    billed: int, services: Services, sign_in_as: Callable[..., FlaskClient], submit: Submit
) -> None:
    editor = sign_in_as("cx_editor", BRAND)
    page = f"/admin/brands/{BRAND}/billing"
    assert "Add a contract version" not in editor.get(page).get_data(as_text=True)

    refused = submit(editor, page, f"/admin/brands/{BRAND}/billing/contract", {
        "terms": 'currency = "EUR"\nprice_per_resolution = 0\neffective_from = 2026-02-01\n'})

    assert refused.status_code == 403
    assert len(contract_versions(services.brands.get(BRAND))) == 1
