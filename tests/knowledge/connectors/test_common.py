"""The helpers every connector shares: dates, decoding, Markdown headings, HTML text."""

from __future__ import annotations

import datetime as dt

import pytest

from appliance.knowledge.base import Section
from appliance.knowledge.connectors._common import (
    BadDocument,
    decode_text,
    markdown_sections,
    parse_date,
)
from appliance.knowledge.connectors._html import fragment_text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-02-14T16:05:31Z", dt.datetime(2024, 2, 14, 16, 5, 31, tzinfo=dt.UTC)),
        ("2024-03-18T09:30:00+01:00", dt.datetime(2024, 3, 18, 8, 30, tzinfo=dt.UTC)),
        ("2012-03-07 17:16:48.158", dt.datetime(2012, 3, 7, 17, 16, 48, 158000, tzinfo=dt.UTC)),
        ("2023-12-01", dt.datetime(2023, 12, 1, tzinfo=dt.UTC)),
        ("Wed, 21 Oct 2015 07:28:00 GMT", dt.datetime(2015, 10, 21, 7, 28, tzinfo=dt.UTC)),
        ("Dec 27, 2023", dt.datetime(2023, 12, 27, tzinfo=dt.UTC)),
        ("1710151200.000200", dt.datetime(2024, 3, 11, 10, 0, 0, 200, tzinfo=dt.UTC)),
        (1710151200, dt.datetime(2024, 3, 11, 10, 0, tzinfo=dt.UTC)),
        ("next Tuesday", None),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_it_parses_the_date_shapes_exports_use_into_utc(value, expected):
    assert parse_date(value) == expected


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        ("utf-8", "Rückgabe"),
        ("utf-8-sig", "Rückgabe"),
        ("utf-16", "Rückgabe innerhalb von 30 Tagen"),
        ("cp1252", "La livraison coûte 4,95 € en France métropolitaine. Délais : 3 à 5 jours."),
        ("cp1251", "Возврат товара возможен в течение 30 дней. Деньги вернутся на карту."),
    ],
)
def test_it_decodes_text_in_common_encodings(encoding, text):
    assert decode_text(text.encode(encoding)) == text


def test_it_refuses_bytes_that_are_no_text():
    with pytest.raises(BadDocument, match="unknown encoding"):
        decode_text(bytes(range(256)) * 16)


def test_it_ignores_headings_inside_code_fences_of_either_kind():
    text = "## Setup\n~~~\n# not a heading\n~~~\n```\n## nor this\n```\n## Use\nRun it."

    assert markdown_sections(text) == (
        Section("Setup", "~~~\n# not a heading\n~~~\n```\n## nor this\n```"),
        Section("Use", "Run it."),
    )


def test_it_reads_closing_hashes_and_setext_but_not_a_rule_under_a_list():
    text = "Fees #\n------\nNone.\n\n## Limits ##\n- daily cap\n---\nSee above."

    assert markdown_sections(text) == (
        Section("Fees #", "None."),
        Section("Limits", "- daily cap\n---\nSee above."),
    )


def test_it_drops_the_title_heading_and_heads_a_question_by_itself():
    text = "# Card FAQ\n\n## Cards\n\n### Can I freeze my card?\n\nYes, in the app."

    assert markdown_sections(text, title="Card FAQ") == (
        Section("Can I freeze my card?", "Yes, in the app."),
    )


def test_it_turns_an_html_fragment_into_lines_of_text():
    html = (
        "<p>Hello&nbsp;<b>there</b>!</p><script>track()</script><ul><li>One</li><li>Two<br>"
        "lines</li></ul><table><tr><th>Plan</th><th>Fee</th></tr><tr><td>Basic</td><td>$0</td></tr>"
        "</table><pre>  keep   spacing</pre>"
    )

    assert fragment_text(html) == (
        "Hello there!\n- One\n- Two\nlines\nPlan | Fee\nBasic | $0\n  keep   spacing"
    )
