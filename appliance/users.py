"""Admin users: the people who use the admin pages, with hashed passwords and a role."""

from __future__ import annotations

import peewee
from werkzeug.security import check_password_hash, generate_password_hash

from appliance import audit
from appliance.db.models import AdminUser, Brand, utcnow
from appliance.errors import Conflict, InvalidRequest

#: Roles, most powerful first. it_admin: everything; cx_editor: brands' agents and content;
#: viewer: read only; human_agent: the handoff queue.
ROLES = ("it_admin", "cx_editor", "viewer", "human_agent")
MIN_PASSWORD = 10

# A hash to check against when the user does not exist, so both cases take the same time.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


class UserService:
    def __init__(self, db: peewee.Database) -> None:
        self._db = db

    def create(
        self, username: str, password: str, role: str, brand: Brand | None = None,
        *, actor: str,
    ) -> AdminUser:
        username = username.strip()
        if not username:
            raise InvalidRequest("username: must not be empty", param="username")
        if role not in ROLES:
            raise InvalidRequest(f"role: one of {', '.join(ROLES)}", param="role")
        if len(password) < MIN_PASSWORD:
            raise InvalidRequest(f"password: at least {MIN_PASSWORD} characters",
                                 param="password")
        with self._db.atomic():
            if AdminUser.get_or_none(AdminUser.username == username) is not None:
                raise Conflict(f"user {username!r} already exists", code="user_exists")
            user = AdminUser.create(
                username=username, password_hash=generate_password_hash(password), role=role,
                brand=brand,
            )
            audit.record(actor, "user.create", username, {"role": role})
        return user

    def set_password(self, username: str, password: str, *, actor: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise InvalidRequest(f"password: at least {MIN_PASSWORD} characters",
                                 param="password")
        with self._db.atomic():
            AdminUser.update(password_hash=generate_password_hash(password)).where(
                AdminUser.username == username
            ).execute()
            audit.record(actor, "user.set_password", username)

    def authenticate(self, username: str, password: str) -> AdminUser | None:
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

    def get(self, user_id: int) -> AdminUser | None:
        user: AdminUser | None = AdminUser.get_or_none(AdminUser.id == user_id)
        return None if user is None or user.disabled else user

    def all(self) -> list[AdminUser]:
        return list(AdminUser.select().order_by(AdminUser.username))
