"""The human agent's side of a handoff: the queue of conversations the agent handed to a
person, and the console to take one, answer the customer, hand it back to the agent or
resolve it. Viewers read; human agents, CX editors and IT admins act.

Every action goes through `HandoffService`, which owns the state changes and their audit;
taking is race-safe there (of two agents taking at once exactly one wins). Users scoped to
one brand see only its handoffs: another brand's look missing (404), as in the API.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from appliance.db.models import AdminUser, Handoff, utcnow
from appliance.errors import ApplianceError, Conflict, InvalidRequest, PermissionDenied
from appliance.handoff.service import ASSIGNED, OUTCOMES, RESOLVED, RETURNED
from appliance.web import services_of_app
from appliance.web.admin import bp
from appliance.web.admin.auth import READER_ROLES, login_required, signed_in_user
from appliance.web.admin.handoff_views import (
    WORK_ROLES,
    brand_ids_of,
    handoff_for,
    handoff_marker,
    is_mine,
    may_work,
    packet_view,
    usernames,
    waited,
)
from appliance.web.admin.scope import visible_brands

#: The queue page reloads itself this often (seconds) so new handoffs show up.
QUEUE_REFRESH_S = 30


@dataclass(frozen=True)
class QueueRow:
    """An open handoff as the queue lists it."""

    handoff: Handoff
    reason: str
    sentiment: str | None
    waited: str
    #: The username of the agent who took it; None while it waits.
    taken_by: str | None


@bp.app_template_filter("sentence")
def _sentence(text: str) -> str:
    """`text` with its first letter capitalised (Jinja's `capitalize` lowers the rest)."""
    return text[:1].upper() + text[1:]


@bp.get("/queue")
@login_required()
def handoff_queue() -> ResponseReturnValue:
    user = signed_in_user()
    handoffs = services_of_app().handoffs.queue(brand_ids_of(user))
    names, now = usernames(handoffs), utcnow()
    rows = []
    for handoff in handoffs:
        packet = packet_view(handoff)
        rows.append(QueueRow(
            handoff, packet.reason_text, packet.sentiment, waited(handoff, now),
            names.get(handoff.assigned_to_id) if handoff.assigned_to_id is not None else None))
    return render_template(
        "admin/handoff_queue.html", rows=rows, can_work=may_work(user), refresh=QUEUE_REFRESH_S,
        review_brands=visible_brands(user) if user.role in READER_ROLES else [],
    )


def _render_console(
    handoff: Handoff, *, error: ApplianceError | None = None, draft: str = "",
) -> str:
    user = signed_in_user()
    services = services_of_app()
    conversation = handoff.conversation
    messages = services.conversations.messages(conversation)
    taken_by = usernames([handoff]).get(handoff.assigned_to_id or 0)
    return render_template(
        "admin/handoff.html", handoff=handoff, conversation=conversation,
        brand=conversation.brand, packet=packet_view(handoff), messages=messages,
        marker=handoff_marker(messages, handoff), waited=waited(handoff, utcnow()),
        taken_by=taken_by, mine=is_mine(handoff, user), can_work=may_work(user),
        outcomes=OUTCOMES, error=error, draft=draft,
        max_chars=services.settings.max_message_chars,
    )


@bp.get("/handoffs/<public_id>")
@login_required()
def handoff_console(public_id: str) -> ResponseReturnValue:
    return _render_console(handoff_for(signed_in_user(), public_id))


def _back_to(handoff: Handoff) -> str:
    """Where a Take button sends the agent back to when it fails: the page it was on."""
    if request.form.get("back") == "queue":
        return url_for("admin.handoff_queue")
    return url_for("admin.handoff_console", public_id=handoff.public_id)


def _why_not_taken(public_id: str, user: AdminUser) -> tuple[str, str]:
    """The flash (message, category) after losing a take: who has it, or what became of it."""
    current = handoff_for(user, public_id)
    if current.status == ASSIGNED and current.assigned_to_id == user.id:
        return "You have this conversation already.", "info"
    if current.status == RETURNED:
        return "Not taken: this conversation was handed back to the agent.", "error"
    if current.status == RESOLVED:
        return "Not taken: this conversation is resolved.", "error"
    name = usernames([current]).get(current.assigned_to_id or 0)
    return (f"Not taken: another agent has taken this conversation"
            f"{f' ({name})' if name else ''}.", "error")


@bp.post("/handoffs/<public_id>/take")
@login_required(*WORK_ROLES)
def handoff_take(public_id: str) -> ResponseReturnValue:
    user = signed_in_user()
    found = handoff_for(user, public_id)
    try:
        services_of_app().handoffs.take(found, user)
    except Conflict:
        flash(*_why_not_taken(public_id, user))
        return redirect(_back_to(found))
    flash("You have taken this conversation: the customer is waiting for your reply.",
          "success")
    return redirect(url_for("admin.handoff_console", public_id=found.public_id))


@bp.post("/handoffs/<public_id>/reply")
@login_required(*WORK_ROLES)
def handoff_reply(public_id: str) -> ResponseReturnValue:
    user = signed_in_user()
    found = handoff_for(user, public_id)
    text = request.form.get("text", "")
    limit = services_of_app().settings.max_message_chars
    try:
        if len(text) > limit:
            raise InvalidRequest(f"text: at most {limit} characters", param="text",
                                 code="message_too_long")
        services_of_app().handoffs.reply(found, user, text)
    except (InvalidRequest, PermissionDenied) as exc:
        return _render_console(found, error=exc, draft=text), exc.status
    return redirect(url_for("admin.handoff_console", public_id=found.public_id, _anchor="reply"))


@bp.post("/handoffs/<public_id>/hand-back")
@login_required(*WORK_ROLES)
def handoff_hand_back(public_id: str) -> ResponseReturnValue:
    user = signed_in_user()
    found = handoff_for(user, public_id)
    try:
        services_of_app().handoffs.hand_back(found, user)
    except PermissionDenied as exc:
        return _render_console(found, error=exc), exc.status
    flash("Handed back to the agent: it picks up where the conversation stopped.", "success")
    return redirect(url_for("admin.handoff_console", public_id=found.public_id))


@bp.post("/handoffs/<public_id>/resolve")
@login_required(*WORK_ROLES)
def handoff_resolve(public_id: str) -> ResponseReturnValue:
    user = signed_in_user()
    found = handoff_for(user, public_id)
    outcome = request.form.get("outcome", "")
    try:
        services_of_app().handoffs.resolve(found, user, outcome)
    except (InvalidRequest, PermissionDenied) as exc:
        return _render_console(found, error=exc), exc.status
    flash(f"Resolved ({outcome}): the conversation is closed.", "success")
    return redirect(url_for("admin.handoff_console", public_id=found.public_id))
