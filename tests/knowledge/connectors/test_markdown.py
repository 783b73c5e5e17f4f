from __future__ import annotations

import datetime as dt
import os
import shutil

import pytest

from appliance.errors import InvalidRequest
from appliance.knowledge.base import DocumentError, Section
from appliance.knowledge.connectors import markdown


@pytest.fixture
def docs(fixtures):
    return fixtures / "markdown"


def test_it_reads_markdown_and_text_files_under_a_folder(read, docs):
    result = read(markdown.read, docs)

    assert result.ids == [
        "notes.txt",
        "exports/faq-utf16.txt",
        "guides/returns.md",
        "legacy/tarifs-latin1.md",
    ]
    assert result.errors == []


def test_it_splits_by_headings_and_takes_front_matter(read, docs):
    guide = read(markdown.read, docs / "guides" / "returns.md").by_id("returns.md")

    assert guide.title == "Returns & Exchanges Guide"
    assert guide.author == "Dana Whitfield"
    assert guide.updated_at == dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    assert guide.location == "returns.md"
    assert guide.sections == (
        Section("", "Everything an agent needs to handle a return."),
        Section("Return window", "Unworn items can be returned within **60 days** of delivery."),
        Section(
            "Return window > Final sale",
            "Final-sale items cannot be returned, unless they arrived damaged.",
        ),
        Section(
            "Exchanges",
            "Exchanges ship free. Use the `exchange` reason code:\n\n```bash\n"
            "# this is a comment in a shell snippet, not a heading\n"
            "refundctl exchange --order 12345\n```",
        ),
        Section("Store credit", "Store credit never expires."),  # a setext heading
        Section(
            "Can I return a gift?",
            "Yes, with the gift receipt; the refund goes out as store credit.",
        ),
    )
    assert "tags" not in guide.text and "---" not in guide.text


def test_it_decodes_latin_1_and_takes_the_title_from_the_first_heading(read, docs):
    page = read(markdown.read, docs).by_id("legacy/tarifs-latin1.md")

    assert page.title == "Tarifs de livraison"
    assert page.sections == (
        Section("", "La livraison standard coûte 4,95 EUR en France métropolitaine."),
        Section("Délais", "Comptez 3 à 5 jours ouvrés ; la livraison express arrive le lendemain."),
    )


def test_it_decodes_utf_16(read, docs):
    page = read(markdown.read, docs).by_id("exports/faq-utf16.txt")

    assert page.title == "Häufige Fragen"
    assert [section.heading for section in page.sections] == [
        "Wie lange dauert die Rückerstattung?",
        "Kann ich größere Artikel zurückschicken?",
    ]
    assert page.sections[1].text == "Ja, sperrige Artikel holt unser Spediteur kostenlos ab."


def test_it_names_a_file_without_headings_by_its_file_name_and_mtime(read, docs, tmp_path):
    shutil.copy(docs / "notes.txt", tmp_path / "warehouse-notes.txt")
    stamp = dt.datetime(2023, 8, 1, 12, 0, tzinfo=dt.UTC).timestamp()
    os.utime(tmp_path / "warehouse-notes.txt", (stamp, stamp))

    (page,) = read(markdown.read, tmp_path).documents

    assert page.title == "warehouse-notes"
    assert page.updated_at == dt.datetime(2023, 8, 1, 12, 0, tzinfo=dt.UTC)
    assert page.sections == (
        Section(
            "",
            "Warehouse phone line: +1 555 0100 (weekdays 8am-6pm ET).\nAsk for the returns desk.",
        ),
    )


def test_it_reports_a_file_in_no_known_encoding_and_reads_the_rest(read, docs, tmp_path):
    shutil.copy(docs / "guides" / "returns.md", tmp_path / "returns.md")
    (tmp_path / "scrambled.md").write_bytes(bytes(range(256)) * 16)

    result = read(markdown.read, tmp_path)

    assert result.ids == ["returns.md"]
    assert result.errors == [
        DocumentError("scrambled.md", "text in an unknown encoding (or not text at all)")
    ]


def test_it_decodes_with_the_encoding_it_is_told(read, docs):
    page = read(markdown.read, docs / "legacy" / "tarifs-latin1.md", {"encoding": "cp1252"})

    assert "coûte" in page.documents[0].text


def test_it_reports_a_file_that_is_not_in_the_encoding_it_is_told(read, docs):
    result = read(markdown.read, docs / "exports" / "faq-utf16.txt", {"encoding": "utf-8"})

    assert result.errors == [DocumentError("faq-utf16.txt", "cannot be decoded as utf-8")]


def test_it_rejects_an_encoding_option_that_is_not_a_name(docs):
    with pytest.raises(InvalidRequest):
        list(markdown.read(docs, {"encoding": 8}))


def test_it_reports_an_oversized_file_and_an_empty_one(read, tmp_path):
    with (tmp_path / "dump.md").open("wb") as huge:
        huge.truncate(25 * 1024 * 1024)  # sparse: nothing is written
    (tmp_path / "empty.md").write_text("\n\n")

    result = read(markdown.read, tmp_path)

    assert result.errors == [
        DocumentError("dump.md", "26214400 bytes is over the 20971520-byte limit for one document"),
        DocumentError("empty.md", "the file has no text"),
    ]
