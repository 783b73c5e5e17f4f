"""Signing in and out, who is signed in, and `login_required(*roles)`."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from typing import Any, ParamSpec

import peewee
from flask import flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from appliance import audit
from appliance.db.models import AdminUser
from appliance.errors import AuthenticationError, LoginThrottled, PermissionDenied
from appliance.users import usable
from appliance.web import services_of_app
from appliance.web.admin import bp

log = logging.getLogger(__name__)
P = ParamSpec("P")
View = Callable[P, ResponseReturnValue]

#: Who may change a brand's agent (persona); viewers and human agents only read.
EDITOR_ROLES = ("it_admin", "cx_editor")
#: Who sees brands, models and settings; human agents see conversations only.
READER_ROLES = ("it_admin", "cx_editor", "viewer")
LOGIN_FAILED = "Invalid username or password."
NO_BRAND = ("Your account works for one brand and has none yet: ask an IT admin to assign "
            "your brand.")
#: The key of the Flask session (a signed cookie) that carries the server-side session token.
SESSION_TOKEN = "sid"


def current_user() -> AdminUser | None:
    """The user of this request's live session (appliance.admin_sessions), or None."""
    if "admin_user" not in g:
        token = session.get(SESSION_TOKEN)
        g.admin_user = services_of_app().sessions.user_of(token) if isinstance(
            token, str) else None
    user: AdminUser | None = g.admin_user
    return user


def signed_in_user() -> AdminUser:
    """The user of a view behind `login_required` (always set there)."""
    user = current_user()
    if user is None:  # pragma: no cover - login_required guarantees a user
        raise PermissionDenied("sign in first", code="login_required")
    return user


def login_required(*roles: str) -> Callable[[View[P]], View[P]]:
    """Redirect anonymous visitors to the login page; 403 for a role not in `roles`.

    With no roles, any signed-in user may see the page.
    """

    def decorator(view: View[P]) -> View[P]:
        @functools.wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
            user = current_user()
            if user is None:
                target = request.full_path.rstrip("?") if request.method == "GET" else None
                return redirect(url_for("admin.login", next=target))
            if roles and user.role not in roles:
                raise PermissionDenied("Your role does not allow this.", code="forbidden")
            return view(*args, **kwargs)

        return wrapped

    return decorator


def require_appliance_wide(user: AdminUser) -> None:
    """Appliance-wide pages (users, audit log) are not for users scoped to one brand."""
    if user.brand_id is not None:
        raise PermissionDenied("This page covers every brand; your account is limited to one.")


def _safe_next(target: str | None) -> str:
    """Only redirect back into the admin: never to another host (open redirect)."""
    if target and target.startswith("/admin") and "\\" not in target and "//" not in target:
        return target
    return url_for("admin.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if current_user() is not None and request.method == "GET":
        return redirect(_safe_next(request.args.get("next")))
    username = request.form.get("username", "")
    if request.method == "GET":
        return render_template("admin/login.html", error=None, username=username)
    try:
        user = _authenticate(username, request.form.get("password", ""), request.remote_addr)
    except (AuthenticationError, PermissionDenied, LoginThrottled) as exc:
        page = render_template("admin/login.html", error=exc, username=username)
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(
            exc, LoginThrottled) else {}
        return page, exc.status, headers
    session.clear()  # a fresh session on sign-in: no fixation
    session[SESSION_TOKEN] = services_of_app().sessions.start(user, request.remote_addr)
    return redirect(_safe_next(request.args.get("next")))


def _authenticate(username: str, password: str, address: str | None) -> AdminUser:
    """The user signing in, audited; raises LoginThrottled (locked out, or this failure
    locks out), AuthenticationError (wrong) or PermissionDenied (no brand yet)."""
    services = services_of_app()
    throttle = services.login_throttle
    user = None
    # The username is audited only when it names a user: people type passwords into it.
    target = username.strip() if "\x00" not in username and services.users.exists(
        username) else "(unknown user)"
    try:
        throttle.check(username, address)
    except LoginThrottled:
        audit.record("anonymous", "admin.login_throttled", target, None, address)
        raise
    if "\x00" not in username + password:  # no database accepts NUL in a string
        user = services.users.authenticate(username, password)
    if user is None:
        audit.record("anonymous", "admin.login_failed", target, None, address)
        log.warning("failed admin login from %s", address)
        refusal = throttle.failed(username, address)
        raise refusal or AuthenticationError(LOGIN_FAILED, code="login_failed")
    throttle.succeeded(username)
    if not usable(user):
        audit.record(user.username, "admin.login_refused", user.username,
                     {"reason": "no_brand"}, address)
        raise PermissionDenied(NO_BRAND, code="brand_required")
    audit.record(user.username, "admin.login", user.username, None, address)
    return user


@bp.post("/logout")
@login_required()
def logout() -> ResponseReturnValue:
    user = signed_in_user()
    audit.record(user.username, "admin.logout", user.username, None, request.remote_addr)
    services_of_app().sessions.end(session[SESSION_TOKEN])
    session.clear()
    flash("You are signed out.", "success")
    return redirect(url_for("admin.login"))


@bp.app_context_processor
def _inject_user() -> dict[str, Any]:
    """`admin_user` for base.html's navigation, on every page including error pages."""
    if SESSION_TOKEN not in session:
        return {"admin_user": None}
    try:
        return {"admin_user": current_user()}
    except peewee.PeeweeException:  # an error page must render even with the database down
        return {"admin_user": None}


@bp.app_template_filter("when")
def _when(value: dt.datetime | None) -> str:
    """Stored times are naive UTC."""
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")
