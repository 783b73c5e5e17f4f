"""Failed admin sign-ins, counted per username and per client address in the database (so the
count holds across gunicorn workers and web nodes), and the lock-outs they earn.

After `max_failures` failures (per username; `max_failures_per_address` per address) the key is
locked for `lockout_s`; each failure after a lock-out ended doubles the next one, up to
`lockout_max_s`. Failures are forgotten `window_s` after the last one. An it_admin lifts a
lock-out with `unlock`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import peewee

from appliance import audit
from appliance.config import Settings
from appliance.db.models import LoginThrottle as Row
from appliance.db.models import utcnow
from appliance.errors import LoginThrottled

USER = "user:"
ADDRESS = "addr:"


@dataclass(frozen=True)
class ThrottlePolicy:
    max_failures: int
    max_failures_per_address: int
    lockout_s: int
    lockout_max_s: int
    window_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ThrottlePolicy:
        return cls(settings.login_max_failures, settings.login_max_failures_per_address,
                   settings.login_lockout_s, settings.login_lockout_max_s,
                   settings.login_failure_window_s)

    def limit(self, key: str) -> int:
        return self.max_failures if key.startswith(USER) else self.max_failures_per_address

    def lockout(self, key: str, failures: int) -> dt.timedelta | None:
        """How long `failures` lock `key` for: None below the limit, then doubling."""
        beyond = failures - self.limit(key)
        if beyond < 0:
            return None
        return dt.timedelta(seconds=min(self.lockout_max_s, self.lockout_s * 2 ** min(beyond, 32)))


@dataclass(frozen=True)
class Lockout:
    """A username or address that may not sign in before `until` (naive UTC)."""

    key: str
    failures: int
    until: dt.datetime

    @property
    def kind(self) -> str:
        return "username" if self.key.startswith(USER) else "address"

    @property
    def subject(self) -> str:
        return self.key.partition(":")[2]


def _keys(username: str, address: str | None) -> list[str]:
    # NUL is dropped: no database stores it, and an attacker may send it.
    keys = [USER + username.replace("\x00", "").strip()[:200]]
    if address:
        keys.append(ADDRESS + address)
    return keys


def _refusal(until: dt.datetime, now: dt.datetime) -> LoginThrottled:
    wait = math.ceil((until - now).total_seconds())
    return LoginThrottled(
        f"Too many failed sign-ins: try again in {wait} seconds, or ask an IT admin to lift "
        "the lock-out.", retry_after_s=wait)


class LoginThrottleService:
    def __init__(self, db: peewee.Database, policy: ThrottlePolicy) -> None:
        self._db = db
        self._policy = policy

    def check(self, username: str, address: str | None) -> None:
        """Raise LoginThrottled while the username or the address is locked out."""
        now = utcnow()
        locked = (Row.select(peewee.fn.MAX(Row.locked_until))
                  .where(Row.key.in_(_keys(username, address)) & (Row.locked_until > now))
                  .scalar())
        if locked is not None:
            raise _refusal(locked, now)

    def failed(self, username: str, address: str | None) -> LoginThrottled | None:
        """Count a failed sign-in against the username and the address; the refusal when
        this failure locks either of them out."""
        now = utcnow()
        forgotten = now - dt.timedelta(seconds=self._policy.window_s)
        longest: dt.datetime | None = None
        with self._db.atomic():
            # Keys whose failures are forgotten go, so that a spray of usernames does not
            # grow the table for good.
            Row.delete().where((Row.last_failure_at < forgotten) & (
                Row.locked_until.is_null() | (Row.locked_until < now))).execute()
            for key in _keys(username, address):
                Row.insert(key=key, failures=0, last_failure_at=now).on_conflict_ignore().execute()
                # One UPDATE, so that workers failing at once each count.
                Row.update(
                    failures=peewee.Case(None, [(Row.last_failure_at < forgotten, 1)],
                                         Row.failures + 1),
                    last_failure_at=now,
                ).where(Row.key == key).execute()
                failures = Row.get(Row.key == key).failures
                lockout = self._policy.lockout(key, failures)
                if lockout is not None:
                    until = now + lockout
                    Row.update(locked_until=until).where(Row.key == key).execute()
                    longest = until if longest is None else max(longest, until)
        return None if longest is None else _refusal(longest, now)

    def succeeded(self, username: str) -> None:
        """A right password forgets the username's failures (never the address's: one
        account of an attacker's must not clear the address they try others from)."""
        Row.delete().where(Row.key == _keys(username, None)[0]).execute()

    def lockouts(self) -> list[Lockout]:
        """Usernames and addresses locked out now, the longest first."""
        rows = Row.select().where(Row.locked_until > utcnow()).order_by(Row.locked_until.desc())
        return [Lockout(row.key, row.failures, row.locked_until) for row in rows
                if row.locked_until is not None]

    def unlock(self, *, username: str | None = None, address: str | None = None,
               actor: str, remote_addr: str | None = None) -> bool:
        """Lift the lock-out of a username or an address (and forget its failures); False
        when there was nothing to lift."""
        key = _keys(username, None)[0] if username is not None else ADDRESS + (address or "")
        with self._db.atomic():
            lifted = Row.delete().where(Row.key == key).execute() > 0
            if lifted:
                audit.record(actor, "user.unlock", key, None, remote_addr)
        return bool(lifted)
