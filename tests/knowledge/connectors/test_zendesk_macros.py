from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from appliance.knowledge.base import DocumentError, Section, SourceError
from appliance.knowledge.connectors import zendesk_macros

REFUND = "360011223301"
WHERE_IS_MY_ORDER = "360011223302"
ESCALATE = "360011223303"


@pytest.fixture
def macros(fixtures):
    return fixtures / "zendesk_macros" / "macros.json"


def test_it_reads_active_macros_with_reply_text_one_document_each(read, macros):
    result = read(zendesk_macros.read, macros)

    # 360011223304 is inactive, 360011223305 only sets ticket fields.
    assert result.ids == [REFUND, WHERE_IS_MY_ORDER, ESCALATE]
    assert result.errors == [DocumentError("360011223306", "macro without a title")]


def test_it_converts_an_html_comment_to_text_and_keeps_the_subject(read, macros):
    macro = read(zendesk_macros.read, macros).by_id(REFUND)

    assert macro.title == "Returns::Refund approved"
    assert macro.sections == (
        Section("Subject", "Your refund is on its way"),
        Section(
            "",
            "Hi {{ticket.requester.first_name}},\n"
            "Good news: your refund of {{ticket.ticket_field_option_title_360000123}} has been "
            "approved.\n"
            "- Card refunds take 5\N{EN DASH}7 business days.\n"
            "- PayPal refunds take 1\N{EN DASH}2 days.\n"
            "Thanks for shopping with Northwind!",
        ),
    )
    assert macro.updated_at == dt.datetime(2024, 2, 14, 16, 5, 31, tzinfo=dt.UTC)
    assert macro.location == "https://northwind.zendesk.com/api/v2/macros/360011223301.json"
    assert macro.metadata == {
        "description": "Use once the warehouse has scanned the return",
        "category": "Returns",
        "public_reply": True,
    }


def test_it_reads_a_comment_given_as_channel_and_text(read, macros):
    macro = read(zendesk_macros.read, macros).by_id(WHERE_IS_MY_ORDER)

    assert macro.sections == (
        Section(
            "",
            "Hi {{ticket.requester.first_name}},\n\nYou can track your parcel at "
            "https://northwind.example/track with your order number. Parcels usually arrive "
            "within 5 business days.",
        ),
    )
    assert macro.metadata["description"] == ""


def test_it_marks_internal_notes_as_not_public(read, macros):
    macro = read(zendesk_macros.read, macros).by_id(ESCALATE)

    assert macro.metadata["public_reply"] is False
    assert macro.text.startswith("Escalating: customer reports a charge")


def test_it_reads_a_folder_of_result_pages_and_reports_invalid_json(read, macros, tmp_path):
    shutil.copy(macros, tmp_path / "macros-page-1.json")
    (tmp_path / "macros-page-2.json").write_text('{"macros": [{"id": 1, "title": "Cut')
    (tmp_path / "tickets.json").write_text(json.dumps({"tickets": []}))

    result = read(zendesk_macros.read, tmp_path)

    assert result.ids == [REFUND, WHERE_IS_MY_ORDER, ESCALATE]
    assert [error.external_id for error in result.errors] == [
        "360011223306",
        "macros-page-2.json",
        "tickets.json",
    ]
    assert result.errors[1].message.startswith("not valid JSON")
    assert result.errors[2].message == 'not a Zendesk macros listing (no "macros" list)'


def test_it_refuses_a_file_that_is_not_json(fixtures):
    with pytest.raises(SourceError, match="not a Zendesk macros JSON file"):
        list(zendesk_macros.read(fixtures / "markdown" / "notes.txt", {}))
