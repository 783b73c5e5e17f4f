"""The Agent Studio: a brand's workflows built without code. A list with each workflow's
results, an editor (YAML and a form for the common fields), versions with diff, publish,
rollback and disable, and a test chat that runs the draft. Readers see; editors act.

Everything goes through `WorkflowService`, as the CLI's `appliance workflows ...` does, so a
change made here is validated and audited the same way. The YAML ↔ form merging and the
results per workflow live in `studio_yaml.py` and the reporting service; the test chat in
`studio_sandbox.py`; the brand's tools and slot formats have their page in `studio_tools.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance.db.models import AdminUser, Brand, Workflow, WorkflowVersion
from appliance.errors import ConfigError, Conflict, InvalidRequest, PermissionDenied
from appliance.evals.gate import FORCE_ROLE, Force, GateRefused, ReleaseGate
from appliance.reporting import DateRange
from appliance.web import services_of_app
from appliance.web.admin import bp
from appliance.web.admin.auth import EDITOR_ROLES, READER_ROLES, login_required, signed_in_user
from appliance.web.admin.scope import brand_for
from appliance.web.admin.studio_gate import checked_result, keep
from appliance.web.admin.studio_sandbox import sandbox_of, working_version
from appliance.web.admin.studio_yaml import (
    STARTER,
    check_new,
    diff_rows,
    errors_of,
    fields_again,
    fields_of,
    merge_fields,
    posted_fields,
)
from appliance.workflows.schema import LEVELS, OUTCOMES
from appliance.workflows.service import PUBLISHED, RETIRED, WorkflowService

NOTE_MAX = 500


def _workflows() -> WorkflowService:
    return services_of_app().workflows


@dataclass(frozen=True)
class Row:
    """A workflow in the list: the row and its latest version."""

    workflow: Workflow
    latest: WorkflowVersion

    @property
    def title(self) -> str:
        return str(self.latest.definition.get("title", ""))


def can_roll_back(workflow: Workflow, versions: list[WorkflowVersion]) -> bool:
    """Whether `rollback` has an earlier published version to go back to."""
    current = workflow.published_version
    return current is not None and any(
        v.status == RETIRED and v.published_at is not None and v.number < current
        for v in versions)


@bp.get("/brands/<slug>/workflows")
@login_required(*READER_ROLES)
def workflows(slug: str) -> ResponseReturnValue:
    found = brand_for(signed_in_user(), slug)
    service = _workflows()
    rows = [Row(workflow, service.version(workflow)) for workflow in service.all(found)]
    # How each workflow does with customers: the reports' figures per workflow over the
    # default range, so the Studio and the dashboard never disagree.
    period = DateRange.parse(None, None)
    report = services_of_app().reports.summary(found, period, "workflow")
    return render_template(
        "admin/workflows.html", brand=found, rows=rows, period=period,
        metrics={g["key"]: g for g in report.as_json()["groups"]},
        toolset=service.toolset(found), editor_roles=EDITOR_ROLES,
    )


def _render_editor(
    brand: Brand, workflow: Workflow | None, *, source: str, fields: dict[str, str],
    initial: dict[str, str], shown: WorkflowVersion | None = None,
    errors: list[dict[str, Any]] | None = None, note: str = "",
) -> str:
    service = _workflows()
    versions = service.versions(workflow) if workflow is not None else []
    return render_template(
        "admin/workflow.html", brand=brand, workflow=workflow, versions=versions,
        latest=versions[0] if versions else None, shown=shown,
        working=working_version(workflow) if workflow is not None else None, source=source,
        fields=fields, initial=initial, errors=errors or [], note=note, note_max=NOTE_MAX,
        outcomes=OUTCOMES, levels=LEVELS,
        can_roll_back=workflow is not None and can_roll_back(workflow, versions),
        toolset=service.toolset(brand), editor_roles=EDITOR_ROLES,
        sandbox=sandbox_of(brand, workflow) if workflow is not None else None,
        gate=checked_result(brand, workflow) if workflow is not None else None,
        force_role=FORCE_ROLE,
    )


def _save(brand: Brand, user: AdminUser, workflow: Workflow | None) -> ResponseReturnValue:
    """Save the posted YAML (with the form fields the author changed merged in) as a draft;
    on a rejected definition show the editor again with the errors, having saved nothing."""
    source = request.form.get("source", "").replace("\r\n", "\n")
    fields, initial = posted_fields(request.form), posted_fields(request.form, "initial_")
    note = request.form.get("note", "").replace("\x00", "").strip()[:NOTE_MAX]
    source, merged = merge_fields(source, fields, initial)
    name = workflow.name if workflow is not None else None
    try:
        if workflow is None:
            check_new(source, {w.name for w in _workflows().all(brand)})
        version = _workflows().save_draft(brand, source, user.username, note=note or None,
                                          name=name)
    except InvalidRequest as exc:
        shown, shown_initial = fields_again(source, fields, initial, merged)
        return _render_editor(brand, workflow, source=source, fields=shown,
                              initial=shown_initial, errors=errors_of(exc, source),
                              note=note), 400
    flash(f"Saved version {version.number} as a draft: try it in the test chat, then publish.",
          "success")
    return redirect(url_for("admin.workflow", slug=brand.slug, name=version.workflow.name))


@bp.get("/brands/<slug>/workflows/new")
@login_required(*EDITOR_ROLES)
def workflow_new(slug: str) -> ResponseReturnValue:
    found = brand_for(signed_in_user(), slug)
    fields = fields_of(STARTER)
    return _render_editor(found, None, source=STARTER, fields=fields, initial=fields)


@bp.post("/brands/<slug>/workflows/new")
@login_required(*EDITOR_ROLES)
def workflow_create(slug: str) -> ResponseReturnValue:
    user = signed_in_user()
    return _save(brand_for(user, slug), user, None)


@bp.get("/brands/<slug>/workflows/<name>")
@login_required(*READER_ROLES)
def workflow(slug: str, name: str) -> ResponseReturnValue:
    """The editor on the working version (the draft, else the published one), or on
    `?version=N`; saving stores the text as the draft."""
    found = brand_for(signed_in_user(), slug)
    service = _workflows()
    found_workflow = service.get(found, name)
    number = request.args.get("version", type=int)
    shown = (service.version(found_workflow, number) if number is not None
             else working_version(found_workflow))
    fields = fields_of(shown.source)
    return _render_editor(found, found_workflow, source=shown.source, fields=fields,
                          initial=fields, shown=shown)


@bp.post("/brands/<slug>/workflows/<name>")
@login_required(*EDITOR_ROLES)
def workflow_save(slug: str, name: str) -> ResponseReturnValue:
    user = signed_in_user()
    found = brand_for(user, slug)
    return _save(found, user, _workflows().get(found, name))


def _back(brand: Brand, name: str) -> ResponseReturnValue:
    return redirect(url_for("admin.workflow", slug=brand.slug, name=name))


@bp.post("/brands/<slug>/workflows/<name>/publish")
@login_required(*EDITOR_ROLES)
def workflow_publish(slug: str, name: str) -> ResponseReturnValue:
    """Publish the draft through the release gate: the verdict "Check evals" kept, while
    current, else a new run; `force` with a `reason` publishes past a refusal (it_admin)."""
    user = signed_in_user()
    found = brand_for(user, slug)
    service = _workflows()
    target = service.version(service.get(found, name), request.form.get("number", type=int))
    if target.status == PUBLISHED:
        flash(f"Version {target.number} is already published.", "info")
        return _back(found, name)
    force = (Force(request.form.get("reason", "").strip(), user.role)
             if request.form.get("force") else None)
    try:
        _, result = ReleaseGate(services_of_app()).publish_workflow(
            found, name, user.username, number=target.number, force=force,
            checked=checked_result(found, target.workflow).result)
    except GateRefused as exc:
        keep(found, name, exc.result)
        flash("Not published: the release gate refused it (see the evals below).", "error")
    except (Conflict, InvalidRequest, PermissionDenied, ConfigError) as exc:
        # e.g. a tool no longer defined, or test systems the evals cannot reach
        flash(f"Not published: {exc.message}", "error")
    else:
        keep(found, name, result)
        flash(f"Published version {target.number}{' past the release gate' if force else ''}: "
              "the agent runs it now, and the brand's intents were retrained from the "
              "published workflows' trigger examples.", "success")
    return _back(found, name)


@bp.post("/brands/<slug>/workflows/<name>/enabled")
@login_required(*EDITOR_ROLES)
def workflow_enabled(slug: str, name: str) -> ResponseReturnValue:
    user = signed_in_user()
    found = brand_for(user, slug)
    enabled = request.form.get("enabled") == "1"
    try:
        _workflows().set_enabled(found, name, enabled, user.username)
    except Conflict as exc:  # never published
        flash(f"Not enabled: {exc.message}", "error")
    else:
        flash("Enabled: the agent runs the published version again." if enabled else
              "Disabled: the agent no longer starts this workflow.", "success")
    return _back(found, name)


@bp.post("/brands/<slug>/workflows/<name>/rollback")
@login_required(*EDITOR_ROLES)
def workflow_rollback(slug: str, name: str) -> ResponseReturnValue:
    user = signed_in_user()
    found = brand_for(user, slug)
    try:
        version = _workflows().rollback(found, name, user.username)
    except Conflict as exc:  # nothing published before the current version
        flash(f"Not rolled back: {exc.message}", "error")
    else:
        flash(f"Rolled back: version {version.number} is published again.", "success")
    return _back(found, name)


@bp.get("/brands/<slug>/workflows/<name>/diff")
@login_required(*READER_ROLES)
def workflow_diff(slug: str, name: str) -> ResponseReturnValue:
    """Unified diff of versions a and b; by default the latest against the published one
    (or the one before it)."""
    found = brand_for(signed_in_user(), slug)
    service = _workflows()
    found_workflow = service.get(found, name)
    versions = service.versions(found_workflow)
    b = request.args.get("b", type=int) or service.version(found_workflow).number
    published = found_workflow.published_version
    a = request.args.get("a", type=int) or (
        published if published is not None and published != b else max(b - 1, 1))
    return render_template(
        "admin/workflow_diff.html", brand=found, workflow=found_workflow, versions=versions,
        a=a, b=b, rows=diff_rows(service.diff(found_workflow, a, b)),
    )
