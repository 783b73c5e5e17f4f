from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from appliance.knowledge.base import DocumentError, Section
from appliance.knowledge.connectors import jsonl

REPO = Path(__file__).resolve().parents[3]
#: The τ²-bench banking knowledge base (698 Markdown articles), as the demo ships it.
BANKING = REPO / "appliance" / "demo" / "knowledge" / "rho-bank" / "help-center.jsonl"


@pytest.fixture
def articles(fixtures):
    return fixtures / "jsonl" / "articles.jsonl"


def test_it_reads_one_document_per_line_split_by_markdown_headings(read, articles):
    result = read(jsonl.read, articles)

    assert result.ids == ["kb-101", "kb-102", "kb-105"]
    article = result.by_id("kb-101")
    assert article.title == "Card replacement"
    assert article.location == "https://help.northwind.example/articles/kb-101"
    assert article.updated_at == dt.datetime(2024, 1, 15, 9, 0, tzinfo=dt.UTC)
    assert article.sections == (
        Section("", "Lost or damaged cards are replaced free of charge."),
        Section("Ordering a replacement", "1. Freeze the card in the app.\n2. Tap **Replace**."),
        Section(
            "Ordering a replacement > Delivery",
            "Replacement cards arrive in 5-7 business days.",
        ),
    )
    assert article.metadata == {"source_file": "", "jsonl": "articles.jsonl", "line": 1}


def test_it_cites_the_file_field_when_there_is_no_url(read, articles):
    article = read(jsonl.read, articles).by_id("kb-102")

    assert article.location == "kb/fees.md"
    assert article.updated_at is None
    assert article.sections == (Section("", "There is no monthly fee on standard accounts."),)


def test_it_reports_each_bad_line_by_number_and_reads_on(read, articles):
    errors = read(jsonl.read, articles).errors

    assert errors == [
        DocumentError(
            "articles.jsonl:3", "line 3: not valid JSON (Expecting ',' delimiter at column 84)"
        ),
        DocumentError("kb-103", "line 4: missing 'content' (a string)"),
        DocumentError("articles.jsonl:5", "line 5: not a JSON object"),
        DocumentError("kb-101", "line 7: id already used at articles.jsonl:1"),
    ]


def test_it_reports_an_overlong_line_without_holding_it(read, tmp_path, monkeypatch):
    monkeypatch.setattr("appliance.knowledge.base.MAX_FILE_BYTES", 64)
    (tmp_path / "kb.jsonl").write_text(
        '{"id": "a", "title": "A", "content": "' + "x" * 200 + '"}\n'
        '{"id": "b", "title": "B", "content": "short"}\n'
    )

    result = read(jsonl.read, tmp_path)

    assert result.ids == ["b"]
    assert result.errors == [DocumentError("kb.jsonl:1", "line 1: longer than the 64-byte limit")]


def test_it_reads_the_banking_knowledge_base_without_errors(read):
    # Its speed is measured by scripts/bench/knowledge.py, not asserted here.
    result = read(jsonl.read, BANKING)

    assert result.errors == []
    assert len(result.documents) == 698
    first = result.by_id("doc_bank_accounts_bank_accounts_(general)_001")
    assert first.title == "Internal: Opening Personal Checking Accounts"
    assert first.location == "doc_bank_accounts_bank_accounts_(general)_001.json"
    assert [section.heading for section in first.sections] == [
        "Eligibility Requirements",
        "Opening Procedure",
    ]
    assert first.sections[0].text.startswith(
        "To open a personal checking account, ensure all of the following are true:\n"
        "1. The customer is verified."
    )
