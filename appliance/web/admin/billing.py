"""A brand's billing for its CX team and IT: the contract in force, each month's invoice with
its lines and the conversations behind them, CSV and PDF downloads, and disputes.

Everything comes from the billing services (appliance/billing/): the invoice is what
`appliance invoices show` prints, the CSV is the ledger export `scripts/verify_ledger.py`
checks. Readers see; a brand's editors dispute lines; an it_admin decides disputes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance.billing.contracts import (
    contract_at,
    contract_toml,
    contract_versions,
    parse_contract,
    set_contract,
)
from appliance.billing.disputes import DISPUTERS, IT_ADMIN
from appliance.billing.ledger import EntryType, export_csv, month_bounds
from appliance.billing.pdf import render_invoice_pdf
from appliance.db.models import AdminUser, Brand, utcnow
from appliance.errors import ApplianceError, Conflict, InvalidRequest
from appliance.web import services_of_app
from appliance.web.admin import bp
from appliance.web.admin.auth import READER_ROLES, login_required, signed_in_user
from appliance.web.admin.scope import brand_for

#: Months listed on the billing page, newest first.
MONTHS = 12


@dataclass(frozen=True)
class BilledLine:
    """A settled ledger line of the month, with what the page shows of its outcome."""

    seq: int
    conversation: str | None
    outcome: str
    how: str | None
    rule: str | None
    amount: str
    disputed: str | None


def _months(brand: Brand) -> list[str]:
    """The months from the brand's first ledger entry to this one, newest first."""
    first = services_of_app().ledger.first_at(brand)
    if first is None:
        return []
    month, now = first.replace(day=1), utcnow()
    months = []
    while (month.year, month.month) <= (now.year, now.month):
        months.append(month.strftime("%Y-%m"))
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return list(reversed(months))[:MONTHS]


def _invoice(brand: Brand, period: str) -> dict[str, Any] | None:
    try:
        return services_of_app().invoices.draft(brand, period)
    except InvalidRequest:
        return None  # no contract in that month


#: What the contract form starts from for a brand that has none yet.
FIRST_CONTRACT = """currency = "EUR"
price_per_resolution = 0.99
price_per_save = 0.0
upsell_share = 0.0
monthly_minimum = 0.0
assume_resolved_after_hours = 24
reopen_window_hours = 72
effective_from = {today}
"""


def _render_billing(user: AdminUser, brand: Brand, *, terms_text: str | None = None,
                    error: ApplianceError | None = None) -> str:
    services = services_of_app()
    contract = contract_at(brand, utcnow())
    if terms_text is None:
        terms_text = (FIRST_CONTRACT.format(today=utcnow().date().isoformat())
                      if contract is None else contract_toml(contract.terms))
    invoices = [(period, _invoice(brand, period)) for period in _months(brand)]
    return render_template(
        "admin/billing.html", brand=brand, contract=contract, invoices=invoices,
        versions=contract_versions(brand), disputes=services.disputes.list(brand),
        can_decide=user.role == IT_ADMIN, terms_text=terms_text, error=error)


@bp.get("/brands/<slug>/billing")
@login_required(*READER_ROLES)
def billing(slug: str) -> ResponseReturnValue:
    user = signed_in_user()
    return _render_billing(user, brand_for(user, slug))


@bp.post("/brands/<slug>/billing/contract")
@login_required(IT_ADMIN)
def set_brand_contract(slug: str) -> ResponseReturnValue:
    """Add a contract version, as `appliance contracts set` does (validated, audited)."""
    user = signed_in_user()
    brand = brand_for(user, slug)
    text = request.form.get("terms", "")
    try:
        version = set_contract(services_of_app().db, brand, parse_contract(text),
                               actor=user.username)
    except (InvalidRequest, Conflict) as exc:
        return _render_billing(user, brand, terms_text=text, error=exc), exc.status
    flash(f"Contract version {version.version} saved, in force from "
          f"{version.terms.effective_from}.", "success")
    return redirect(url_for("admin.billing", slug=brand.slug))


@bp.get("/brands/<slug>/billing/<period>")
@login_required(*READER_ROLES)
def invoice(slug: str, period: str) -> ResponseReturnValue:
    user = signed_in_user()
    brand = brand_for(user, slug)
    start, end = month_bounds(period)
    found = _invoice(brand, period)
    disputed = {d.line_seq: d.state for d in services_of_app().disputes.list(brand)}
    lines = []
    for entry in services_of_app().ledger.entries(brand, start, end):
        if entry.type != EntryType.SETTLED.value:
            continue
        body = json.loads(entry.body)
        lines.append(BilledLine(entry.seq, entry.conversation, body.get("outcome", ""),
                                body.get("how"), body.get("rule"), entry.amount,
                                disputed.get(entry.seq)))
    return render_template("admin/invoice.html", brand=brand, period=period, invoice=found,
                           lines=lines, can_dispute=user.role in DISPUTERS)


@bp.get("/brands/<slug>/billing/<period>.csv")
@login_required(*READER_ROLES)
def invoice_csv(slug: str, period: str) -> Response:
    brand = brand_for(signed_in_user(), slug)
    text = export_csv(services_of_app().ledger.export(brand, period))
    return Response(text, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{brand.slug}-{period}-ledger.csv"'})


@bp.get("/brands/<slug>/billing/<period>.pdf")
@login_required(*READER_ROLES)
def invoice_pdf(slug: str, period: str) -> Response:
    brand = brand_for(signed_in_user(), slug)
    found = _invoice(brand, period)
    if found is None:
        raise InvalidRequest(f"brand {brand.slug!r} had no contract in {period}",
                             code="no_contract")
    return Response(render_invoice_pdf(brand.name, found), mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{brand.slug}-{period}-invoice.pdf"'})


@bp.post("/brands/<slug>/billing/disputes")
@login_required(*DISPUTERS)
def open_dispute(slug: str) -> ResponseReturnValue:
    user = signed_in_user()
    brand = brand_for(user, slug)
    line = request.form.get("line", "")
    if not line.isdigit():
        raise InvalidRequest("line: a ledger line number", param="line")
    found = services_of_app().disputes.open(brand, int(line), request.form.get("reason", ""),
                                            user)
    flash(f"Line {found.line_seq} disputed.", "success")
    period = request.form.get("period", "")
    if period:
        month_bounds(period)  # only a real month goes into the redirect
        return redirect(url_for("admin.invoice", slug=brand.slug, period=period))
    return redirect(url_for("admin.billing", slug=brand.slug))


@bp.post("/brands/<slug>/billing/disputes/<int:seq>")
@login_required(IT_ADMIN)
def decide_dispute(slug: str, seq: int) -> ResponseReturnValue:
    user = signed_in_user()
    brand = brand_for(user, slug)
    decision = request.form.get("decision")
    if decision not in ("accept", "reject"):
        raise InvalidRequest("decision: accept or reject", param="decision")
    found = services_of_app().disputes.decide(brand, seq, accept=decision == "accept",
                                              reason=request.form.get("reason", ""), user=user)
    flash(f"Dispute {seq} {found.state}.", "success")
    return redirect(url_for("admin.billing", slug=brand.slug))
