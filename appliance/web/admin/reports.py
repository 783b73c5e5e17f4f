"""The reports dashboard (/admin/reports), per brand or for the whole box, its CSV export, and
the conversation list every number links to (/admin/conversations, filtered by the same
`Selection` the number was counted with). Everything comes from the reporting service
(appliance/reporting.py), as in the API and the CLI.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask import Response, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance.db.models import AdminUser, Brand
from appliance.outcomes import STAGES, TYPES
from appliance.reporting import DateRange, Figures, Report, Selection, report_csv
from appliance.web import services_of_app
from appliance.web.admin import bp
from appliance.web.admin.auth import READER_ROLES, login_required, signed_in_user
from appliance.web.admin.charts import Chart, Segment, columns, rows
from appliance.web.admin.scope import brand_for, visible_brands

#: Conversations a list shows (the count covers all of them).
LISTED = 200
#: Segments of a day's bar, bottom up.
_DAY_KINDS = (*TYPES, "open")


@dataclass(frozen=True)
class Scope:
    """What a request reports on: a brand (None: every brand) over a range."""

    brand: Brand | None
    period: DateRange

    def link(self, period: DateRange | None = None, **selection: str | int) -> str:
        """The conversation list behind a figure (over `period`, default the whole range)."""
        params: dict[str, Any] = {
            **self.query(period),
            **Selection.parse({k: str(v) for k, v in selection.items()}).query()}
        return url_for("admin.conversations", **params)

    def query(self, period: DateRange | None = None) -> dict[str, str]:
        brand = {"brand": self.brand.slug} if self.brand is not None else {}
        return {**brand, **(period or self.period).query()}

    @property
    def first_day(self) -> dt.date:
        return self.period.since.date()

    @property
    def last_day(self) -> dt.date:
        return (self.period.until - dt.timedelta(microseconds=1)).date()


def _scope(user: AdminUser) -> Scope:
    """The brand and range the request names; a user scoped to a brand always gets theirs."""
    slug = request.args.get("brand") or None
    brand = brand_for(user, slug) if slug else None
    if brand is None and user.brand_id is not None:
        brand = next(iter(visible_brands(user)))
    return Scope(brand, DateRange.parse(request.args.get("since"), request.args.get("until")))


def _day_chart(scope: Scope, report: Report) -> Chart:
    by_day = dict(report.groups)
    bars = []
    for day in scope.period.days():
        label = day.since.date().isoformat()
        figures = by_day.get(label, Figures())
        counts = {**{kind: figures.outcomes[kind] for kind in TYPES}, "open": figures.open}
        bars.append((label[5:], [Segment(
            counts[kind], kind, scope.link(day, outcome=kind),
            f"{label}: {counts[kind]} {kind}") for kind in _DAY_KINDS]))
    return columns("Conversations per day, by outcome", bars)


def _csat_chart(scope: Scope, report: Report) -> Chart:
    return rows("Ratings (latest per conversation)", [
        (f"{score} ★", Segment(count, "bar", scope.link(csat=score), f"{count} rated {score}"))
        for score, count in sorted(report.csat.items(), reverse=True)])


def _funnel_chart(scope: Scope, report: Report) -> Chart:
    return rows("Workflow funnels", [
        (f"{funnel.workflow} · {name}", Segment(count, "bar", scope.link(
            workflow=funnel.workflow, stage=stage), f"{count} {name}"))
        for funnel in report.funnels
        for (stage, name), count in zip(STAGES.items(), funnel.stages, strict=True)])


@bp.get("/reports")
@login_required(*READER_ROLES)
def reports() -> ResponseReturnValue:
    user = signed_in_user()
    scope = _scope(user)
    service = services_of_app().reports
    report = service.summary(scope.brand, scope.period, "day")
    by_workflow = service.summary(scope.brand, scope.period, "workflow")
    return render_template(
        "admin/reports.html", scope=scope, report=report, data=report.as_json(),
        workflows=by_workflow.as_json()["groups"],
        unanswered=service.unanswered(scope.brand, scope.period),
        brands=visible_brands(user) if user.brand_id is None else [],
        charts=[_day_chart(scope, report), _csat_chart(scope, report),
                _funnel_chart(scope, report)],
        link=scope.link, pct=_percent)


@bp.get("/reports.csv")
@login_required(*READER_ROLES)
def reports_csv() -> ResponseReturnValue:
    scope = _scope(signed_in_user())
    report = services_of_app().reports.summary(scope.brand, scope.period,
                                               request.args.get("group_by") or "day")
    name = f"report-{scope.brand.slug if scope.brand else 'box'}-{scope.first_day}-" \
           f"{scope.last_day}.csv"
    return Response(report_csv(report), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/conversations")
@login_required(*READER_ROLES)
def conversations() -> ResponseReturnValue:
    scope = _scope(signed_in_user())
    selection = Selection.parse(request.args)
    brand_ids = [scope.brand.id] if scope.brand is not None else None
    count, listed = services_of_app().reports.conversations(brand_ids, scope.period, selection,
                                                            limit=LISTED)
    return render_template("admin/conversations.html", scope=scope, selection=selection,
                           count=count, conversations=listed, listed=LISTED)


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"
