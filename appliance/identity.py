"""Signed customer identities: how a brand's own site vouches for the customer it logged in.

The brand's server signs the customer's identifier with one of the brand's identity secrets,
as helpdesk widgets do (Intercom's `user_hash`, Zendesk's messaging JWT):

    signature = hex(HMAC-SHA256(secret, identifier))

where the identifier is `customer.id`, or `customer.email` when there is no id. The page hands
both to the widget (or the brand's server passes them to `POST /v1/conversations`). A
conversation opened with a good signature starts at the `asserted` assurance level; a bad one
is a 401 and nothing is opened. The public widget may name a customer only this way: an id or
an email without a signature is refused, since anyone can type one.

Secrets are created and revoked by the brand's admins (`appliance brands identity-secret`).
Several may be live at once, so that a rotation has overlap: create the new one, move the
site to it, revoke the old one. They are stored as is, like webhook secrets, because verifying
an HMAC needs the secret itself; the database and data directory are private to the appliance.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import IntEnum
from typing import Any

import peewee

from appliance import audit
from appliance.db.models import Brand, IdentitySecret, utcnow
from appliance.errors import AuthenticationError, NotFound

SECRET_PREFIX = "sbi_"


class Assurance(IntEnum):
    """How sure the agent is of who the customer is, weakest first. A workflow that needs a
    level is satisfied by it or any stronger one."""

    NONE = 0
    #: Email, or name + zip: what the customer says, matched against the brand's records.
    CONTACT = 1
    #: Two of date of birth, email, phone, address (never a name or an id alone).
    KNOWLEDGE = 2
    #: A one-time code sent through the brand's system and checked by it.
    ONE_TIME_CODE = 3
    #: The brand's own site logged the customer in and signed their identity.
    ASSERTED = 4

    @property
    def label(self) -> str:
        return self.name.lower()


def signature(secret: str, identifier: str) -> str:
    """The signature a brand's server computes for a customer's identifier."""
    return hmac.new(secret.encode(), identifier.encode(), hashlib.sha256).hexdigest()


class IdentityService:
    def __init__(self, db: peewee.Database) -> None:
        self._db = db

    def create_secret(self, brand: Brand, *, actor: str,
                      remote_addr: str | None = None) -> tuple[IdentitySecret, str]:
        """A new live secret; the plaintext is returned here and shown once by the callers."""
        plaintext = SECRET_PREFIX + secrets.token_urlsafe(32)
        with self._db.atomic():
            row = IdentitySecret.create(brand=brand, secret=plaintext, created_by=actor)
            audit.record(actor, "identity_secret.create", brand.slug, {"secret_id": row.id},
                         remote_addr)
        return row, plaintext

    def secrets(self, brand: Brand) -> list[IdentitySecret]:
        return list(IdentitySecret.select().where(IdentitySecret.brand == brand)
                    .order_by(IdentitySecret.id))

    def revoke_secret(self, brand: Brand, secret_id: int, *, actor: str,
                      remote_addr: str | None = None) -> IdentitySecret:
        with self._db.atomic():
            row = IdentitySecret.get_or_none((IdentitySecret.id == secret_id)
                                             & (IdentitySecret.brand == brand))
            if row is None:
                raise NotFound(f"no identity secret {secret_id} for brand {brand.slug!r}",
                               code="identity_secret_not_found")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                row.save()
                audit.record(actor, "identity_secret.revoke", brand.slug,
                             {"secret_id": secret_id}, remote_addr)
        return row

    def customer(self, brand: Brand, given: dict[str, Any], *, public: bool) -> dict[str, Any]:
        """What a new conversation records of its customer, from what the caller sent.

        `given` holds the request's `customer` fields (`id`, `name`, `email`, `signature`).
        With a signature that matches one of the brand's live secrets, the result carries
        `assurance: "asserted"`; a signature that matches none is an AuthenticationError.
        `public` callers (the widget) may not name a customer without a signature. The
        signature itself is never stored.
        """
        customer = {key: value for key, value in given.items() if key != "signature"}
        identifier = customer.get("id") or customer.get("email")
        sent = given.get("signature")
        if sent is None:
            if public and identifier is not None:
                raise AuthenticationError(
                    "the widget may name a customer only with the brand's identity signature",
                    code="identity_signature_required")
            return customer
        if identifier is None or not self._matches(brand, str(identifier), str(sent)):
            # One answer for every failure: nothing says whether the secret, the identifier
            # or the signature was wrong.
            raise AuthenticationError("the customer's identity signature does not match",
                                      code="invalid_identity_signature")
        return {**customer, "assurance": Assurance.ASSERTED.label}

    def _matches(self, brand: Brand, identifier: str, sent: str) -> bool:
        live = (IdentitySecret.select(IdentitySecret.secret)
                .where((IdentitySecret.brand == brand) & IdentitySecret.revoked_at.is_null()))
        # Compare against every live secret, not stopping at the first match: the time taken
        # says nothing about which secret, if any, matched.
        matched = False
        for row in live:
            matched |= hmac.compare_digest(signature(row.secret, identifier), sent.lower())
        return matched
