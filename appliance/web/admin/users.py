"""Appliance-wide pages for IT admins: the admin users (create, password, brand, disable,
sign-in lock-outs) and the audit log."""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance import audit
from appliance.db.models import AdminUser, Brand
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
#: Lock-outs are keyed by one of these; the form names which.
LOCKOUT_KINDS = ("username", "address")


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
        lockouts=services.login_throttle.lockouts(),
    )
    return page, error.status if error else 200


def _user_page(found: AdminUser, error: InvalidRequest | None = None) -> ResponseReturnValue:
    page = render_template("admin/user.html", user=found, brands=services_of_app().brands.all(),
                           error=error)
    return page, error.status if error else 200


def _it_admin() -> str:
    """The signed-in it_admin's username, for the audit log (appliance-wide only)."""
    user = signed_in_user()
    require_appliance_wide(user)
    return user.username


@bp.get("/users/<username>")
@login_required("it_admin")
def user_page(username: str) -> ResponseReturnValue:
    _it_admin()
    return _user_page(services_of_app().users.named(username))


def _change_user(username: str, change: Callable[[str], object], done: str
                 ) -> ResponseReturnValue:
    """Run `change(actor)` for the signed-in it_admin; a refusal re-renders the user's page
    with the error, success flashes `done` and goes back to it."""
    actor = _it_admin()
    try:
        change(actor)
    except InvalidRequest as exc:
        return _user_page(services_of_app().users.named(username), exc)
    flash(done, "success")
    return redirect(url_for("admin.user_page", username=username))


@bp.post("/users/<username>/password")
@login_required("it_admin")
def user_password(username: str) -> ResponseReturnValue:
    """A new password; every session of the user ends."""
    users, password = services_of_app().users, request.form.get("password", "")
    return _change_user(username, lambda actor: users.set_password(
        username, password, actor=actor, remote_addr=request.remote_addr),
        f"Changed {username!r}'s password; their sessions have ended.")


@bp.post("/users/<username>/brand")
@login_required("it_admin")
def user_brand(username: str) -> ResponseReturnValue:
    """Limit the user to a brand (or none, where the role allows); their sessions end."""
    users, slug = services_of_app().users, request.form.get("brand", "")
    return _change_user(username, lambda actor: users.set_brand(
        username, _brand_of_form(slug), actor=actor, remote_addr=request.remote_addr),
        f"Changed {username!r}'s brand; their sessions have ended.")


@bp.post("/users/<username>/state")
@login_required("it_admin")
def user_state(username: str) -> ResponseReturnValue:
    """Disable (`disabled=1`, ending every session) or enable the user."""
    users, disabled = services_of_app().users, request.form.get("disabled") == "1"
    return _change_user(username, lambda actor: users.set_disabled(
        username, disabled, actor=actor, remote_addr=request.remote_addr),
        f"{'Disabled' if disabled else 'Enabled'} {username!r}.")


@bp.post("/users/lockouts")
@login_required("it_admin")
def lift_lockout() -> ResponseReturnValue:
    """Lift the sign-in lock-out of a username or an address."""
    actor = _it_admin()
    kind, subject = request.form.get("kind", ""), request.form.get("subject", "")
    if kind not in LOCKOUT_KINDS:
        raise InvalidRequest(f"kind: one of {', '.join(LOCKOUT_KINDS)}", param="kind")
    target = {kind: subject}
    if services_of_app().login_throttle.unlock(**target, actor=actor,
                                               remote_addr=request.remote_addr):
        flash(f"Lifted the lock-out of {kind} {subject!r}.", "success")
    else:
        flash(f"No lock-out of {kind} {subject!r} to lift.", "info")
    return redirect(url_for("admin.users"))


@bp.get("/audit")
@login_required("it_admin")
def audit_log() -> ResponseReturnValue:
    require_appliance_wide(signed_in_user())
    return render_template("admin/audit.html", entries=audit.recent(AUDIT_PAGE_SIZE))
