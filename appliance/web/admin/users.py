"""Appliance-wide pages for IT admins: the admin users and the audit log."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance import audit
from appliance.db.models import Brand
from appliance.errors import Conflict, InvalidRequest, NotFound
from appliance.users import ROLES
from appliance.web import services_of_app
from appliance.web.admin import bp
from appliance.web.admin.auth import login_required, require_appliance_wide, signed_in_user

AUDIT_PAGE_SIZE = 200
ROLE_HELP = {
    "it_admin": "everything: brands, keys, users, audit log",
    "cx_editor": "edits brands' agents; no keys or users",
    "viewer": "reads everything, changes nothing",
    "human_agent": "sees conversations only",
}


def _brand_of_form(slug: str) -> Brand | None:
    if not slug:
        return None
    try:
        return services_of_app().brands.get(slug)
    except NotFound as exc:
        raise InvalidRequest(f"brand: no brand {slug!r}", param="brand") from exc


@bp.route("/users", methods=["GET", "POST"])
@login_required("it_admin")
def users() -> ResponseReturnValue:
    user = signed_in_user()
    require_appliance_wide(user)
    services = services_of_app()
    form = {name: request.form.get(name, "") for name in ("username", "role", "brand")}
    error: InvalidRequest | Conflict | None = None
    if request.method == "POST":
        try:
            if any("\x00" in value for value in request.form.values()):
                raise InvalidRequest("the form contains a NUL character", param="username")
            brand = _brand_of_form(form["brand"])
            created = services.users.create(
                form["username"], request.form.get("password", ""), form["role"], brand,
                actor=user.username,
            )
        except (InvalidRequest, Conflict) as exc:
            error = exc
        else:
            flash(f"Created user {created.username!r} ({created.role}).", "success")
            return redirect(url_for("admin.users"))
    page = render_template(
        "admin/users.html", users=services.users.all(), brands=services.brands.all(),
        roles=ROLES, role_help=ROLE_HELP, form=form, error=error,
    )
    return page, error.status if error else 200


@bp.get("/audit")
@login_required("it_admin")
def audit_log() -> ResponseReturnValue:
    require_appliance_wide(signed_in_user())
    return render_template("admin/audit.html", entries=audit.recent(AUDIT_PAGE_SIZE))
