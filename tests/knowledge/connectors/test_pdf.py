"""The PDFs are made here with fpdf2, so each test knows exactly what the file holds."""

from __future__ import annotations

import datetime as dt

import pytest
from fpdf import FPDF

from appliance.knowledge.base import DocumentError, Section, SourceError
from appliance.knowledge.connectors import pdf

RUNNING_HEADER = "Northwind Outfitters - Agent Handbook"


def _new() -> FPDF:
    document = FPDF()
    document.set_font("Helvetica", size=12)
    return document


def _write(document: FPDF, text: str) -> None:
    document.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")


def returns_policy() -> FPDF:
    """Three pages: a heading line, a bookmarked page, and a page of plain text."""
    document = _new()
    document.set_title("Northwind Returns Policy")
    document.set_author("Dana Whitfield")
    document.set_creation_date(dt.datetime(2024, 3, 14, 9, 30, tzinfo=dt.UTC))
    document.add_page()
    _write(document, "Returns at a glance")
    _write(document, "Unworn items can be returned within 60 days of delivery. Final-sale items "
                     "are excluded unless they arrived damaged.")  # fmt: skip
    document.add_page()
    document.start_section("Refund timelines")
    _write(document, "Refund timelines")
    _write(document, "Card refunds take 5 to 7 business days. PayPal refunds take 1 to 2 days.")
    document.add_page()
    _write(document, "Items bought with a gift card are refunded as store credit, which never "
                     "expires.")  # fmt: skip
    return document


class _Handbook(FPDF):
    def header(self) -> None:
        self.set_font("Helvetica", size=9)
        self.cell(0, 6, RUNNING_HEADER, new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", size=12)


def handbook() -> FPDF:
    """No /Title, and a running header on every page that must not pass for a heading."""
    document = _Handbook()
    document.set_font("Helvetica", size=12)
    for text in ("Greet the customer by name.", "Never share a customer's address by phone."):
        document.add_page()
        _write(document, text)
    return document


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pdfs")
    returns_policy().output(str(folder / "returns-policy.pdf"))
    handbook().output(str(folder / "handbook.pdf"))

    locked = _new()
    locked.set_encryption(owner_password="owner", user_password="s3cret")
    locked.add_page()
    _write(locked, "Salary bands")
    locked.output(str(folder / "locked.pdf"))

    scan = _new()
    scan.add_page()
    scan.rect(20, 20, 120, 80, style="F")  # a picture of a page: no text layer
    scan.output(str(folder / "scan.pdf"))

    whole = (folder / "returns-policy.pdf").read_bytes()
    (folder / "truncated.pdf").write_bytes(whole[: len(whole) // 2])
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\nendobj\ngarbage")
    return folder


def test_it_makes_one_section_per_page_with_detected_headings(read, pdfs):
    (document,) = read(pdf.read, pdfs / "returns-policy.pdf").documents

    assert document.external_id == "returns-policy.pdf"
    assert document.location == "returns-policy.pdf"
    assert document.title == "Northwind Returns Policy"
    assert document.author == "Dana Whitfield"
    assert document.updated_at == dt.datetime(2024, 3, 14, 9, 30, tzinfo=dt.UTC)
    assert document.metadata == {"pages": 3}
    assert document.sections == (
        Section(
            "Returns at a glance",  # the page's first line, which looks like a heading
            "Unworn items can be returned within 60 days of delivery. Final-sale items are "
            "excluded unless they\narrived damaged.",
        ),
        Section(
            "Refund timelines",  # the PDF's bookmark for page 2
            "Card refunds take 5 to 7 business days. PayPal refunds take 1 to 2 days.",
        ),
        Section(
            "Page 3",
            "Items bought with a gift card are refunded as store credit, which never expires.",
        ),
    )


def test_it_does_not_mistake_a_running_header_for_a_heading(read, pdfs):
    (document,) = read(pdf.read, pdfs / "handbook.pdf").documents

    assert document.title == RUNNING_HEADER  # no /Title: the first line
    assert [section.heading for section in document.sections] == ["Page 1", "Page 2"]
    assert (
        document.sections[1].text == f"{RUNNING_HEADER}\nNever share a customer's address by phone."
    )


def test_it_reports_corrupt_locked_and_textless_pdfs_and_reads_the_rest(read, pdfs):
    result = read(pdf.read, pdfs)

    assert result.ids == ["handbook.pdf", "returns-policy.pdf"]
    errors = {error.external_id: error.message for error in result.errors}
    assert sorted(errors) == ["corrupt.pdf", "locked.pdf", "scan.pdf", "truncated.pdf"]
    assert errors["locked.pdf"] == "the PDF is password-protected"
    assert errors["scan.pdf"] == "the PDF has no text layer (a scan?); nothing to read"
    assert errors["corrupt.pdf"].startswith("corrupt or unreadable PDF")
    assert errors["truncated.pdf"].startswith("corrupt or unreadable PDF")


def test_it_reports_an_oversized_pdf_without_reading_it(read, tmp_path):
    with (tmp_path / "catalogue.pdf").open("wb") as huge:
        huge.truncate(200 * 1024 * 1024)  # sparse: nothing is written

    result = read(pdf.read, tmp_path)

    assert result.errors == [
        DocumentError(
            "catalogue.pdf", "209715200 bytes is over the 20971520-byte limit for one document"
        )
    ]


def test_it_refuses_a_single_file_that_is_not_a_pdf(fixtures):
    with pytest.raises(SourceError, match="is not a PDF"):
        list(pdf.read(fixtures / "markdown" / "notes.txt", {}))


class _Policy(FPDF):
    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", size=8)
        self.cell(0, 6, f"Northwind Returns Policy, 2021 edition.  Page {self.page_no()} of 2")


def test_it_drops_a_running_footer_that_differs_only_in_its_page_number(read, tmp_path):
    document = _Policy()
    document.set_font("Helvetica", size=12)
    for text in ("Returns are accepted within 60 days.", "Refunds take 5 to 7 business days."):
        document.add_page()
        _write(document, text)
    document.output(str(tmp_path / "policy.pdf"))

    (read_back,) = read(pdf.read, tmp_path / "policy.pdf").documents

    assert [section.text for section in read_back.sections] == [
        "Returns are accepted within 60 days.", "Refunds take 5 to 7 business days."]
