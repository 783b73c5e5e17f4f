"""Who a conversation is about, without storing who: subject keys.

A subject key is HMAC-SHA256 over the brand and a normalised identifier (an email in lower
case, a customer id as given), keyed by a key derived from the appliance's secret. The same
customer gets the same key in every conversation of a brand, whether the identifier came in
the API's `customer` field or from the customer a workflow verified; another brand, or
another appliance, gets a different one, and the key cannot be reversed or looked up in a
list of emails without the secret.

Erasure, export and legal holds find a customer's conversations by key; the audit log names
a customer by key, never by identifier. The appliance's secret must therefore stay the same
for the life of its data (docs/privacy.md).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import Any

import peewee

from appliance.db.models import Brand, Conversation, ConversationSubject


class SubjectKeys:
    def __init__(self, secret: str) -> None:
        # A key of its own, so that subject keys say nothing about the session-signing key.
        self._key = hmac.new(secret.encode("utf-8"), b"appliance subject keys",
                             hashlib.sha256).digest()

    def key(self, brand: Brand | int, identifier: str) -> str:
        brand_id = brand if isinstance(brand, int) else brand.id
        message = f"{brand_id}\x00{normalise(identifier)}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def record(self, conversation: Conversation) -> None:
        """Index the conversation under every identifier it now carries (idempotent: call it
        whenever the customer or the verified customer may have changed)."""
        keys = {self.key(conversation.brand_id, value) for value in identifiers(conversation)}
        if not keys:
            return
        rows = [{"conversation": conversation.id, "brand": conversation.brand_id, "key": key}
                for key in sorted(keys)]
        ConversationSubject.insert_many(rows).on_conflict_ignore().execute()

    def conversations(self, brand: Brand,
                      identifier: str) -> peewee.ModelSelect[Conversation]:
        """The brand's conversations about this customer, oldest first."""
        subject = self.key(brand, identifier)
        return (Conversation.select().join(ConversationSubject)
                .where((ConversationSubject.brand == brand.id)
                       & (ConversationSubject.key == subject))
                .order_by(Conversation.created_at, Conversation.id))


def normalise(identifier: str) -> str:
    value = identifier.strip()
    return value.lower() if "@" in value else value


def identifiers(conversation: Conversation) -> set[str]:
    """The customer identifiers a conversation carries: the API's customer id and email, and
    the verified customer's id and profile email (appliance/workflows/state.py)."""
    customer: dict[str, Any] = conversation.customer or {}
    state: dict[str, Any] = conversation.state or {}
    values = state.get("values")
    profile = values.get("customer") if isinstance(values, dict) else None
    found = [customer.get("id"), customer.get("email"), state.get("customer_id"),
             profile.get("email") if isinstance(profile, dict) else None]
    return {str(value) for value in _present(found)}


def _present(values: Iterable[Any]) -> Iterable[Any]:
    return (value for value in values
            if value is not None and not isinstance(value, (dict, list)) and str(value).strip())
