"""Write the demo brands' PDF sources under appliance/demo/knowledge/*/pdf/.

The PDFs are committed; run this only to change them:

    .venv/bin/python scripts/make_demo_pdfs.py

fpdf2 lays the pages out (with an outline, so each page's heading is a bookmark); pypdf then sets
the /Info dictionary, /ModDate included, which is the date the pdf connector reports as the
document's last change. fpdf2 itself writes no /ModDate. The output is byte-for-byte reproducible:
every date is fixed below, and the file ID fpdf2 derives from the content is kept.

Only Latin-1 text is used (fpdf2's core fonts), so no en dashes or curly quotes.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF
from pypdf import PdfReader, PdfWriter

KNOWLEDGE = Path(__file__).resolve().parent.parent / "appliance" / "demo" / "knowledge"


@dataclass(frozen=True)
class Page:
    heading: str
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class Leaflet:
    path: str
    title: str
    author: str
    subject: str
    created: dt.datetime
    modified: dt.datetime
    footer: str
    pages: tuple[Page, ...]


RHO_FEES = Leaflet(
    path="rho-bank/pdf/personal-checking-fee-schedule.pdf",
    title="Rho-Bank Personal Checking Fee Schedule",
    author="Rho-Bank Product Disclosures",
    subject="Fees and limits for Blue, Green, Light Blue and Purple checking accounts",
    created=dt.datetime(2026, 6, 24, 14, 0, tzinfo=dt.UTC),
    modified=dt.datetime(2026, 7, 1, 9, 30, tzinfo=dt.UTC),
    footer="Rho-Bank, N.A. Member FDIC. Personal Checking Fee Schedule, effective July 1, 2026.",
    pages=(
        Page("Blue Account", (
            "The Blue Account monthly maintenance fee is $20.00. We waive it for any month in "
            "which your minimum daily balance stays at or above $625.",
            "The Blue Account charges no overdraft fees. If you opt in to overdraft protection, "
            "each transfer from your linked account to cover a shortfall costs $12.50.",
            "Other Blue Account fees: mailed paper statements $2.50 a month; a deposited item "
            "returned unpaid $15.00; each incoming domestic wire $12.50; a stop payment on a check "
            "$30.",
            "Blue Account ATM use: out-of-network withdrawals cost 1% of the amount, up to $3.00. "
            "Withdrawals made in a foreign currency cost 3% of the amount, at least $5.00 each.",
        )),
        Page("Green Account (checking)", (
            "The Green Account (checking) monthly maintenance fee is $22.50, waived with a minimum "
            "daily balance of $1,350 each statement cycle.",
            "The Green Account (checking) never goes negative: a payment larger than your "
            "available balance is declined, so there are no overdraft fees and no overdraft "
            "transfers.",
            "Other Green Account (checking) fees: paper statements $2.50 a month; out-of-network "
            "ATM withdrawals $3.00; a returned deposited item $17.50; an incoming domestic wire "
            "$15.00.",
        )),
        Page("Light Blue Account", (
            "The Light Blue Account has no monthly maintenance fee and no overdraft fees.",
            "Light Blue Account holders get 2 free out-of-network ATM withdrawals every month; "
            "after that, each out-of-network withdrawal costs $2.50. Abroad, the first 2 foreign "
            "ATM withdrawals each month are free and each one after that costs $4.00.",
            "A stop payment request on a Light Blue Account check costs $30.",
        )),
        Page("Purple Account", (
            "The Purple Account is built for travel: Rho-Bank charges no foreign transaction fee "
            "(0%) and no fee of its own for foreign ATM withdrawals.",
            "Purple Account holders are rebated ATM operator fees up to $30 a month worldwide, and "
            "currency conversions in the multi-currency wallet carry a markup of 0.5% over the "
            "interbank rate.",
            "Purple Account extras: 6 complimentary airport lounge visits a year, a stop payment "
            "on a check for $25, and a cashier's check for $8 if you need one while traveling.",
        )),
    ),
)

RHO_TRAVEL = Leaflet(
    path="rho-bank/pdf/cards-abroad-leaflet.pdf",
    title="Using Your Rho-Bank Cards Abroad",
    author="Rho-Bank Customer Care",
    subject="Leaflet handed out in branches before the summer travel season",
    created=dt.datetime(2026, 5, 8, 10, 0, tzinfo=dt.UTC),
    modified=dt.datetime(2026, 5, 12, 16, 45, tzinfo=dt.UTC),
    footer="Rho-Bank, N.A. Member FDIC. Questions? Call 1-800-RHO-BANK.",
    pages=(
        Page("Before you go", (
            "Check which of your cards charge a foreign transaction fee. The Gold Rewards Card and "
            "the Purple Account debit card charge none.",
            "Save 1-800-RHO-BANK in your phone. Fraud reports are taken 24 hours a day.",
        )),
        Page("At the ATM and the till", (
            "When an ATM or a shop offers to charge you in U.S. dollars, choose the local currency "
            "instead. Converting at the terminal usually costs more.",
            "Blue Account debit cards pay 3% of each foreign-currency ATM withdrawal, with a $5.00 "
            "minimum, so a few larger withdrawals cost less than many small ones.",
            "If an ATM does not dispense your cash, do not keep retrying at the same machine; use "
            "another ATM and tell us about the failed withdrawal.",
        )),
        Page("If your card is lost or stolen", (
            "Report it straight away in the app or by phone; we block the card as soon as you "
            "report it.",
            "Purple Account holders can get an emergency replacement card delivered abroad, "
            "usually within 2 days depending on where you are.",
            "Once the new card arrives, update any subscriptions that used the old card number.",
        )),
    ),
)

LUMEN_2021 = Leaflet(
    path="lumen-goods/pdf/returns-and-refunds-policy-2021.pdf",
    title="Lumen Goods Returns & Refunds Policy",
    author="Lumen Goods Customer Care",
    subject="Returns and refunds policy, 2021 edition",
    created=dt.datetime(2021, 4, 9, 18, 0, tzinfo=dt.UTC),
    modified=dt.datetime(2021, 4, 12, 15, 20, tzinfo=dt.UTC),
    footer="Lumen Goods, Inc. Returns & Refunds Policy, 2021 edition.",
    pages=(
        Page("Returning an item", (
            "We accept returns of delivered orders. Call our care line at 1-800-LUMEN-01, Monday "
            "to Friday between 9 AM and 6 PM Eastern, and have your order number ready.",
            "Our care team emails you a prepaid shipping label. Print it, attach it to the parcel "
            "and drop the parcel at any carrier location.",
            "Returns are handled by phone only; we cannot accept return requests by email.",
        )),
        Page("Refunds", (
            "Refunds are made to the original payment method or, if you prefer, to a Lumen Goods "
            "gift card.",
            "Refunds are issued once your parcel has been received and inspected at our "
            "warehouse in Columbus, Ohio.",
        )),
        Page("Exchanges", (
            "To exchange an item for a different size or color of the same product, return the "
            "original item and place a new order online.",
        )),
    ),
)

LEAFLETS = (RHO_FEES, RHO_TRAVEL, LUMEN_2021)


def _pdf_date(moment: dt.datetime) -> str:
    return moment.strftime("D:%Y%m%d%H%M%S+00'00'")


class _Layout(FPDF):
    def __init__(self, leaflet: Leaflet) -> None:
        super().__init__(format="Letter")
        self.leaflet = leaflet
        self.set_margins(22, 20, 22)
        self.set_auto_page_break(auto=True, margin=22)

    def footer(self) -> None:
        self.set_y(-16)
        self.set_font("Helvetica", "", 8)
        self.set_text_color(90, 90, 90)
        self.cell(0, 5, f"{self.leaflet.footer}  Page {self.page_no()} of {{nb}}", align="C")


def render(leaflet: Leaflet) -> bytes:
    """The finished PDF: fpdf2 layout, then pypdf metadata with /ModDate."""
    pdf = _Layout(leaflet)
    pdf.set_creation_date(leaflet.created)
    pdf.set_title(leaflet.title)
    pdf.set_author(leaflet.author)
    pdf.set_creator("Switchboard demo data (scripts/make_demo_pdfs.py)")
    pdf.alias_nb_pages()
    for page in leaflet.pages:
        pdf.add_page()
        pdf.start_section(page.heading)
        pdf.set_font("Helvetica", "B", 15)
        pdf.multi_cell(0, 8, page.heading, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        pdf.set_font("Helvetica", "", 11)
        for paragraph in page.paragraphs:
            pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
    laid_out = bytes(pdf.output())

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(laid_out)))
    writer.add_metadata({
        "/Title": leaflet.title,
        "/Author": leaflet.author,
        "/Subject": leaflet.subject,
        "/Creator": "Switchboard demo data (scripts/make_demo_pdfs.py)",
        "/Producer": "fpdf2 + pypdf",
        "/CreationDate": _pdf_date(leaflet.created),
        "/ModDate": _pdf_date(leaflet.modified),
    })
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def main() -> None:
    for leaflet in LEAFLETS:
        target = KNOWLEDGE / leaflet.path
        target.parent.mkdir(parents=True, exist_ok=True)
        data = render(leaflet)
        target.write_bytes(data)
        check = PdfReader(io.BytesIO(data)).metadata
        assert check is not None and check.modification_date is not None
        print(f"{target.relative_to(KNOWLEDGE.parent.parent.parent)}: {len(data)} bytes, "
              f"ModDate {check.modification_date:%Y-%m-%d}")


if __name__ == "__main__":
    main()
