"""Handoffs: opened when the supervisor or a workflow escalates, taken by one human agent,
answered, handed back to the agent or resolved, then reviewed as a labelled example.

Every state change is one transaction. Taking a handoff is a conditional UPDATE, so when two
human agents take the same one at once exactly one wins; the other gets a Conflict.
"""

from __future__ import annotations

import datetime as dt
import secrets
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

import peewee
import yaml

from appliance import audit, metrics
from appliance.brands import policy_of
from appliance.db.models import (
    AdminUser,
    Brand,
    Conversation,
    Handoff,
    Message,
    ToolCall,
    TurnTrace,
    utcnow,
)
from appliance.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from appliance.handoff.packet import build_packet
from appliance.handoff.webhooks import WebhookService
from appliance.privacy.vault import Vaults
from appliance.text import validated_text
from appliance.workflows.state import WorkflowState

WAITING, ASSIGNED, RETURNED, RESOLVED = "waiting", "assigned", "returned", "resolved"
#: Outcomes a human agent can close a handoff with.
OUTCOMES = ("resolved", "saved", "upsold", "unresolved")
#: Review verdicts.
SHOULD_HAVE, CORRECT = "agent_should_have", "correct"
#: How many recent handoffs the expected wait is estimated from.
WAIT_SAMPLE = 20
#: Longest human reply accepted.
MAX_REPLY_CHARS = 4000
BACK_MESSAGE = "Thanks for waiting. I'm back with you and have the details from our chat."


