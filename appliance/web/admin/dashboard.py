"""The dashboard (brands, models, handoffs, recent conversations) and a conversation's
transcript with each turn's trace."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flask import render_template
from flask.typing import ResponseReturnValue

from appliance.db.models import ApiKey, JobRun, Message
from appliance.jobs import last_run
from appliance.web import services_of_app
from appliance.web.admin import bp
from appliance.web.admin.auth import READER_ROLES, login_required, signed_in_user
from appliance.web.admin.handoff_views import brand_ids_of
from appliance.web.admin.scope import (
    conversation_for,
    pending_handoffs,
    recent_conversations,
    visible_brands,
)
from appliance.web.admin.traces import turn_views

HEALTH_JOB = "models.health"


@dataclass(frozen=True)
class ModelRow:
    id: str
    role: str
    backend: str
    #: 1 for the reply route's first choice, 2 for its first fallback...; None if unrouted.
    #: Replicas of a model share its position.
    position: int | None
    ok: bool
    detail: str
    #: What the last scheduled health check saw, if it covered this model.
    last_check: dict[str, Any] | None


def _model_rows(latest: JobRun | None) -> list[ModelRow]:
    router = services_of_app().router
    checked = latest.detail if latest is not None and isinstance(latest.detail, dict) else {}
    rows = []
    for model_id, model in router.models.items():
        health = model.check_health()
        rows.append(ModelRow(
            id=model_id, role=model.spec.role, backend=model.spec.backend,
            position=router.place("reply", model_id),
            ok=health.ok, detail=health.detail, last_check=checked.get(model_id),
        ))
    return sorted(rows, key=lambda row: (row.position is None, row.position or 0, row.id))


def _live_key_count(slug: str) -> int:
    keys: Sequence[ApiKey] = services_of_app().brands.keys(slug)
    return len([key for key in keys if key.revoked_at is None])


@bp.get("/")
@login_required()
def dashboard() -> ResponseReturnValue:
    user = signed_in_user()
    brands, models, latest, eval_alerts = [], [], None, []
    if user.role in READER_ROLES:  # human agents see the conversations only
        brands = [(brand, _live_key_count(brand.slug)) for brand in visible_brands(user)]
        latest = last_run(HEALTH_JOB)
        models = _model_rows(latest)
        eval_alerts = services_of_app().evals.alerts(brand_ids_of(user))
    # Each waiting conversation's open handoff, to link its console.
    consoles = {handoff.conversation_id: handoff.public_id
                for handoff in services_of_app().handoffs.queue(brand_ids_of(user))}
    return render_template(
        "admin/dashboard.html", brands=brands, models=models, health_run=latest,
        conversations=recent_conversations(user), handoffs=pending_handoffs(user),
        consoles=consoles, eval_alerts=eval_alerts,
    )


@bp.get("/conversations/<public_id>")
@login_required()
def conversation(public_id: str) -> ResponseReturnValue:
    services = services_of_app()
    found = conversation_for(signed_in_user(), public_id)
    messages: list[Message] = services.conversations.messages(found)
    return render_template(
        "admin/conversation.html", conversation=found, messages=messages,
        turns=turn_views(services.conversations.traces(found)),
    )
