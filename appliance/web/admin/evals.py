"""A brand's evals page: the latest run per suite with pass^1..k, each suite's pass^1 trend over
the recent runs (a small server-rendered SVG with the same numbers in the table beside it), the
quarantined cases, the latest failures with why, and "Run now" (it_admin, cx_editor).

"Run now" queues a run; the scheduler's `evals.requested` job runs it within a minute. A run
plays every case through the engine (minutes), which a web worker must never wait on.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance.db.models import EvalRun
from appliance.errors import Conflict
from appliance.evals.history import QUEUED, RUNNING
from appliance.web import services_of_app
from appliance.web.admin import bp
from appliance.web.admin.auth import EDITOR_ROLES, READER_ROLES, login_required, signed_in_user
from appliance.web.admin.scope import brand_for

#: How many runs the trend and the history table show.
RECENT_RUNS = 20
CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 240, 60, 4


@dataclass(frozen=True)
class Trend:
    """One suite's pass^1 over the recent runs, oldest first, and its chart's points."""

    suite: str
    values: list[tuple[int, float]]

    @property
    def points(self) -> str:
        """The SVG polyline's points: x by run order, y 0 at the top for pass^1 = 1."""
        count = len(self.values)
        step = (CHART_WIDTH - 2 * CHART_PAD) / max(count - 1, 1)
        return " ".join(
            f"{CHART_PAD + i * step:.1f},{CHART_PAD + (1 - v) * (CHART_HEIGHT - 2 * CHART_PAD):.1f}"
            for i, (_, v) in enumerate(self.values))

    @property
    def label(self) -> str:
        shown = ", ".join(f"run {run_id}: {value:.2f}" for run_id, value in self.values)
        return f"pass^1 of {self.suite} over the last {len(self.values)} runs: {shown}"


@bp.get("/brands/<slug>/evals")
@login_required(*READER_ROLES)
def evals(slug: str) -> ResponseReturnValue:
    user = signed_in_user()
    brand = brand_for(user, slug)
    services = services_of_app()
    runs: list[EvalRun] = services.evals.runs(brand, RECENT_RUNS)
    latest = services.evals.latest(brand)
    trends = {suite: Trend(suite, [(run.id, value) for run, value in points])
              for suite, points in services.evals.trend(runs).items()}
    suites = services.suites.suites(brand)
    quarantined = [(suite.name, case.name, case.quarantine) for suite in suites
                   for case in suite.cases if case.quarantine]
    ks = sorted(latest.scores["pass_hat_k"], key=int) if latest and latest.scores else []
    return render_template(
        "admin/evals.html", brand=brand, runs=runs, latest=latest, ks=ks, trends=trends,
        quarantined=quarantined, alerts=services.evals.alerts([brand.id]),
        suite_names=[suite.name for suite in suites],
        waiting=[run for run in runs if run.status in (QUEUED, RUNNING)],
        can_run=user.role in EDITOR_ROLES, chart=(CHART_WIDTH, CHART_HEIGHT),
    )


@bp.post("/brands/<slug>/evals/run")
@login_required(*EDITOR_ROLES)
def run_evals(slug: str) -> ResponseReturnValue:
    """Queue a run of the brand's suites (or one) for the scheduler."""
    user = signed_in_user()
    brand = brand_for(user, slug)
    services = services_of_app()
    suite = request.form.get("suite") or None
    names = {record.name for record in services.suites.records(brand)}
    if not names or (suite is not None and suite not in names):
        flash(f"Not queued: {brand.name} has no suite {suite or ''}".rstrip() + ".", "error")
        return redirect(url_for("admin.evals", slug=brand.slug))
    try:
        run = services.evals.queue(brand, user.username, suite, request.remote_addr)
    except Conflict as exc:
        flash(f"Not queued: {exc.message}.", "error")
    else:
        flash(f"Run {run.id} queued: the scheduler starts it within a minute; reload this page "
              "to see it.", "success")
    return redirect(url_for("admin.evals", slug=brand.slug))
