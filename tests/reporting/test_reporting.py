"""The reporting service (appliance/reporting.py), `GET /v1/metrics/summary` and `appliance
report` over a scripted day of the demo brands (tests/reporting_support.py), on real SQLite
(and PostgreSQL when configured) with real turns of the tiny model."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from reporting_support import BRAND, OTHER, Day, records_of, script_day

from appliance.cli import cli
from appliance.cli.context import CliContext
from appliance.errors import InvalidRequest
from appliance.outcomes import STAGES, TYPES
from appliance.reporting import DateRange, Selection, report_csv
from appliance.services import Services


@pytest.fixture
def day(services: Services, client: FlaskClient, seeded: dict[str, Any]) -> Day:
    return script_day(services, client, seeded)


def test_the_report_equals_what_the_outcomes_ledger_and_handoffs_say(day: Day) -> None:
    reports = day.services.reports
    report = reports.summary(day.brand, day.period)
    found, recorded = report.as_json(), records_of(day)
    totals = found["totals"]

    assert totals["conversations"] == recorded.conversations == 10
    assert totals["outcomes"] == {kind: recorded.outcomes[kind] for kind in TYPES}
    assert totals["open"] == 1 and totals["ended"] == sum(recorded.outcomes.values())
    assert totals["involved"] == recorded.involved
    assert {how: n for how, n in totals["resolutions"].items() if n} == \
        dict(recorded.resolutions)
    assert totals["outcomes"]["escalated"] == recorded.escalated_conversations == 1
    assert {r["reason"]: r["count"] for r in found["handoff_reasons"]} == \
        dict(recorded.handoff_reasons)
    assert (totals["outcomes"]["saved"], totals["outcomes"]["upsell"]) == (1, 1)
    assert Decimal(totals["upsell_value"]) == recorded.upsell_value == 300
    assert found["csat"]["distribution"] == {
        str(score): Counter(day.ratings.values())[score] for score in range(1, 6)}
    assert found["csat"]["average"] == round(sum(day.ratings.values()) / len(day.ratings), 2)

    billing = found["billing"]
    resolutions = sum(totals["outcomes"][kind] for kind in ("resolved", "saved", "upsell"))
    assert Decimal(billing["billed"]) == recorded.billed
    assert Decimal(billing["billable_this_period"]) == recorded.settled_this_month > 0
    assert Decimal(billing["cost_per_resolution"]) == \
        (recorded.billed / resolutions).quantize(Decimal("0.01"))
    assert Decimal(billing["savings"]) == Decimal("4.20") * resolutions - recorded.billed

    funnels = {f["workflow"]: tuple(f[stage] for stage in STAGES.values())
               for f in found["funnels"]}
    assert funnels["cancel_subscription"] == funnels["apply_card"] == (1, 1, 1, 1)
    assert funnels["cancel_order"] == (1, 1, 0, 0)
    rates = totals["rates"]
    assert rates["escalation"] == round(1 / totals["involved"], 4)
    assert rates["resolution"] == round(resolutions / totals["involved"], 4)


def test_every_figure_links_to_exactly_the_conversations_it_counts(day: Day) -> None:
    reports, ids = day.services.reports, [day.brand.id]
    found = reports.summary(day.brand, day.period).as_json()

    def listed(**selection: Any) -> int:
        return reports.conversations(ids, day.period, Selection(**selection))[0]

    assert listed() == found["totals"]["conversations"]
    for name in ("open", "ended", "involved"):
        assert listed(outcome=name) == found["totals"][name]
    for kind in TYPES:
        assert listed(outcome=kind) == found["totals"]["outcomes"][kind]
    for entry in found["handoff_reasons"]:
        assert listed(reason=entry["reason"]) == entry["count"]
    for score, count in found["csat"]["distribution"].items():
        assert listed(csat=int(score)) == count
    for funnel in found["funnels"]:
        for stage, name in STAGES.items():
            assert listed(workflow=funnel["workflow"], stage=stage) == funnel[name]


def test_the_box_wide_report_adds_up_the_brands(day: Day) -> None:
    reports = day.services.reports
    box = reports.summary(None, day.period).as_json()
    each = [reports.summary(day.services.brands.get(slug), day.period).as_json()
            for slug in (BRAND, OTHER)]

    assert box["billing"] is None and each[1]["billing"] is None  # rho-bank: no contract
    assert box["totals"]["conversations"] == sum(r["totals"]["conversations"] for r in each)
    assert box["totals"]["outcomes"]["escalated"] == 2
    for kind in TYPES:
        assert box["totals"]["outcomes"][kind] == sum(r["totals"]["outcomes"][kind]
                                                      for r in each)


def test_the_api_and_the_cli_serve_the_same_figures_by_day_and_workflow(
    day: Day, client: FlaskClient, seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = {"Authorization": f"Bearer {seeded['keys'][BRAND]}"}
    query = day.period.query()
    expected = day.services.reports.summary(day.brand, day.period, "workflow").as_json()
    monkeypatch.setattr(CliContext, "services", property(lambda self: day.services))

    by_workflow = client.get("/v1/metrics/summary", headers=key,
                             query_string={**query, "group_by": "workflow"})
    by_day = client.get("/v1/metrics/summary", headers=key,
                        query_string={**query, "group_by": "day"}).get_json()
    printed = CliRunner().invoke(cli, ["report", "--brand", BRAND, "--since", query["since"],
                                       "--until", query["until"], "--group-by", "workflow",
                                       "--json"])
    table = CliRunner().invoke(cli, ["report", "--brand", BRAND, "--since", query["since"],
                                     "--until", query["until"]])

    assert by_workflow.status_code == 200, by_workflow.get_data(as_text=True)
    assert by_workflow.get_json() == expected
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == expected
    groups = {g["key"]: g for g in expected["groups"]}
    assert groups["apply_card"]["outcomes"]["upsell"] == 1
    assert sum(g["conversations"] for g in groups.values()) == \
        expected["totals"]["conversations"]
    assert sum(g["conversations"] for g in by_day["groups"]) == \
        expected["totals"]["conversations"]
    days = {span.since.date().isoformat() for span in day.period.days()}
    assert [g["key"] for g in by_day["groups"]] == sorted(g["key"] for g in by_day["groups"])
    assert {g["key"] for g in by_day["groups"]} <= days
    assert table.exit_code == 0, table.output
    assert re.search(r"^all\s+outcomes\.upsell\s+1$", table.output, re.M)
    assert "billing.billable_this_period" in report_csv(
        day.services.reports.summary(day.brand, day.period))


@pytest.mark.parametrize(("params", "param"), [
    ({"since": "2026-12-07", "until": "2026-12-01"}, "since"),
    ({"since": "2025-01-01", "until": "2026-12-01"}, "until"),
    ({"since": "yesterday"}, "since"),
    ({"group_by": "week"}, "group_by"),
])
def test_a_bad_range_is_a_400_in_the_one_error_shape(
    client: FlaskClient, seeded: dict[str, Any], params: dict[str, str], param: str
) -> None:
    response = client.get("/v1/metrics/summary", query_string=params,
                          headers={"Authorization": f"Bearer {seeded['keys'][BRAND]}"})

    body = response.get_json()
    assert response.status_code == 400, body
    assert set(body) == {"error", "request_id"}
    assert (body["error"]["type"], body["error"]["param"]) == ("invalid_request_error", param)
    assert response.headers["X-Request-ID"] == body["request_id"]


def test_a_bare_date_until_counts_that_whole_day() -> None:
    period = DateRange.parse("2026-12-01", "2026-12-07")

    assert (period.since, period.until) == (dt.datetime(2026, 12, 1), dt.datetime(2026, 12, 8))
    assert period.period == "2026-12"
    assert DateRange.parse("2026-01-01", "2027-01-01").until == dt.datetime(2027, 1, 2)
    with pytest.raises(InvalidRequest):
        DateRange.parse("2026-01-01", "2027-01-02")
