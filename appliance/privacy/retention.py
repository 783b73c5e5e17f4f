"""Retention, legal holds and data subject requests (export and erasure).

- **Retention.** A brand's `retention_days` (its policy) is how long a conversation is kept
  after its last message. `purge` deletes older conversations with everything that hangs off
  them (messages, turn traces, handoffs and the eval cases made from them, tool calls, outcome,
  feedback, the webhook deliveries that carried them). The nightly job `privacy.purge` and
  `appliance retention purge` run it.
- **Legal hold.** A hold on a customer (every conversation with their subject key, future ones
  included) or on one conversation keeps it through every purge and every erasure.
- **Export.** Everything held about a customer, as one JSON document.
- **Erasure.** A customer's conversations deleted as a purge would, held ones kept and named.

A deleted conversation leaves a `purged_conversation` row (its id, why, when, the sha256 of its
transcript): the ledger's entries keep their amounts and hashes, and `ledger verify` says which
evidence was purged by policy. The audit log names a customer by subject key only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import peewee
from playhouse.shortcuts import model_to_dict

from appliance import audit
from appliance.billing.evidence import timestamp, transcript_sha256
from appliance.brands import policy_of
from appliance.db.models import (
    Brand,
    Conversation,
    ConversationSubject,
    Feedback,
    Handoff,
    LegalHold,
    Message,
    Outcome,
    PurgedConversation,
    ToolCall,
    TurnTrace,
    WebhookDelivery,
    utcnow,
)
from appliance.errors import InvalidRequest, NotFound
from appliance.privacy.subjects import SubjectKeys

#: Conversations deleted per transaction: a purge of a year's data commits as it goes, and a
#: crash loses no more than the batch it was in (which is then deleted again next time).
BATCH = 200


@dataclass(frozen=True)
class Erasure:
    """What an erasure did: the conversations deleted, and those kept under legal hold."""

    subject: str
    erased: list[str]
    held: list[str]


class PrivacyService:
    def __init__(self, db: peewee.Database, subjects: SubjectKeys) -> None:
        self._db = db
        self.subjects = subjects

    # -- legal holds ---------------------------------------------------------------------

    def hold(self, brand: Brand, *, reason: str, actor: str, identifier: str | None = None,
             conversation: str | None = None) -> LegalHold:
        """Put a customer (by identifier) or one conversation (by public id) under legal hold."""
        subject, public_id = self._target(brand, identifier, conversation)
        if not reason.strip():
            raise InvalidRequest("a legal hold needs a reason", code="reason_required")
        with self._db.atomic():
            hold = LegalHold.create(brand=brand, subject_key=subject, conversation=public_id,
                                    reason=reason.strip()[:500], created_by=actor)
            audit.record(actor, "privacy.hold", _target_name(brand, subject, public_id),
                         {"reason": hold.reason})
        return hold

    def release(self, brand: Brand, *, actor: str, identifier: str | None = None,
                conversation: str | None = None) -> int:
        """Lift the holds on a customer or a conversation; how many there were."""
        subject, public_id = self._target(brand, identifier, conversation)
        with self._db.atomic():
            query = LegalHold.delete().where(LegalHold.brand == brand)
            query = (query.where(LegalHold.subject_key == subject) if subject
                     else query.where(LegalHold.conversation == public_id))
            released = int(query.execute())
            if not released:
                raise NotFound("no legal hold on that customer or conversation",
                               code="hold_not_found")
            audit.record(actor, "privacy.release", _target_name(brand, subject, public_id),
                         {"holds": released})
        return released

    def holds(self, brand: Brand) -> list[LegalHold]:
        return list(LegalHold.select().where(LegalHold.brand == brand)
                    .order_by(LegalHold.created_at, LegalHold.id))

    def _target(self, brand: Brand, identifier: str | None,
                conversation: str | None) -> tuple[str | None, str | None]:
        if bool(identifier) == bool(conversation):
            raise InvalidRequest("name either a customer or a conversation",
                                 code="hold_target_required")
        if identifier:
            return self.subjects.key(brand, identifier), None
        found = Conversation.get_or_none((Conversation.public_id == conversation)
                                         & (Conversation.brand == brand))
        if found is None:
            raise NotFound(f"no conversation {conversation!r}", code="conversation_not_found")
        return None, found.public_id

    @staticmethod
    def _held(brand: Brand) -> peewee.Expression:
        """The condition on the brand's conversations that a legal hold keeps them: on their
        customer (by subject key) or on the conversation itself."""
        held_keys = LegalHold.select(LegalHold.subject_key).where(
            (LegalHold.brand == brand) & LegalHold.subject_key.is_null(False))
        by_subject = ConversationSubject.select(ConversationSubject.conversation).where(
            (ConversationSubject.brand == brand) & ConversationSubject.key.in_(held_keys))
        by_id = LegalHold.select(LegalHold.conversation).where(
            (LegalHold.brand == brand) & LegalHold.conversation.is_null(False))
        return Conversation.id.in_(by_subject) | Conversation.public_id.in_(by_id)

    # -- retention -----------------------------------------------------------------------

    def purge(self, now: dt.datetime | None = None, brand: Brand | None = None,
              actor: str = "scheduler") -> dict[str, dict[str, int]]:
        """Delete every conversation past its brand's retention and not held. Per brand slug:
        how many were purged and how many past retention were kept under hold."""
        now = now or utcnow()
        brands = [brand] if brand is not None else list(Brand.select().order_by(Brand.slug))
        report: dict[str, dict[str, int]] = {}
        for each in brands:
            days = policy_of(each).retention_days
            if days is None:
                continue
            cutoff = now - dt.timedelta(days=days)
            purged, held = self._purge_brand(each, cutoff)
            # The webhook deliveries of that age carried handoff packets; none is pending.
            WebhookDelivery.delete().where(
                (WebhookDelivery.brand == each) & (WebhookDelivery.created_at < cutoff)
                & (WebhookDelivery.status != "pending")).execute()
            if purged:
                audit.record(actor, "privacy.purge", f"brand:{each.slug}",
                             {"conversations": purged, "held": held,
                              "before": timestamp(cutoff)})
            report[each.slug] = {"purged": purged, "held": held}
        return report

    def _purge_brand(self, brand: Brand, cutoff: dt.datetime) -> tuple[int, int]:
        expired = (Conversation.brand == brand) & (Conversation.updated_at < cutoff)
        purged = 0
        while True:
            batch = list(Conversation.select().where(expired & ~self._held(brand))
                         .order_by(Conversation.id).limit(BATCH))
            if not batch:
                break
            self._delete(batch, "retention")
            purged += len(batch)
        held = Conversation.select().where(expired).count()
        return purged, held

    def _delete(self, conversations: list[Conversation], reason: str) -> None:
        """Delete conversations with all that hangs off them, leaving their purge record, in
        one transaction."""
        with self._db.atomic():
            for conversation in conversations:
                PurgedConversation.insert(
                    brand=conversation.brand_id, public_id=conversation.public_id,
                    reason=reason, transcript_sha256=transcript_sha256(conversation),
                ).on_conflict_ignore().execute()
                # Deliveries are keyed by endpoint, not conversation: find them by its id.
                WebhookDelivery.delete().where(
                    (WebhookDelivery.brand == conversation.brand_id)
                    & WebhookDelivery.body.contains(f'"{conversation.public_id}"')).execute()
            # Messages, traces, handoffs, tool calls, outcome, feedback and subject keys go
            # with the conversation (ON DELETE CASCADE, on both engines).
            Conversation.delete().where(
                Conversation.id.in_([c.id for c in conversations])).execute()

    # -- data subject requests -------------------------------------------------------------

    def export(self, brand: Brand, identifier: str, actor: str) -> dict[str, Any]:
        """Everything held about a customer of the brand, as one JSON-ready document."""
        conversations = list(self.subjects.conversations(brand, identifier))
        subject = self.subjects.key(brand, identifier)
        with self._db.atomic():
            audit.record(actor, "privacy.export", f"subject:{subject}",
                         {"brand": brand.slug, "conversations": len(conversations)})
        return {
            "brand": brand.slug,
            "subject": subject,
            "exported_at": timestamp(utcnow()),
            "conversations": [_conversation_record(c) for c in conversations],
            "legal_holds": [_plain(h, exclude={LegalHold.brand}) for h in LegalHold.select()
                            .where((LegalHold.brand == brand)
                                   & ((LegalHold.subject_key == subject)
                                      | LegalHold.conversation.in_(
                                          [c.public_id for c in conversations])))],
        }

    def erase(self, brand: Brand, identifier: str, actor: str) -> Erasure:
        """Delete a customer's conversations, except those under legal hold."""
        conversations = list(self.subjects.conversations(brand, identifier))
        subject = self.subjects.key(brand, identifier)
        held = {c.id for c in self.subjects.conversations(brand, identifier)
                .where(self._held(brand))}
        doomed = [c for c in conversations if c.id not in held]
        for start in range(0, len(doomed), BATCH):
            self._delete(doomed[start:start + BATCH], "erasure")
        result = Erasure(subject, [c.public_id for c in doomed],
                         [c.public_id for c in conversations if c.id in held])
        with self._db.atomic():
            audit.record(actor, "privacy.erase", f"subject:{subject}",
                         {"brand": brand.slug, "erased": len(result.erased),
                          "held": result.held})
        return result


