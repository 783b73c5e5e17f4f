"""The evidence behind a ledger entry: a hash of the conversation's transcript as it stood."""

from __future__ import annotations

import datetime as dt
import hashlib

from appliance.billing.chain import canonical_json
from appliance.db.models import Conversation, Message


def timestamp(value: dt.datetime) -> str:
    """How times are written into hashed content: ISO 8601 with microseconds, UTC implied."""
    return value.isoformat(timespec="microseconds")


def transcript_sha256(conversation: Conversation, through: dt.datetime | None = None) -> str:
    """sha256 of the canonical JSON list of the conversation's messages (public id, role, text,
    created_at), oldest first, counting only those created at or before `through` when given:
    an entry's evidence is the transcript as it stood when the entry was written, so that
    messages added later do not change it while an edit to an earlier one does."""
    messages = Message.select().where(Message.conversation == conversation).order_by(
        Message.created_at, Message.id)
    transcript = [
        {"id": m.public_id, "role": m.role, "text": m.text, "created_at": timestamp(m.created_at)}
        for m in messages if through is None or m.created_at <= through
    ]
    return hashlib.sha256(canonical_json(transcript).encode("utf-8")).hexdigest()
