"""A brand's page: its agent's persona (edit: cx_editor, it_admin) and API keys (it_admin)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance.brands import Persona, persona_of, policy_of, validated
from appliance.db.models import Brand
from appliance.errors import InvalidRequest
from appliance.web import services_of_app
from appliance.web.admin import bp
from appliance.web.admin.auth import EDITOR_ROLES, READER_ROLES, login_required, signed_in_user
from appliance.web.admin.scope import brand_for

PERSONA_FIELDS = ("agent_name", "tone", "greeting", "sign_off", "never_say", "language")
KEY_NAME_MAX = 200


def persona_form(persona: Persona) -> dict[str, str]:
    """The persona as the form's text values (never-say phrases one per line)."""
    values = persona.model_dump()
    values["never_say"] = "\n".join(persona.never_say)
    return {name: str(values[name]) for name in PERSONA_FIELDS}


def _persona_from_form(form: dict[str, str]) -> Persona:
    data: dict[str, Any] = dict(form)
    data["never_say"] = tuple(form["never_say"].splitlines())
    persona: Persona = validated(Persona, data)
    return persona


def _render(
    brand: Brand, *, form: dict[str, str] | None = None, error: InvalidRequest | None = None,
    key_error: InvalidRequest | None = None,
) -> str:
    return render_template(
        "admin/brand.html", brand=brand, policy=policy_of(brand),
        form=form or persona_form(persona_of(brand)), error=error, key_error=key_error,
        keys=services_of_app().brands.keys(brand.slug), editor_roles=EDITOR_ROLES,
    )


@bp.get("/brands/<slug>")
@login_required(*READER_ROLES)
def brand(slug: str) -> ResponseReturnValue:
    return _render(brand_for(signed_in_user(), slug))


@bp.post("/brands/<slug>/persona")
@login_required(*EDITOR_ROLES)
def save_persona(slug: str) -> ResponseReturnValue:
    user = signed_in_user()
    found = brand_for(user, slug)
    form = {name: request.form.get(name, "") for name in PERSONA_FIELDS}
    try:
        persona = _persona_from_form(form)
    except InvalidRequest as exc:
        return _render(found, form=form, error=exc), 400
    services_of_app().brands.update(
        found.slug, persona=persona, actor=user.username, remote_addr=request.remote_addr
    )
    flash(f"Saved {persona.agent_name}'s persona.", "success")
    return redirect(url_for("admin.brand", slug=found.slug))


@bp.post("/brands/<slug>/keys")
@login_required("it_admin")
def create_key(slug: str) -> ResponseReturnValue:
    user = signed_in_user()
    found = brand_for(user, slug)
    name = request.form.get("name", "").strip() or "default"
    if len(name) > KEY_NAME_MAX or "\x00" in name:
        error = InvalidRequest(f"name: at most {KEY_NAME_MAX} characters", param="name")
        return _render(found, key_error=error), 400
    key, token = services_of_app().brands.create_key(
        found.slug, name, actor=user.username, remote_addr=request.remote_addr
    )
    # The plaintext key exists only in this response: never cached, never stored.
    page = render_template("admin/key_created.html", brand=found, key=key, token=token)
    return page, 201, {"Cache-Control": "no-store"}


@bp.post("/brands/<slug>/keys/<int:key_id>/revoke")
@login_required("it_admin")
def revoke_key(slug: str, key_id: int) -> ResponseReturnValue:
    user = signed_in_user()
    found = brand_for(user, slug)
    key = services_of_app().brands.revoke_key(
        found.slug, key_id, actor=user.username, remote_addr=request.remote_addr
    )
    flash(f"Revoked key {key.name!r} ({key.prefix}…). Clients using it now get 401.", "success")
    return redirect(url_for("admin.brand", slug=found.slug))
