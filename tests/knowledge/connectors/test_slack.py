from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest

from appliance.errors import InvalidRequest
from appliance.knowledge.base import DocumentError, Section, SourceError
from appliance.knowledge.connectors import slack

GIFT_CARDS = "support/1710151200.000200"
HEADS_UP = "support/1710158400.000700"
SWIMSUIT = "returns/1710238500.000200"


@pytest.fixture
def export(fixtures):
    return fixtures / "slack" / "export"


def test_it_makes_one_document_per_thread(read, export):
    result = read(slack.read, export)

    assert result.ids == [GIFT_CARDS, HEADS_UP, SWIMSUIT]
    assert result.errors == []


def test_it_rebuilds_a_thread_across_day_files_with_real_names(read, export):
    thread = read(slack.read, export).by_id(GIFT_CARDS)

    assert thread.sections == (
        Section(
            "",
            "Dana Whitfield: A customer in Canada asks whether we ship gift cards internationally "
            "& if customs fees apply. Anyone know?",
        ),
        Section(
            "",
            "Marco R.: Digital gift cards ship anywhere by email. Physical cards only go to US "
            "addresses, see the gift card page (https://help.northwind.example/gift-cards).",
        ),
        Section(
            "",
            "Priya Natarajan: Customs fees are the recipient's responsibility, we say so in the "
            "checkout terms.",
        ),
        Section(
            "",
            "Marco R.: Summary for everyone: digital gift cards work worldwide, physical ones are "
            "US-only.",
        ),
    )
    assert thread.title == (
        "A customer in Canada asks whether we ship gift cards internationally & if…"
    )
    assert thread.author == "Dana Whitfield"
    assert thread.location == GIFT_CARDS
    # The last reply was posted the next day, in 2024-03-12.json.
    assert thread.updated_at == dt.datetime(2024, 3, 12, 9, 30, 0, 500, tzinfo=dt.UTC)
    assert thread.metadata == {
        "channel": "support",
        "participants": ["Dana Whitfield", "Marco R.", "Priya Natarajan"],
        "replies": 3,
    }


def test_it_drops_joins_leaves_topics_and_bot_messages(read, export):
    text = "\n".join(doc.text for doc in read(slack.read, export).documents)

    for noise in ("has joined", "has left", "set the channel topic", "Ticket #48213",
                  "Daily digest"):  # fmt: skip
        assert noise not in text


def test_it_undoes_slack_markup(read, export):
    message = read(slack.read, export).by_id(HEADS_UP)

    assert message.sections == (
        Section(
            "",
            "Dana Whitfield: Heads up @here: @Marco R. moved refund questions to #returns. "
            "Escalations still go to leads@northwind.example; orders < $20 never need approval.",
        ),
    )
    assert message.metadata["replies"] == 0


def test_it_limits_reading_to_the_channels_asked_for(read, export):
    result = read(slack.read, export, {"channels": ["returns"]})

    assert result.ids == [SWIMSUIT]
    assert result.by_id(SWIMSUIT).text == (
        "Dana Whitfield: Can we refund a final-sale swimsuit if it arrived damaged?\n\n"
        "Marco R.: Yes: damaged on arrival overrides final sale. Ask for a photo first."
    )


def test_it_rejects_channels_the_export_does_not_have(export):
    with pytest.raises(InvalidRequest, match="no such channel in this export: billing"):
        list(slack.read(export, {"channels": ["returns", "billing"]}))


def test_it_links_threads_when_given_the_workspace_url(read, export):
    options = {"workspace_url": "https://northwind.slack.com"}

    thread = read(slack.read, export, options).by_id(SWIMSUIT)

    assert thread.location == "https://northwind.slack.com/archives/C04RETURNS1/p1710238500000200"


def test_it_reports_a_day_file_that_is_not_json_and_reads_the_rest(read, export, tmp_path):
    copy = tmp_path / "export"
    shutil.copytree(export, copy)
    (copy / "support" / "2024-03-12.json").write_text('[{"type": "message", "text": "cut off')

    result = read(slack.read, copy)

    assert result.ids == [GIFT_CARDS, HEADS_UP, SWIMSUIT]
    assert len(result.by_id(GIFT_CARDS).sections) == 2  # the replies of the 12th are lost
    assert [error.external_id for error in result.errors] == ["support/2024-03-12.json"]
    assert result.errors[0].message.startswith("not valid JSON")


def test_it_refuses_a_channel_folder_outside_the_export(read, tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "2024-01-02.json").write_text(
        json.dumps([{"type": "message", "user": "U1", "text": "secret", "ts": "1704153600.000100"}])
    )
    (export / "channels.json").write_text(json.dumps([{"id": "C1", "name": "../elsewhere"}]))

    result = read(slack.read, export)

    assert result.documents == []
    assert result.errors == [
        DocumentError("../elsewhere", "refused: it leads outside the source root")
    ]


def test_it_reads_an_export_with_no_channels_as_empty(read, tmp_path):
    (tmp_path / "channels.json").write_text("[]")
    (tmp_path / "users.json").write_text("[]")

    assert read(slack.read, tmp_path).documents == []


def test_it_raises_source_error_for_a_folder_that_is_not_an_export(tmp_path):
    (tmp_path / "general").mkdir()
    (tmp_path / "general" / "2024-01-01.json").write_text("[]")

    with pytest.raises(SourceError, match=r"no channels\.json"):
        list(slack.read(tmp_path, {}))


def test_it_raises_source_error_when_channels_json_is_broken(tmp_path):
    (tmp_path / "channels.json").write_text("{not json")

    with pytest.raises(SourceError, match=r"channels\.json cannot be read"):
        list(slack.read(tmp_path, {}))
