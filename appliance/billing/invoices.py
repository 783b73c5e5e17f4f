"""Monthly invoices: a closed period's bill, computed from the ledger and written back to it.

An invoice is never stored apart from the ledger: closing a period appends an `invoice_close`
entry whose body is the invoice (lines, reversals, credits, minimum applied, total, currency,
the contract version and the ledger head it was computed at), and showing one reads that entry.
The arithmetic is `chain.invoice_lines`, the same function the standalone verifier runs, so the
buyer recomputes exactly what was billed. A period can be closed once, after it has ended.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import peewee

from appliance import audit
from appliance.billing.chain import invoice_lines
from appliance.billing.contracts import contract_at
from appliance.billing.ledger import EntryType, Ledger, entry_json, month_bounds, naive_utc
from appliance.db.models import Brand, utcnow
from appliance.errors import Conflict, InvalidRequest


class InvoiceService:
    def __init__(self, db: peewee.Database, ledger: Ledger) -> None:
        self._db = db
        self._ledger = ledger

    def draft(self, brand: Brand, period: str) -> dict[str, Any]:
        """The period's invoice as the ledger stands now (closed: as it was closed)."""
        closed = self._ledger.invoice_close(brand, period)
        if closed is not None:
            return {"period": period, "state": "closed", **json.loads(closed.body)}
        return {"period": period, "state": "open", **self._compute(brand, period)}

    def close(self, brand: Brand, period: str, *, actor: str,
              now: dt.datetime | None = None) -> dict[str, Any]:
        """Close the period: append its `invoice_close` entry and return the invoice.
        Refused before the period has ended, and for a period already closed."""
        end = month_bounds(period)[1]
        now = naive_utc(now or utcnow())
        if now < end:
            raise InvalidRequest(f"period: {period} has not ended yet", param="period")
        with self._db.atomic():
            if self._ledger.invoice_close(brand, period) is not None:
                raise Conflict(f"the invoice for {period} is already closed",
                               code="invoice_closed")
            invoice = self._compute(brand, period)
            self._ledger.append(brand, EntryType.INVOICE_CLOSE,
                                amount=Decimal(invoice["total"]),
                                currency=invoice["currency"], body=invoice, at=now)
            audit.record(actor, "invoice.close", brand.slug,
                         {"period": period, "total": invoice["total"]})
        return {"period": period, "state": "closed", **invoice}

    def _compute(self, brand: Brand, period: str) -> dict[str, Any]:
        start, end = month_bounds(period)
        contract = contract_at(brand, end - dt.timedelta(microseconds=1))
        if contract is None:
            raise InvalidRequest(f"brand {brand.slug!r} had no contract in {period}",
                                 param="period", code="no_contract")
        entries = [entry_json(brand, row) for row in self._ledger.entries(brand, start, end)]
        return {**invoice_lines(entries, contract.terms.monthly_minimum,
                                contract.terms.currency),
                "period": period, "contract_version": contract.version,
                "monthly_minimum": str(contract.terms.monthly_minimum),
                "ledger_head": self._ledger.head_before(brand, end)}
