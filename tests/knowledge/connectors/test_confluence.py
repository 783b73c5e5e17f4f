from __future__ import annotations

import datetime as dt
import shutil

import pytest

from appliance.errors import InvalidRequest
from appliance.knowledge.base import Section, SourceError
from appliance.knowledge.connectors import confluence


@pytest.fixture
def html_export(fixtures):
    return fixtures / "confluence" / "html_export"


@pytest.fixture
def xml_export(fixtures):
    return fixtures / "confluence" / "xml_export"


def test_it_reads_html_export_pages_by_page_id_skipping_index_and_attachments(read, html_export):
    result = read(confluence.read, html_export)

    assert sorted(result.ids) == ["131074", "131090", "65538"]
    assert result.errors == []


def test_it_takes_title_breadcrumbs_author_and_date_from_an_html_page(read, html_export):
    page = read(confluence.read, html_export).by_id("131074")

    assert page.title == "Refund Policy"
    assert page.location == "Refund-Policy_131074.html"
    assert page.author == "Marco Ruiz"  # the last editor, not the creator
    assert page.updated_at == dt.datetime(2024, 2, 14, tzinfo=dt.UTC)
    assert page.metadata["space"] == "Support Handbook"
    assert page.metadata["breadcrumbs"] == ["Support Handbook", "Support Handbook Home"]


def test_it_splits_an_html_page_by_headings_and_leaves_out_what_surrounds_it(read, html_export):
    page = read(confluence.read, html_export).by_id("131074")

    assert page.sections == (
        Section("", "This page describes when and how we refund customers."),
        Section(
            "Eligibility",
            "Orders can be refunded within 60 days of delivery.\n"
            "Final-sale items are never refundable.",
        ),
        Section("Eligibility > Gift cards", "Gift cards are refunded as store credit only."),
        Section(
            "How to issue a refund",
            "- Open the order in the back office.\n"
            "- Click Refund and pick the reason code.\n"
            "refundctl issue --order 12345 --reason DAMAGED",
        ),
    )
    for outside in ("Attachments", "refund-form.pdf", "partial refunds", "Document generated"):
        assert outside not in page.text


def test_it_drops_the_table_of_contents_macro(read, html_export):
    home = read(confluence.read, html_export).by_id("65538")

    assert [section.heading for section in home.sections] == ["", "Escalations"]
    assert home.sections[1].text.count("Escalate") == 1
    assert home.author == "Dana Whitfield"
    assert home.updated_at == dt.datetime(2023, 1, 9, tzinfo=dt.UTC)


def test_it_reads_a_page_whose_file_is_named_by_id_only(read, html_export):
    page = read(confluence.read, html_export).by_id("131090")

    assert page.title == "Política de devoluciones"
    assert page.sections == (Section("Plazo", "Aceptamos devoluciones durante 60 días."),)


def test_it_cites_pages_on_the_wiki_when_given_its_url(read, html_export, xml_export):
    options = {"base_url": "https://wiki.northwind.example/"}

    html_page = read(confluence.read, html_export, options).by_id("131074")
    xml_page = read(confluence.read, xml_export, options).by_id("229377")

    assert (
        html_page.location == "https://wiki.northwind.example/pages/viewpage.action?pageId=131074"
    )
    assert xml_page.location == "https://wiki.northwind.example/pages/viewpage.action?pageId=229377"


def test_it_rejects_a_base_url_that_is_not_a_url(html_export):
    with pytest.raises(InvalidRequest):
        list(confluence.read(html_export, {"base_url": "wiki.northwind"}))


def test_it_reads_only_current_pages_of_an_xml_export(read, xml_export):
    result = read(confluence.read, xml_export)

    # 229380 and 229385 are old versions of 229377; 229388 is a draft, 229389 is trashed.
    assert result.ids == ["229376", "229377"]
    assert result.errors == []


def test_it_takes_the_current_version_body_and_metadata_from_entities_xml(read, xml_export):
    page = read(confluence.read, xml_export / "entities.xml").by_id("229377")

    assert page.title == "Refund Policy"
    assert page.location == "entities.xml#page-229377"
    assert page.updated_at == dt.datetime(2024, 2, 14, 16, 5, 31, 482000, tzinfo=dt.UTC)
    assert page.author == "mruiz"
    assert page.metadata == {
        "space": "SUP",
        "version": "3",
        "breadcrumbs": ["Support Handbook Home"],
    }
    assert "60 days" in page.text
    assert "30 days" not in page.text and "45 days" not in page.text


def test_it_renders_storage_format_macros_links_and_code(read, xml_export):
    page = read(confluence.read, xml_export).by_id("229377")

    assert page.sections == (
        Section("", "This page describes when and how we refund customers."),
        Section(
            "Eligibility",
            "Orders can be refunded within 60 days of delivery.\n"
            "Final-sale items are never refundable.",
        ),
        Section(
            "Eligibility > Gift cards",
            "Gift cards are refunded as store credit only. See Gift Card Terms for details.",
        ),
        Section(
            "How to issue a refund",
            "- Open the order in the back office.\n"
            "- Click Refund and pick the reason code.\n"
            "refundctl issue --order 12345 --reason DAMAGED\n"
            "Questions? Ask in the handbook home — thanks!",
        ),
    )
    for parameter in ("Heads up", "bash", "incomplete", "refund-screen.png"):
        assert parameter not in page.text


def test_it_drops_navigation_macros_from_storage_format(read, xml_export):
    home = read(confluence.read, xml_export).by_id("229376")

    assert home.sections == (
        Section("", "Welcome to the customer care handbook."),
        Section(
            "Escalations", "Escalate to a team lead when a customer asks for a refund above $500."
        ),
    )


def test_it_raises_source_error_for_malformed_entities_xml(xml_export, tmp_path):
    broken = tmp_path / "entities.xml"
    broken.write_bytes((xml_export / "entities.xml").read_bytes()[:3000])

    with pytest.raises(SourceError, match="not well-formed"):
        list(confluence.read(tmp_path, {}))


def test_it_raises_source_error_for_xml_that_is_not_a_confluence_export(tmp_path):
    (tmp_path / "entities.xml").write_text("<?xml version='1.0'?><urlset></urlset>")

    with pytest.raises(SourceError, match="not a Confluence XML export"):
        list(confluence.read(tmp_path, {}))


def test_it_raises_source_error_for_a_folder_without_export_files(tmp_path):
    (tmp_path / "notes.txt").write_text("just notes")

    with pytest.raises(SourceError, match="not a Confluence export"):
        list(confluence.read(tmp_path, {}))


def test_it_reports_an_oversized_page_and_reads_the_others(read, html_export, tmp_path):
    export = tmp_path / "export"
    shutil.copytree(html_export, export)
    with (export / "Huge-Page_999.html").open("wb") as huge:
        huge.truncate(21 * 1024 * 1024)  # sparse: nothing is written

    result = read(confluence.read, export)

    assert sorted(result.ids) == ["131074", "131090", "65538"]
    assert [(error.external_id, error.message) for error in result.errors] == [
        (
            "999",
            "Huge-Page_999.html: 22020096 bytes is over the 20971520-byte limit for one document",
        )
    ]
