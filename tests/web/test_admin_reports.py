"""The reports dashboard (/admin/reports) over a scripted day of the demo brands
(tests/reporting_support.py): its numbers are what the outcomes, the ledger and the handoffs
say; every number links to exactly the conversations it counts; the CSV export carries the
same figures; brand users see only their brand."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from flask.testing import FlaskClient
from reporting_support import BRAND, Day, records_of, script_day

from appliance.reporting import ROW_COLUMNS, report_rows
from appliance.services import Services

_LINKED = re.compile(r'data-figure="([^"]+)" href="([^"]+)">([^<]*)<')
_SHOWN = re.compile(r'data-figure="([^"]+)">([^<]*)<')
_COUNT = re.compile(r'data-count="(\d+)"')


@pytest.fixture
def day(services: Services, client: FlaskClient, seeded: dict[str, Any]) -> Day:
    return script_day(services, client, seeded)


def _page(client: FlaskClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return response.get_data(as_text=True)


def _report_url(day: Day, brand: str | None = BRAND) -> str:
    query = "&".join(f"{k}={v}" for k, v in day.period.query().items())
    return f"/admin/reports?{query}" + (f"&brand={brand}" if brand else "")


def test_the_dashboard_shows_what_the_outcomes_ledger_and_handoffs_say(
    day: Day, admin_client: FlaskClient
) -> None:
    page = _page(admin_client, _report_url(day))
    linked = {name: (html.unescape(href), int(value))
              for name, href, value in _LINKED.findall(page)}
    shown = dict(_SHOWN.findall(page))
    recorded = records_of(day)

    assert linked["conversations"][1] == recorded.conversations
    for kind, count in recorded.outcomes.items():
        assert linked[f"outcomes.{kind}"][1] == count, kind
    assert linked["involved"][1] == recorded.involved
    for how, count in recorded.resolutions.items():
        assert linked[f"resolutions.{how}"][1] == count, how
    for reason, count in recorded.handoff_reasons.items():
        assert linked[f"handoff_reasons.{reason}"][1] == count, reason
    assert Decimal(shown["upsell_value"]) == recorded.upsell_value
    assert Decimal(shown["billing.billed"].split()[0]) == recorded.billed
    assert Decimal(shown["billing.billable_this_period"].split()[0]) == \
        recorded.settled_this_month
    assert linked["funnel.cancel_order.identity"][1] == 1
    assert linked["funnel.cancel_order.confirmed"][1] == 0
    assert page.count("<svg") == 3 and "<script" not in page
    # Every number opens the list of exactly the conversations it counts.
    for name, (href, value) in linked.items():
        listed = _page(admin_client, href)
        assert int(_COUNT.search(listed).group(1)) == value, name  # type: ignore[union-attr]
        assert listed.count('href="/admin/conversations/conv_') == value, name


def test_the_csv_export_carries_the_same_figures(day: Day, admin_client: FlaskClient) -> None:
    response = admin_client.get(_report_url(day).replace("/admin/reports?",
                                                         "/admin/reports.csv?"))

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    exported = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    expected = report_rows(day.services.reports.summary(day.brand, day.period, "day"))
    assert exported == [list(ROW_COLUMNS), *[list(row) for row in expected]]
    figures = {(group, name): value for group, name, value in exported[1:]}
    assert figures[("all", "conversations")] == str(records_of(day).conversations)


def test_the_box_wide_report_counts_every_brand(day: Day, admin_client: FlaskClient) -> None:
    box = dict((name, int(value)) for name, _, value in _LINKED.findall(
        _page(admin_client, _report_url(day, brand=None))))

    assert box["outcomes.escalated"] == 2  # one handoff in each demo brand
    assert "billing.billed" not in box


def test_a_brand_user_sees_only_their_brand(
    day: Day, sign_in_as: Callable[..., FlaskClient]
) -> None:
    viewer = sign_in_as("viewer", "rho-bank")

    own = _page(viewer, _report_url(day, brand=None))
    other = viewer.get(_report_url(day))

    assert "Reports: Rho-Bank" in html.unescape(own) and "Every brand" not in own
    assert other.status_code == 404


def test_a_bad_range_is_refused_naming_it(admin_client: FlaskClient,
                                          seeded: dict[str, Any]) -> None:
    backwards = admin_client.get("/admin/reports?since=2026-12-07&until=2026-12-01")
    too_long = admin_client.get("/admin/conversations?since=2025-01-01&until=2026-12-01")
    bad_filter = admin_client.get("/admin/conversations?csat=9")

    assert backwards.status_code == too_long.status_code == bad_filter.status_code == 400
    assert "since" in backwards.get_data(as_text=True)
    assert "366 days" in too_long.get_data(as_text=True)
