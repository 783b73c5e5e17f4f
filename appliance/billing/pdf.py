"""An invoice as a one-page PDF, for the admin's download and `appliance invoices show --pdf`.

The bytes are reproducible (a fixed creation date), so the same invoice gives the same file.
fpdf2's core fonts carry Latin-1 text only; anything else is replaced, never dropped silently.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fpdf import FPDF


def _latin1(value: object) -> str:
    return str(value).encode("latin-1", "replace").decode("latin-1")


def render_invoice_pdf(brand_name: str, invoice: dict[str, Any]) -> bytes:
    """The invoice `InvoiceService.draft` returns (open or closed), rendered as a PDF."""
    pdf = FPDF()
    pdf.set_creation_date(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _latin1(f"{brand_name}: invoice {invoice['period']}"), new_x="LMARGIN",
             new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    state = "closed" if invoice["state"] == "closed" else "open (not yet closed)"
    pdf.cell(0, 6, _latin1(f"State: {state}. Contract version {invoice['contract_version']}, "
                           f"{invoice['currency']}."), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    with pdf.table(col_widths=(40, 20, 30, 30), text_align=("LEFT", "RIGHT", "RIGHT",
                                                              "RIGHT")) as table:
        table.row(["Outcome", "Count", "Unit price", "Amount"])
        for line in invoice["lines"]:
            table.row([_latin1(line["type"]), str(line["count"]), line["unit_price"],
                       line["amount"]])
        table.row(["Credits", str(invoice["credits"]["count"]), "",
                   invoice["credits"]["amount"]])
        table.row(["Minimum applied", "", "", invoice["minimum_applied"]])
        table.row(["Total", "", "", f"{invoice['total']} {invoice['currency']}"])
    pdf.ln(4)
    pdf.set_font("Helvetica", size=8)
    pdf.multi_cell(0, 4, _latin1(
        f"Ledger head: {invoice['ledger_head']}. Reversals (never invoiced): "
        f"{invoice['reversals']['count']}. Verify with `appliance ledger export --period "
        f"{invoice['period']}` and scripts/verify_ledger.py."))
    return bytes(pdf.output())
