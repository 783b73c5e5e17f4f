"""Monthly invoices (appliance/billing/invoices.py): computed from the ledger, written back to it
once, and recomputed by the standalone verifier from an export."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import Result
from pypdf import PdfReader

from appliance.billing.contracts import parse_contract, set_contract
from appliance.billing.ledger import EntryType, Ledger
from appliance.db.models import AuditLog, Brand, Conversation, utcnow
from appliance.errors import Conflict, InvalidRequest
from appliance.jobs import run_job
from appliance.services import Services

#: The fixtures' types (tests/billing/conftest.py).
Talk = Callable[..., Conversation]
Invoke = Callable[..., Result]
Verifier = Callable[[dict[str, object], Path], subprocess.CompletedProcess[str]]
NOVEMBER = dt.datetime(2026, 11, 10, 12)
AFTER = dt.datetime(2026, 12, 1, 1)


@pytest.fixture
def contract(services: Services, brand: Brand) -> None:
    set_contract(services.db, brand, parse_contract(
        'currency = "EUR"\nprice_per_resolution = 0.99\nprice_per_save = 12.50\n'
        "monthly_minimum = 20\neffective_from = 2026-10-01\n"), actor="test")


def _november(ledger: Ledger, brand: Brand, talk: Talk) -> None:
    """Three settled resolutions, one settled save, a reversal and a credit in November, and
    a settled resolution in December that November's invoice must not count."""
    lines = [(EntryType.PROVISIONAL, "resolved", "0.99"), (EntryType.SETTLED, "resolved", "0.99"),
             (EntryType.SETTLED, "resolved", "0.99"), (EntryType.SETTLED, "resolved", "0.99"),
             (EntryType.SETTLED, "saved", "12.50"), (EntryType.REVERSAL, "resolved", "-0.99"),
             (EntryType.CREDIT, None, "-0.99")]
    for n, (kind, outcome, amount) in enumerate(lines):
        ledger.append(brand, kind, amount=Decimal(amount), currency="EUR",
                      body={"outcome": outcome, "unit_price": amount.lstrip("-")},
                      conversation=talk("customer: thanks!", "agent: glad to help"),
                      at=NOVEMBER + dt.timedelta(minutes=n))
    ledger.append(brand, EntryType.SETTLED, amount=Decimal("0.99"), currency="EUR",
                  body={"outcome": "resolved", "unit_price": "0.99"},
                  at=dt.datetime(2026, 12, 1, 0, 30))


@pytest.mark.usefixtures("contract")
def test_closing_a_month_bills_its_settled_lines_less_credits(
    services: Services, brand: Brand, ledger: Ledger, talk: Talk
) -> None:
    _november(ledger, brand, talk)

    invoice = services.invoices.close(brand, "2026-11", actor="it-admin", now=AFTER)

    assert invoice["lines"] == [
        {"type": "resolved", "count": 3, "unit_price": "0.99", "amount": "2.97"},
        {"type": "saved", "count": 1, "unit_price": "12.50", "amount": "12.5"},
    ]
    assert invoice["credits"] == {"count": 1, "amount": "-0.99"}
    assert invoice["reversals"] == {"count": 1, "amount": "-0.99"}
    # 2.97 + 12.50 - 0.99 = 14.48, topped up to the monthly minimum of 20.
    assert (invoice["minimum_applied"], invoice["total"]) == ("5.52", "20")
    closing = list(ledger.entries(brand))[-1]
    assert (closing.type, closing.amount) == ("invoice_close", "20")
    assert services.invoices.draft(brand, "2026-11") == invoice
    assert AuditLog.get(AuditLog.action == "invoice.close").actor == "it-admin"
    assert ledger.verify(brand).ok


@pytest.mark.usefixtures("contract")
def test_a_month_is_closed_once_and_only_after_it_ended(
    services: Services, brand: Brand, ledger: Ledger, talk: Talk
) -> None:
    _november(ledger, brand, talk)

    with pytest.raises(InvalidRequest, match="has not ended"):
        services.invoices.close(brand, "2026-11", actor="test",
                                now=dt.datetime(2026, 11, 30, 23, 59))
    services.invoices.close(brand, "2026-11", actor="test", now=AFTER)
    with pytest.raises(Conflict):
        services.invoices.close(brand, "2026-11", actor="test", now=AFTER)

    assert [e.type for e in ledger.entries(brand)].count("invoice_close") == 1


def test_a_brand_without_a_contract_has_no_invoice(services: Services, brand: Brand) -> None:
    with pytest.raises(InvalidRequest, match="no contract"):
        services.invoices.draft(brand, "2026-11")


@pytest.mark.usefixtures("contract")
def test_the_standalone_verifier_recomputes_the_invoice_from_an_export(
    services: Services, brand: Brand, ledger: Ledger, talk: Talk, tmp_path: Path,
    verifier: Verifier,
) -> None:
    _november(ledger, brand, talk)
    services.invoices.close(brand, "2026-11", actor="test", now=AFTER)
    export = ledger.export(brand, "2026-11")
    assert export["entries"][-1]["type"] == "invoice_close"

    honest = verifier(export, tmp_path / "honest")
    close = export["entries"][-1]
    close["body"]["total"] = "25"  # a padded invoice, even with its hash recomputed
    from appliance.billing.chain import entry_hash

    close["hash"] = entry_hash(close["prev_hash"], close)
    padded = verifier(export, tmp_path / "padded")

    assert honest.returncode == 0, honest.stdout + honest.stderr
    assert "invoice 2026-11: total 20 EUR (recomputed)" in honest.stdout
    assert padded.returncode == 1
    assert "the invoice's total is '25'; the entries give '20'" in padded.stdout


@pytest.mark.usefixtures("contract")
def test_the_cli_closes_and_shows_an_invoice(
    brand: Brand, ledger: Ledger, talk: Talk, invoke: Invoke, tmp_path: Path
) -> None:
    _november(ledger, brand, talk)

    closed = invoke("invoices", "close", "--brand", "acme", "--period", "2026-11",
                    "--now", "2026-12-01T01:00:00")
    shown = invoke("invoices", "show", "--brand", "acme", "--period", "2026-11", "--json",
                   "--pdf", str(tmp_path / "invoice.pdf"))
    again = invoke("invoices", "close", "--brand", "acme", "--period", "2026-11",
                   "--now", "2026-12-01T01:00:00")

    assert closed.exit_code == 0, closed.output
    assert closed.output.strip() == "closed acme 2026-11: 20 EUR"
    invoice = json.loads(shown.output)
    assert invoice["state"] == "closed"
    pdf = " ".join(page.extract_text() for page in PdfReader(tmp_path / "invoice.pdf").pages)
    assert "invoice 2026-11" in pdf and f"{invoice['total']} EUR" in pdf
    assert invoice["ledger_head"] in pdf.replace("\n", "")
    assert isinstance(again.exception, Conflict)


def test_the_monthly_job_closes_last_months_invoice_once(
    services: Services, brand: Brand, ledger: Ledger
) -> None:
    set_contract(services.db, brand, parse_contract(
        'currency = "EUR"\nprice_per_resolution = 1\neffective_from = 2026-01-01\n'),
        actor="test")
    last_month = (utcnow().replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")

    first = run_job(services, "invoices.close")
    again = run_job(services, "invoices.close")

    assert first.detail == {"period": last_month, "closed": ["acme"]}
    assert again.detail == {"period": last_month, "closed": []}
    assert ledger.invoice_close(brand, last_month) is not None