def _target_name(brand: Brand, subject: str | None, conversation: str | None) -> str:
    return f"subject:{subject}" if subject else f"conversation:{brand.slug}/{conversation}"


def _conversation_record(conversation: Conversation) -> dict[str, Any]:
    def rows(model: type[peewee.Model], *order: Any) -> list[dict[str, Any]]:
        query = model.select().where(model.conversation == conversation.id)  # type: ignore[attr-defined]
        return [_plain(row, exclude={model.conversation})  # type: ignore[attr-defined]
                for row in query.order_by(*order)]

    record = _plain(conversation, exclude={Conversation.brand})
    record["messages"] = rows(Message, Message.created_at, Message.id)
    record["turn_traces"] = rows(TurnTrace, TurnTrace.id)
    record["handoffs"] = rows(Handoff, Handoff.created_at)
    record["tool_calls"] = rows(ToolCall, ToolCall.at, ToolCall.id)
    record["outcome"] = next(iter(rows(Outcome, Outcome.id)), None)
    record["feedback"] = rows(Feedback, Feedback.id)
    return record


def _plain(row: peewee.Model, exclude: set[Any]) -> dict[str, Any]:
    data = model_to_dict(row, recurse=False, exclude=list(exclude))
    data.pop("id", None)
    return {key: timestamp(value) if isinstance(value, dt.datetime) else value
            for key, value in data.items()}
