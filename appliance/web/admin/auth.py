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
from appliance.errors import PermissionDenied
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


def current_user() -> AdminUser | None:
    """The signed-in, enabled admin user of this request, or None."""
    if "admin_user" not in g:
        user_id = session.get("user_id")
        g.admin_user = services_of_app().users.get(user_id) if isinstance(user_id, int) else None
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
    if request.method == "POST":
        password = request.form.get("password", "")
        user = None
        if "\x00" not in username + password:  # no database accepts NUL in a string
            user = services_of_app().users.authenticate(username, password)
        if user is not None:
            session.clear()  # a fresh session on sign-in: no fixation
            session["user_id"] = user.id
            audit.record(user.username, "admin.login", user.username, None, request.remote_addr)
            return redirect(_safe_next(request.args.get("next")))
        # The attempted username is not logged: people type passwords into that field.
        log.warning("failed admin login from %s", request.remote_addr)
        return render_template("admin/login.html", error=LOGIN_FAILED, username=username), 401
    return render_template("admin/login.html", error=None, username=username)


@bp.post("/logout")
@login_required()
def logout() -> ResponseReturnValue:
    user = signed_in_user()
    audit.record(user.username, "admin.logout", user.username, None, request.remote_addr)
    session.clear()
    flash("You are signed out.", "success")
    return redirect(url_for("admin.login"))


@bp.app_context_processor
def _inject_user() -> dict[str, Any]:
    """`admin_user` for base.html's navigation, on every page including error pages."""
    if "user_id" not in session:
        return {"admin_user": None}
    try:
        return {"admin_user": current_user()}
    except peewee.PeeweeException:  # an error page must render even with the database down
        return {"admin_user": None}


@bp.app_template_filter("when")
def _when(value: dt.datetime | None) -> str:
    """Stored times are naive UTC."""
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")
