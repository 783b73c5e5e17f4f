from __future__ import annotations

import datetime as dt
import os
import shutil

import pytest

from appliance.knowledge.base import DocumentError, SourceError
from appliance.knowledge.connectors import faq_html

SHIPPING = "help/shipping-faq.html"
PASSWORDS = "help/account/passwords.html"


def test_it_reads_each_page_as_one_document_keyed_by_relative_path(read, fixtures):
    result = read(faq_html.read, fixtures / "faq_html" / "site")

    assert result.ids == [SHIPPING, PASSWORDS]  # a folder's files, then its subfolders
    assert result.errors == []
    page = result.by_id(SHIPPING)
    assert page.title == "Shipping & Returns FAQ"
    assert page.location == "https://www.northwind.example/help/shipping-faq"
    assert page.updated_at == dt.datetime(2024, 3, 18, 8, 30, tzinfo=dt.UTC)


def test_it_turns_details_definition_lists_and_question_headings_into_questions(read, fixtures):
    page = read(faq_html.read, fixtures / "faq_html" / "site").by_id(SHIPPING)
    sections = {section.heading: section.text for section in page.sections}

    assert sections["How long does standard shipping take?"] == (
        "Standard shipping takes 3\N{EN DASH}5 business days within the continental US.\n"
        "Orders placed before 1 pm ET ship the same day."
    )
    assert sections["Can I change my shipping address after ordering?"] == (
        "You can change the address until the order is packed:\n"
        "- Open My orders and choose the order.\n"
        "- Select Edit address."
    )
    assert sections["Who pays for return shipping?"] == (
        "Returns are free for Northwind Rewards members.\n"
        "Everyone else pays a flat $6.95 label fee, deducted from the refund."
    )
    assert sections["How are refunds paid?"].startswith("Refunds go back to the original payment")
    assert sections["Shipping rates"] == (
        "Method | Cost | Delivery\n"
        "Standard | Free over $75 | 3\N{EN DASH}5 days\n"
        "Express | $19.95 | 1\N{EN DASH}2 days"
    )
    assert sections[""] == "Answers to the questions our customer care team hears most often."


def test_it_adds_json_ld_questions_the_page_does_not_show_once(read, fixtures):
    page = read(faq_html.read, fixtures / "faq_html" / "site").by_id(SHIPPING)
    headings = [section.heading for section in page.sections]

    assert headings.count("How long does standard shipping take?") == 1
    assert headings[-1] == "Do you ship to PO boxes?"
    assert page.sections[-1].text == (
        "Yes. We ship to PO boxes with USPS only; express orders need a street address."
    )


def test_it_drops_navigation_scripts_cookie_banner_forms_and_footer(read, fixtures):
    text = read(faq_html.read, fixtures / "faq_html" / "site").by_id(SHIPPING).text

    for noise in ("cookies", "Accept all", "Skip to content", "Women", "Search", "gtag",
                  "Privacy", "All rights reserved", "Related articles", "Share on Facebook",
                  "enable JavaScript", "cursor:pointer", "Home"):  # fmt: skip
        assert noise not in text


def test_it_reads_schema_org_question_microdata_and_nested_heading_paths(read, fixtures):
    page = read(faq_html.read, fixtures / "faq_html" / "site").by_id(PASSWORDS)

    assert page.title == "Account help - Passwords"  # no <h1>: the <title>
    assert page.location == PASSWORDS  # no canonical URL
    assert [section.heading for section in page.sections] == [
        "Signing in",
        "Signing in > Two-step verification",
        "I forgot my password. What now?",
        "Signing in > Two-step verification",
    ]
    assert page.sections[2].text == (
        "Choose Forgot password on the sign-in page. The reset link is valid for 24 hours."
    )
    assert "Café loyalty accounts" in page.text
    for noise in ("In this section", "Help centre", "1 Harbour St"):
        assert noise not in page.text


def test_it_falls_back_to_the_file_mtime_when_the_page_has_no_date(read, fixtures, tmp_path):
    page_file = tmp_path / "passwords.html"
    shutil.copy(fixtures / "faq_html" / "site" / PASSWORDS, page_file)
    stamp = dt.datetime(2022, 5, 6, 7, 8, 9, tzinfo=dt.UTC).timestamp()
    os.utime(page_file, (stamp, stamp))

    (page,) = read(faq_html.read, page_file).documents

    assert page.external_id == "passwords.html"
    assert page.updated_at == dt.datetime(2022, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


def test_it_reads_the_local_files_a_sitemap_lists(read, fixtures):
    result = read(faq_html.read, fixtures / "faq_html" / "site" / "sitemap.xml")

    assert result.ids == [SHIPPING, PASSWORDS]
    passwords = result.by_id(PASSWORDS)
    assert passwords.updated_at == dt.datetime(2023, 12, 1, 10, 0, tzinfo=dt.UTC)  # <lastmod>
    assert result.errors == [
        DocumentError(
            "https://www.northwind.example/help/gift-cards",
            "listed in the sitemap, but no such local file",
        ),
        DocumentError("../outside.html", "refused: it leads outside the source root"),
    ]


def test_it_reports_a_page_that_is_only_scripts_and_reads_on(read, fixtures, tmp_path):
    shutil.copy(fixtures / "faq_html" / "bad" / "tracking-only.html", tmp_path / "app.html")
    shutil.copy(fixtures / "faq_html" / "site" / SHIPPING, tmp_path / "shipping.html")

    result = read(faq_html.read, tmp_path)

    assert result.ids == ["shipping.html"]
    assert result.errors == [
        DocumentError(
            "app.html", "no readable text once scripts, navigation and boilerplate are removed"
        )
    ]


def test_it_refuses_a_file_that_is_not_a_page_or_sitemap(fixtures):
    with pytest.raises(SourceError, match="neither an HTML page"):
        list(faq_html.read(fixtures / "zendesk_macros" / "macros.json", {}))


def test_it_keeps_a_page_that_one_form_wraps_but_drops_the_search_form(read, tmp_path):
    (tmp_path / "faq.aspx.html").write_text(
        '<html><body><form id="aspnetForm" method="post" action="./faq.aspx">'
        '<input type="hidden" name="__VIEWSTATE" value="dDwtMTA4">'
        '<div class="search"><form action="/search"><label>Search the help centre</label>'
        '<input name="q"></form></div>'
        "<h1>Gift card FAQ</h1><h2>Do gift cards expire?</h2><p>No, never.</p>"
        "</form></body></html>"
    )

    (page,) = read(faq_html.read, tmp_path).documents

    assert page.title == "Gift card FAQ"
    assert page.text == "Do gift cards expire?\nNo, never."
