"""Idempotency keys for turns: a client that retries a message with the same key gets the
original reply, and the turn never runs twice.

A key is claimed before the turn runs (a row naming the worker that runs it, committed at
once, so that a concurrent retry sees it) and completed inside the turn's own transaction
(`Claim.complete`, with the reply's body): the turn and its stored reply commit together or
not at all. A worker killed mid-turn leaves a claim whose owner is dead; the next retry takes
it over and runs the turn, once. Keys are kept for `KEY_TTL` (the `idempotency.purge` job).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import socket
from dataclasses import dataclass
from typing import Any

import peewee

from appliance.db.models import Brand, IdempotencyKey, utcnow
from appliance.errors import Conflict, InProgress, InvalidRequest

#: How long a key and its reply are kept.
KEY_TTL = dt.timedelta(hours=24)
#: A claim by a worker on another node is taken over after this long: no turn runs that
#: long (the model budget and the tools' timeouts are far shorter), so its worker is gone.
CLAIM_LEASE = dt.timedelta(minutes=10)
#: Keys are what clients send in a header: printable ASCII, as Stripe and the IETF draft.
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
HEADER = "Idempotency-Key"


def this_worker() -> str:
    """The owner name of claims made by this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def fingerprint(*parts: Any) -> str:
    """sha256 of what a request asks, JSON-encoded with sorted keys."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _owner_gone(owner: str, claimed_at: dt.datetime, now: dt.datetime) -> bool:
    """Whether the worker named `owner` can no longer finish its turn: a dead process on this
    host, or any claim older than the lease."""
    if now - claimed_at > CLAIM_LEASE:
        return True
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class Replay:
    """The reply stored for a key: send it again as it was."""

    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Claim:
    """This worker runs the turn for the key; `complete` or `release` ends the claim."""

    row_id: int
    owner: str

    def complete(self, status: int, body: dict[str, Any]) -> None:
        """Store the reply. Call it inside the turn's transaction: if another worker took the
        key over meanwhile, this raises InProgress and the turn rolls back."""
        stored = (IdempotencyKey.update(owner=None, status=status, response=body)
                  .where((IdempotencyKey.id == self.row_id)
                         & (IdempotencyKey.owner == self.owner)).execute())
        if stored != 1:
            raise InProgress("another request with this Idempotency-Key ran the turn",
                             retry_after_s=1)

    def release(self) -> None:
        """Forget the claim of a turn that failed before its reply was stored: a retry with
        the key runs it afresh."""
        IdempotencyKey.delete().where(
            (IdempotencyKey.id == self.row_id) & (IdempotencyKey.owner == self.owner)
            & IdempotencyKey.status.is_null()).execute()


class IdempotencyKeys:
    """Claims and replays keys, per brand, on the database every worker shares."""

    def __init__(self, db: peewee.Database) -> None:
        self._db = db

    def claim(self, brand: Brand, key: str, asked: str) -> Claim | Replay:
        """Claim `key` for a request whose fingerprint is `asked`, or the reply it already
        got. Raises InvalidRequest for a malformed key, Conflict (`idempotency_conflict`) when
        the key was used for another request, InProgress while another worker runs it."""
        if not _KEY.match(key):
            raise InvalidRequest(f"{HEADER}: 1 to 255 printable ASCII characters",
                                 param=HEADER, code="invalid_idempotency_key")
        owner, now = this_worker(), utcnow()
        while True:
            row = IdempotencyKey.get_or_none((IdempotencyKey.brand == brand.id)
                                             & (IdempotencyKey.key == key))
            if row is None:
                try:
                    with self._db.atomic():
                        created = IdempotencyKey.create(brand=brand.id, key=key,
                                                        fingerprint=asked, owner=owner,
                                                        claimed_at=now, created_at=now)
                    return Claim(created.id, owner)
                except peewee.IntegrityError:
                    continue  # another worker claimed it first: read what it holds
            if now - row.created_at > KEY_TTL:
                IdempotencyKey.delete().where(IdempotencyKey.id == row.id).execute()
                continue
            if row.fingerprint != asked:
                raise Conflict(f"{HEADER} was already used for another request",
                               param=HEADER, code="idempotency_conflict")
            if row.status is not None:
                return Replay(row.status, row.response)
            if not _owner_gone(row.owner or "", row.claimed_at, now):
                raise InProgress("a request with this Idempotency-Key is still running",
                                 retry_after_s=1)
            taken = (IdempotencyKey.update(owner=owner, claimed_at=now)
                     .where((IdempotencyKey.id == row.id) & (IdempotencyKey.owner == row.owner)
                            & IdempotencyKey.status.is_null()).execute())
            if taken == 1:
                return Claim(row.id, owner)

    def purge(self, now: dt.datetime | None = None) -> int:
        """Delete keys older than KEY_TTL; return how many."""
        cutoff = (now or utcnow()) - KEY_TTL
        deleted: int = IdempotencyKey.delete().where(
            IdempotencyKey.created_at < cutoff).execute()
        return deleted
