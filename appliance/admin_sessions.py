"""Admin sessions kept in the database, so that signing out, a password change and disabling a
user end every session of that user at once, on every web worker and node.

The browser's (signed) session cookie holds only a random token; the table holds its sha256.
A session ends after `idle` without a request, and `absolute` after sign-in however busy.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from appliance.config import Settings
from appliance.db.models import AdminSession, AdminUser, utcnow
from appliance.users import usable

#: A session's last use is written at most this often: a page's every request need not write.
SEEN_RESOLUTION = dt.timedelta(seconds=60)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionPolicy:
    idle: dt.timedelta
    absolute: dt.timedelta

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionPolicy:
        return cls(dt.timedelta(minutes=settings.session_idle_minutes),
                   dt.timedelta(hours=settings.session_max_hours))


class SessionStore:
    def __init__(self, policy: SessionPolicy) -> None:
        self._policy = policy

    def start(self, user: AdminUser, remote_addr: str | None) -> str:
        """A new session for `user`; returns the token the cookie carries. Sessions that
        expired unseen (their browser never came back) are deleted on the way."""
        now = utcnow()
        AdminSession.delete().where(
            (AdminSession.seen_at < now - self._policy.idle)
            | (AdminSession.created_at < now - self._policy.absolute)).execute()
        token = secrets.token_urlsafe(32)
        AdminSession.create(token_hash=_hash(token), user=user, remote_addr=remote_addr)
        return token

    def user_of(self, token: str) -> AdminUser | None:
        """The user of a live session, or None: an unknown token, a session past its idle or
        absolute expiry (which is then deleted), or a user who may no longer sign in."""
        row = (AdminSession.select(AdminSession, AdminUser).join(AdminUser)
               .where(AdminSession.token_hash == _hash(token)).first())
        if row is None:
            return None
        now = utcnow()
        if (now - row.seen_at > self._policy.idle
                or now - row.created_at > self._policy.absolute):
            row.delete_instance()
            return None
        user: AdminUser = row.user
        if not usable(user):
            return None
        if now - row.seen_at > SEEN_RESOLUTION:
            AdminSession.update(seen_at=now).where(AdminSession.id == row.id).execute()
        return user

    def end(self, token: str) -> None:
        """Sign this session out."""
        AdminSession.delete().where(AdminSession.token_hash == _hash(token)).execute()