class HandoffService:
    def __init__(self, db: peewee.Database, webhooks: WebhookService, vaults: Vaults) -> None:
        self._db = db
        self._webhooks = webhooks
        self._vaults = vaults

    # -- opening ---------------------------------------------------------------------------

    def open(self, conversation: Conversation, reason: str,
             evidence: dict[str, Any] | None = None) -> Handoff:
        """Record the handoff of `conversation` (already `pending_human`) with its packet and
        queue its webhook. Call inside the transaction that changed the status."""
        messages = list(Message.select().where(Message.conversation == conversation)
                        .order_by(Message.created_at, Message.id))
        traces = list(TurnTrace.select().where(TurnTrace.conversation == conversation)
                      .order_by(TurnTrace.id))
        calls = list(ToolCall.select().where(ToolCall.conversation == conversation)
                     .order_by(ToolCall.id))
        packet = build_packet(conversation, messages, traces, calls, reason, evidence)
        hours = policy_of(conversation.brand).business_hours
        # Outside business hours the handoff is a ticket: the helpdesk answers when it opens.
        packet["after_hours"] = hours is not None and not hours.is_open(utcnow())
        if packet["after_hours"]:
            packet["summary"] += " Arrived outside business hours: answer it as a ticket."
        handoff = Handoff.create(
            public_id=f"hof_{secrets.token_hex(12)}", brand=conversation.brand_id,
            conversation=conversation, reason=reason,
            workflow=(packet.get("workflow") or {}).get("name"), status=WAITING,
            packet=packet, summary=packet["summary"])
        self._webhooks.enqueue_handoff(conversation, {**packet, "id": handoff.public_id})
        metrics.record_handoff(conversation.brand.slug, handoff.workflow, reason)
        return handoff

    def expected_wait_minutes(self, brand: Brand) -> int | None:
        """The median time recent handoffs waited for a human, in whole minutes, or None
        when there is no history to tell from."""
        recent = list(Handoff.select(Handoff.created_at, Handoff.assigned_at)
                      .where((Handoff.brand == brand.id) & Handoff.assigned_at.is_null(False))
                      .order_by(Handoff.id.desc()).limit(WAIT_SAMPLE))
        if not recent:
            return None
        waits = [(h.assigned_at - h.created_at).total_seconds() for h in recent
                 if h.assigned_at is not None]
        return max(1, round(statistics.median(waits) / 60)) if waits else None

    # -- the queue and the console ---------------------------------------------------------

    def queue(self, brand_ids: Sequence[int] | None = None) -> list[Handoff]:
        """Open handoffs (waiting, then taken), oldest first."""
        query = (Handoff.select(Handoff, Conversation, Brand).join(Conversation)
                 .switch(Handoff).join(Brand)
                 .where(Handoff.status.in_((WAITING, ASSIGNED))))
        if brand_ids is not None:
            query = query.where(Handoff.brand.in_(list(brand_ids)))
        return list(query.order_by(Handoff.created_at, Handoff.id))

    def get(self, public_id: str, brand_ids: Sequence[int] | None = None) -> Handoff:
        query = Handoff.select().where(Handoff.public_id == public_id)
        if brand_ids is not None:
            query = query.where(Handoff.brand.in_(list(brand_ids)))
        handoff: Handoff | None = query.first()
        if handoff is None:
            raise NotFound(f"no handoff {public_id!r}", code="handoff_not_found")
        return handoff

    def recent(self, brand: Brand, limit: int = 100) -> list[Handoff]:
        return list(Handoff.select().where(Handoff.brand == brand.id)
                    .order_by(Handoff.id.desc()).limit(limit))

    def take(self, handoff: Handoff, user: AdminUser) -> Handoff:
        """Assign the handoff to `user`; Conflict when someone else took it first."""
        with self._db.atomic():
            now = utcnow()
            won = (Handoff.update(status=ASSIGNED, assigned_to=user.id, assigned_at=now)
                   .where((Handoff.id == handoff.id) & (Handoff.status == WAITING)).execute())
            if not won:
                raise Conflict("another agent has taken this conversation",
                               code="handoff_taken")
            audit.record(user.username, "handoff.take", handoff.public_id)
        return Handoff.get_by_id(handoff.id)

    def reply(self, handoff: Handoff, user: AdminUser, text: str) -> Message:
        """A human agent's message to the customer, in the conversation the channel reads."""
        text = validated_text(text, max_chars=MAX_REPLY_CHARS, too_long=InvalidRequest)
        with self._db.atomic():
            current = self._assigned(handoff, user)
            conversation = Conversation.get_by_id(current.conversation_id)
            if conversation.status == "closed":
                raise Conflict("the conversation is closed", code="conversation_closed")
            # Stored with placeholders, like the customer's messages and the agent's.
            vault = self._vaults.of(conversation)
            message = Message.create(
                public_id=f"msg_{secrets.token_hex(12)}", conversation=current.conversation_id,
                role="human", text=vault.redact(text), author=user.username)
            changes: dict[Any, Any] = {Conversation.updated_at: utcnow()}
            if vault.changed:
                changes[Conversation.vault] = self._vaults.seal(vault, conversation.public_id)
            Conversation.update(changes).where(
                Conversation.id == current.conversation_id).execute()
            audit.record(user.username, "handoff.reply", current.public_id,
                         {"message": message.public_id})
        return message

    def hand_back(self, handoff: Handoff, user: AdminUser) -> Handoff:
        """Give the conversation back to the agent. The workflow's state is kept, so it goes
        on from where it stopped and asks nothing it knows."""
        with self._db.atomic():
            current = self._assigned(handoff, user)
            now = utcnow()
            conversation = Conversation.get_by_id(current.conversation_id)
            run = WorkflowState.from_json(conversation.state).run
            prompt = run.prompt if run is not None else None
            Message.create(public_id=f"msg_{secrets.token_hex(12)}", conversation=conversation,
                           role="agent", model="template",
                           text=f"{BACK_MESSAGE} {prompt}" if prompt else BACK_MESSAGE)
            Conversation.update(status="active", status_reason=None, updated_at=now).where(
                Conversation.id == conversation.id).execute()
            Handoff.update(status=RETURNED, returned_at=now).where(
                Handoff.id == current.id).execute()
            audit.record(user.username, "handoff.hand_back", current.public_id)
        return Handoff.get_by_id(handoff.id)

    def resolve(self, handoff: Handoff, user: AdminUser, outcome: str) -> Handoff:
        """Close the handoff and its conversation with an outcome."""
        if outcome not in OUTCOMES:
            raise InvalidRequest(f"outcome: one of {', '.join(OUTCOMES)}", param="outcome",
                                 code="invalid_outcome")
        with self._db.atomic():
            current = self._assigned(handoff, user)
            now = utcnow()
            Conversation.update(status="closed", status_reason=f"human:{outcome}",
                                closed_at=now, updated_at=now).where(
                Conversation.id == current.conversation_id).execute()
            Handoff.update(status=RESOLVED, resolved_at=now, outcome=outcome).where(
                Handoff.id == current.id).execute()
            conversation = Conversation.get_by_id(current.conversation_id)
            self._webhooks.enqueue_handoff(conversation, {
                **current.packet, "id": current.public_id, "outcome": outcome},
                event="handoff.resolved")
            audit.record(user.username, "handoff.resolve", current.public_id,
                         {"outcome": outcome})
        return Handoff.get_by_id(handoff.id)

    def _assigned(self, handoff: Handoff, user: AdminUser) -> Handoff:
        current: Handoff = Handoff.get_by_id(handoff.id)
        if current.status != ASSIGNED or current.assigned_to_id != user.id:
            raise PermissionDenied("this conversation is not assigned to you",
                                   code="handoff_not_assigned")
        return current

    # -- learning from handoffs ------------------------------------------------------------

    def review(self, handoff: Handoff, verdict: str, reviewer: str,
               note: str | None = None) -> Handoff:
        """Label the handoff: the agent should have handled it, or it was right to hand off."""
        if verdict not in (SHOULD_HAVE, CORRECT):
            raise InvalidRequest(f"verdict: {SHOULD_HAVE} or {CORRECT}", param="verdict",
                                 code="invalid_verdict")
        with self._db.atomic():
            Handoff.update(review=verdict, review_note=note, reviewed_by=reviewer,
                           reviewed_at=utcnow()).where(Handoff.id == handoff.id).execute()
            audit.record(reviewer, "handoff.review", handoff.public_id, {"verdict": verdict})
        return Handoff.get_by_id(handoff.id)

    def case_of(self, handoff: Handoff) -> dict[str, Any]:
        """A handoff the agent should have handled, as an eval case (appliance/evals): the
        customer's turns up to the handoff, expected to end resolved rather than escalated.
        It starts quarantined: it gates no release until someone fills in the writes and
        phrases the agent should have made and lifts the quarantine."""
        return {
            "name": f"handoff {handoff.public_id}: {handoff.reason}",
            "turns": self.customer_turns(handoff) or ["(the customer wrote nothing)"],
            "expect": {"writes": [], "says": [], "outcome": "resolved"},
            "quarantine": f"promoted from handoff {handoff.public_id} "
                          f"(workflow {handoff.workflow or 'none'}); fill in the writes and "
                          "phrases the agent should have made, then remove this line",
        }

    def eval_case(self, handoff: Handoff) -> str:
        """`case_of` as a suite document for the handoff's workflow, to download."""
        suite = {"workflow": handoff.workflow or "unassigned", "cases": [self.case_of(handoff)]}
        header = ("# From a handoff marked 'agent should have handled it'. Fill in the writes\n"
                  "# and phrases the agent should have made, then add it to the workflow's "
                  "evals.\n")
        return header + str(yaml.safe_dump(suite, sort_keys=False, allow_unicode=True))

    def customer_turns(self, handoff: Handoff) -> list[str]:
        """What the customer wrote up to the handoff (candidate intent training utterances)."""
        return [m.text for m in Message.select().where(
            (Message.conversation == handoff.conversation_id) & (Message.role == "customer")
            & (Message.created_at <= handoff.created_at)).order_by(Message.created_at,
                                                                   Message.id)]

    # -- numbers ---------------------------------------------------------------------------

    def stats(self, brand: Brand, days: int = 30) -> dict[str, Any]:
        """Escalation rate (per brand, workflow and reason) and time to a human."""
        since = utcnow() - dt.timedelta(days=days)
        conversations = (Conversation.select().where(
            (Conversation.brand == brand.id) & (Conversation.created_at >= since)
            & (Conversation.channel.not_in(("studio", "eval")))).count())
        handoffs = list(Handoff.select().join(Conversation).where(
            (Handoff.brand == brand.id) & (Handoff.created_at >= since)
            & (Conversation.channel.not_in(("studio", "eval")))))
        waits = [(h.assigned_at - h.created_at).total_seconds() for h in handoffs
                 if h.assigned_at is not None]
        return {
            "days": days, "conversations": conversations, "handoffs": len(handoffs),
            "escalation_rate": round(len(handoffs) / conversations, 4) if conversations else 0.0,
            "by_reason": dict(Counter(h.reason for h in handoffs).most_common()),
            "by_workflow": dict(Counter(h.workflow or "none" for h in handoffs).most_common()),
            "time_to_human_s": {
                "median": round(statistics.median(waits), 1) if waits else None,
                "max": round(max(waits), 1) if waits else None, "taken": len(waits)},
            "waiting": Handoff.select().where((Handoff.brand == brand.id)
                                              & (Handoff.status == WAITING)).count(),
        }
