"""Admin users: the people who use the admin pages, with hashed passwords and a role."""

from __future__ import annotations

from collections.abc import Iterable

import peewee
from werkzeug.security import check_password_hash, generate_password_hash

from appliance import audit
from appliance.db.models import AdminSession, AdminUser, Brand, utcnow
from appliance.errors import Conflict, InvalidRequest, NotFound

#: Roles, most powerful first. it_admin: everything; cx_editor: brands' agents and content;
#: viewer: read only; human_agent: the handoff queue.
ROLES = ("it_admin", "cx_editor", "viewer", "human_agent")
#: Roles that work for one brand: an account of theirs without a brand sees nothing (an
#: unscoped account would otherwise see every brand).
BRAND_ROLES = ("cx_editor", "human_agent")
MIN_PASSWORD = 10

# A hash to check against when the user does not exist, so both cases take the same time.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def needs_brand(role: str, brand_id: int | None) -> bool:
    """True for a brand role without a brand: such an account may not sign in."""
    return role in BRAND_ROLES and brand_id is None


def usable(user: AdminUser) -> bool:
    """The account may be signed in: enabled, and with a brand where its role needs one."""
    return not user.disabled and not needs_brand(user.role, user.brand_id)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"password: at least {MIN_PASSWORD} characters", param="password")


def _end_sessions(user: AdminUser) -> None:
    AdminSession.delete().where(AdminSession.user == user.id).execute()


class UserService:
    def __init__(self, db: peewee.Database) -> None:
        self._db = db

    def create(
        self, username: str, password: str, role: str, brand: Brand | None = None,
        *, actor: str,
    ) -> AdminUser:
        """A new user; InvalidRequest for a bad field (a cx_editor or human_agent without a
        brand included), Conflict when the username is taken."""
        username = username.strip()
        if not username:
            raise InvalidRequest("username: must not be empty", param="username")
        if role not in ROLES:
            raise InvalidRequest(f"role: one of {', '.join(ROLES)}", param="role")
        if needs_brand(role, None if brand is None else brand.id):
            raise InvalidRequest(f"brand: a {role} works for one brand; choose it",
                                 param="brand")
        _check_password(password)
        with self._db.atomic():
            if AdminUser.get_or_none(AdminUser.username == username) is not None:
                raise Conflict(f"user {username!r} already exists", code="user_exists")
            user = AdminUser.create(
                username=username, password_hash=generate_password_hash(password), role=role,
                brand=brand,
            )
            audit.record(actor, "user.create", username, {"role": role})
        return user

    def named(self, username: str) -> AdminUser:
        """The user `username`; NotFound when there is none."""
        user: AdminUser | None = AdminUser.get_or_none(AdminUser.username == username.strip())
        if user is None:
            raise NotFound(f"no user {username!r}", code="user_not_found")
        return user

    def set_password(self, username: str, password: str, *, actor: str,
                     remote_addr: str | None = None) -> None:
        """Change the password and end every session of the user."""
        _check_password(password)
        with self._db.atomic():
            user = self.named(username)
            AdminUser.update(password_hash=generate_password_hash(password)).where(
                AdminUser.id == user.id).execute()
            _end_sessions(user)
            audit.record(actor, "user.set_password", user.username, None, remote_addr)

    def set_disabled(self, username: str, disabled: bool, *, actor: str,
                     remote_addr: str | None = None) -> AdminUser:
        """Disable (ending every session) or enable the user. An it_admin cannot disable
        themselves: the last one would lock everyone out of the users page."""
        with self._db.atomic():
            user = self.named(username)
            if disabled and user.username == actor:
                raise InvalidRequest("you cannot disable your own account", param="username")
            AdminUser.update(disabled=disabled).where(AdminUser.id == user.id).execute()
            if disabled:
                _end_sessions(user)
            audit.record(actor, "user.disable" if disabled else "user.enable", user.username,
                         None, remote_addr)
        return self.named(username)

    def set_brand(self, username: str, brand: Brand | None, *, actor: str,
                  remote_addr: str | None = None) -> AdminUser:
        """Limit the user to `brand` (None: every brand, for roles that allow it); the user's
        sessions end, since what they may see changed."""
        with self._db.atomic():
            user = self.named(username)
            if needs_brand(user.role, None if brand is None else brand.id):
                raise InvalidRequest(f"brand: a {user.role} works for one brand; choose it",
                                     param="brand")
            AdminUser.update(brand=brand).where(AdminUser.id == user.id).execute()
            _end_sessions(user)
            audit.record(actor, "user.set_brand", user.username,
                         {"brand": brand.slug if brand else None}, remote_addr)
        return self.named(username)

    def authenticate(self, username: str, password: str) -> AdminUser | None:
        """The user whose password this is, or None (unknown, wrong or disabled)."""
        user = AdminUser.get_or_none(AdminUser.username == username.strip())
        if user is None:
            check_password_hash(_DUMMY_HASH, password)
            return None
        if user.disabled or not check_password_hash(user.password_hash, password):
            return None
        AdminUser.update(last_login_at=utcnow()).where(AdminUser.id == user.id).execute()
        return user

    def exists(self, username: str) -> bool:
        return AdminUser.get_or_none(AdminUser.username == username.strip()) is not None

    def usernames(self, ids: Iterable[int]) -> dict[int, str]:
        """The usernames of these users, by id, in one query."""
        wanted = set(ids)
        if not wanted:
            return {}
        rows = AdminUser.select(AdminUser.id, AdminUser.username).where(
            AdminUser.id.in_(wanted))
        return {user.id: user.username for user in rows}

    def all(self) -> list[AdminUser]:
        return list(AdminUser.select().order_by(AdminUser.username))
