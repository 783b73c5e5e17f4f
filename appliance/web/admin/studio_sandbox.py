"""The Studio's test chat: a conversation on the "studio" channel whose turns run the
workflow's working version (`working_version`) beside the brand's published workflows,
against the brand's real tools. Its id is kept in the Flask session per brand and workflow.
"""

from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import dataclass
from typing import Any

from flask import flash, redirect, request, session, url_for
from flask.typing import ResponseReturnValue

from appliance.db.models import Brand, Conversation, Workflow, WorkflowVersion
from appliance.errors import Conflict, InvalidRequest, NotFound
from appliance.web import services_of_app
from appliance.web.admin import bp
from appliance.web.admin.auth import EDITOR_ROLES, login_required, signed_in_user
from appliance.web.admin.scope import brand_for
from appliance.workflows.service import DRAFT

#: The channel of the Studio's test chats, which the reports leave out (TEST_CHANNELS).
SANDBOX_CHANNEL = "studio"


@dataclass(frozen=True)
class SandboxTurn:
    """A message of the test chat and, for an agent reply, what decided it."""

    role: str
    text: str
    decision: dict[str, Any] | None

    @property
    def workflow(self) -> dict[str, Any] | None:
        """The workflow evidence: step, status, outcome or reason, tools called."""
        evidence = (self.decision or {}).get("evidence") or {}
        found = evidence.get("workflow")
        return found if isinstance(found, dict) else None

    @property
    def match(self) -> dict[str, Any] | None:
        evidence = (self.decision or {}).get("evidence") or {}
        found = evidence.get("match")
        return found if isinstance(found, dict) else None


@dataclass(frozen=True)
class Sandbox:
    conversation: Conversation | None
    turns: list[SandboxTurn]


def working_version(workflow: Workflow) -> WorkflowVersion:
    """The version the editor opens and the test chat runs: the draft when there is one,
    else the published version (after a rollback the latest is a retired one), else the
    latest."""
    service = services_of_app().workflows
    latest = service.version(workflow)
    if latest.status == DRAFT or workflow.published_version is None:
        return latest
    return service.version(workflow, workflow.published_version)


def _key(brand: Brand, name: str) -> str:
    return f"studio:{brand.id}:{name}"


def sandbox_of(brand: Brand, workflow: Workflow) -> Sandbox:
    """The test chat of this workflow in this browser session, if one was started."""
    conversations = services_of_app().conversations
    public_id = session.get(_key(brand, workflow.name))
    if not isinstance(public_id, str):
        return Sandbox(None, [])
    try:
        conversation = conversations.get(brand, public_id)
    except NotFound:
        session.pop(_key(brand, workflow.name), None)
        return Sandbox(None, [])
    decisions = {trace.agent_message_id: trace.decision
                 for trace in conversations.traces(conversation)}
    turns = [SandboxTurn(m.role, m.text, decisions.get(m.id))
             for m in conversations.messages(conversation)]
    return Sandbox(conversation, turns)


def _back(brand: Brand, name: str) -> ResponseReturnValue:
    return redirect(url_for("admin.workflow", slug=brand.slug, name=name, _anchor="sandbox"))


@bp.post("/brands/<slug>/workflows/<name>/sandbox")
@login_required(*EDITOR_ROLES)
def workflow_sandbox(slug: str, name: str) -> ResponseReturnValue:
    """One turn of the test chat (the first one starts its conversation)."""
    found = brand_for(signed_in_user(), slug)
    services = services_of_app()
    workflow = services.workflows.get(found, name)
    text = request.form.get("text", "")
    if not text.strip():
        flash("Type a message for the test chat.", "error")
        return _back(found, name)
    key = _key(found, name)
    public_id = session.get(key)
    if not isinstance(public_id, str):
        conversation, _ = services.conversations.start(found, {"studio": True}, SANDBOX_CHANNEL)
        public_id = session[key] = conversation.public_id
    running = services.workflows.with_draft(found, working_version(workflow))
    try:
        # Run the whole turn; the page shows it from the stored transcript.
        deque(services.conversations.reply(found, public_id, text, workflows=running), maxlen=1)
    except (NotFound, Conflict) as exc:  # gone, or closed: start afresh next time
        session.pop(key, None)
        flash(f"Not sent: {exc.message}. Send it again to start a new test chat.", "error")
    except InvalidRequest as exc:  # too long, NUL characters
        flash(f"Not sent: {exc.message}", "error")
    return _back(found, name)


@bp.post("/brands/<slug>/workflows/<name>/sandbox/reset")
@login_required(*EDITOR_ROLES)
def workflow_sandbox_reset(slug: str, name: str) -> ResponseReturnValue:
    found = brand_for(signed_in_user(), slug)
    services_of_app().workflows.get(found, name)
    public_id = session.pop(_key(found, name), None)
    if isinstance(public_id, str):
        with contextlib.suppress(NotFound):  # already gone
            services_of_app().conversations.close(found, public_id)
    flash("Test chat reset: the next message starts a new conversation.", "success")
    return _back(found, name)
