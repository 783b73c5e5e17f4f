"""The release gate in the Studio: "Check evals" runs the suites the workflow's draft affects,
on the draft and on what is live, and the page shows the verdict with the failing cases
before the publish button is enabled. The verdict is kept in the (signed) Flask session per
brand and workflow and is used by the publish only while the draft and the live set it was
made on are unchanged; otherwise the publish runs the gate itself. A refused draft offers
it_admins a publish with a reason (audited).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import flash, redirect, session, url_for
from flask.typing import ResponseReturnValue

from appliance.db.models import Brand, Workflow, WorkflowVersion
from appliance.errors import ConfigError
from appliance.evals.gate import GateResult, ReleaseGate
from appliance.web import services_of_app
from appliance.web.admin import bp
from appliance.web.admin.auth import EDITOR_ROLES, login_required, signed_in_user
from appliance.web.admin.scope import brand_for
from appliance.workflows.service import DRAFT

#: What the session keeps of a verdict: a cookie holds a few kilobytes.
KEPT_FAILURES, KEPT_WHY = 6, 200


@dataclass(frozen=True)
class GateView:
    """The gate's panel: the draft it concerns and its last verdict, if still current."""

    draft: WorkflowVersion | None
    result: GateResult | None
    #: Failing cases the session did not keep.
    omitted: int = 0


def _key(brand: Brand, name: str) -> str:
    return f"gate:{brand.id}:{name}"


def _draft(workflow: Workflow) -> WorkflowVersion | None:
    latest = services_of_app().workflows.version(workflow)
    return latest if latest.status == DRAFT else None


def checked_result(brand: Brand, workflow: Workflow) -> GateView:
    """The verdict on the workflow's draft kept in this session, when it is still current."""
    draft = _draft(workflow)
    kept = session.get(_key(brand, workflow.name))
    if draft is None or not isinstance(kept, dict):
        return GateView(draft, None)
    result = GateResult.from_dict(kept)
    if result.basis != ReleaseGate(services_of_app()).workflow_basis(brand, draft):
        return GateView(draft, None)
    return GateView(draft, result, int(kept.get("omitted", 0)))


def keep(brand: Brand, name: str, result: GateResult) -> None:
    session[_key(brand, name)] = result.as_dict(KEPT_FAILURES, KEPT_WHY)


@bp.post("/brands/<slug>/workflows/<name>/evals")
@login_required(*EDITOR_ROLES)
def workflow_check_evals(slug: str, name: str) -> ResponseReturnValue:
    """Run the release gate on the draft and show its verdict on the workflow's page."""
    found = brand_for(signed_in_user(), slug)
    workflow = services_of_app().workflows.get(found, name)
    draft = _draft(workflow)
    if draft is None:
        flash("There is no draft to check: save one first.", "info")
    else:
        try:
            result = ReleaseGate(services_of_app()).check_workflow(found, draft)
        except ConfigError as exc:  # test systems unreachable: an error, never a fail
            flash(f"Evals not run: {exc.message}", "error")
        else:
            keep(found, name, result)
            flash(f"Evals checked: {'passed' if result.passed else 'refused'}.",
                  "success" if result.passed else "error")
    return redirect(url_for("admin.workflow", slug=found.slug, name=name, _anchor="release-gate"))
