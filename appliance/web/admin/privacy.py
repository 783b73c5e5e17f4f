"""A brand's privacy page for IT admins: its retention and legal holds, with forms to place
and release a hold (the same service, validation and audit entries as `appliance customers
hold|release`). Customers appear by subject key only; an identifier typed into a form is
turned into its key and never stored or shown."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance.brands import policy_of
from appliance.db.models import AdminUser, Brand
from appliance.errors import ApplianceError
from appliance.web import services_of_app
from appliance.web.admin import bp
from appliance.web.admin.auth import login_required, signed_in_user
from appliance.web.admin.scope import brand_for

IT_ADMIN = "it_admin"


def _page(user: AdminUser, brand: Brand,
          error: ApplianceError | None = None) -> ResponseReturnValue:
    page = render_template("admin/privacy.html", brand=brand,
                           retention_days=policy_of(brand).retention_days,
                           holds=services_of_app().privacy.holds(brand), error=error,
                           form=request.form if error else {})
    return page, error.status if error else 200


def _target() -> dict[str, str | None]:
    """The form's customer (email or id) or conversation."""
    identifier = (request.form.get("customer") or "").strip() or None
    conversation = (request.form.get("conversation") or "").strip() or None
    return {"identifier": identifier, "conversation": conversation}


@bp.get("/brands/<slug>/privacy")
@login_required(IT_ADMIN)
def privacy(slug: str) -> ResponseReturnValue:
    user = signed_in_user()
    return _page(user, brand_for(user, slug))


@bp.post("/brands/<slug>/privacy/holds")
@login_required(IT_ADMIN)
def privacy_hold(slug: str) -> ResponseReturnValue:
    user = signed_in_user()
    brand = brand_for(user, slug)
    try:
        services_of_app().privacy.hold(brand, reason=request.form.get("reason", ""),
                                       actor=user.username, **_target())
    except ApplianceError as exc:
        return _page(user, brand, exc)
    flash("Legal hold placed.", "success")
    return redirect(url_for("admin.privacy", slug=brand.slug))


@bp.post("/brands/<slug>/privacy/holds/release")
@login_required(IT_ADMIN)
def privacy_release(slug: str) -> ResponseReturnValue:
    user = signed_in_user()
    brand = brand_for(user, slug)
    try:
        released = services_of_app().privacy.release(brand, actor=user.username, **_target())
    except ApplianceError as exc:
        return _page(user, brand, exc)
    flash(f"{released} legal hold(s) released.", "success")
    return redirect(url_for("admin.privacy", slug=brand.slug))
