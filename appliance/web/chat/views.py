"""The chat page of one brand; 404 for an unknown brand or one whose widget is disabled."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from appliance.brands import persona_of, policy_of
from appliance.errors import NotFound
from appliance.web import services_of_app
from appliance.web.chat import bp


@bp.get("/<slug>")
def page(slug: str) -> ResponseReturnValue:
    services = services_of_app()
    brand = services.brands.get(slug)
    if not policy_of(brand).widget_enabled:
        raise NotFound(f"no brand {slug!r}", code="brand_not_found")
    return render_template(
        "chat/page.html", brand=brand, persona=persona_of(brand),
        max_chars=services.settings.max_message_chars,
    )
