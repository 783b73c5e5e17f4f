"""Admin sessions kept server-side, and failed sign-ins counted per username and per address.

Existing cx_editor and human_agent accounts without a brand are left as they are: from this
version on such an account signs in to nothing (appliance.users.needs_brand) until an it_admin
assigns it a brand, instead of seeing every brand.
"""

from __future__ import annotations

import peewee


def _models() -> list[type[peewee.Model]]:
    class Base(peewee.Model):
        pass

    class AdminUser(Base):
        class Meta:
            table_name = "admin_user"

    class AdminSession(Base):
        token_hash = peewee.CharField(max_length=64, unique=True)
        user = peewee.ForeignKeyField(AdminUser, on_delete="CASCADE")
        created_at = peewee.DateTimeField()
        seen_at = peewee.DateTimeField()
        remote_addr = peewee.CharField(max_length=64, null=True)

        class Meta:
            table_name = "admin_session"

    class LoginThrottle(Base):
        key = peewee.CharField(max_length=220, unique=True)
        failures = peewee.IntegerField(default=0)
        last_failure_at = peewee.DateTimeField()
        locked_until = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "login_throttle"

    return [AdminSession, LoginThrottle]


def up(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.create_tables(models)


def down(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.drop_tables(list(reversed(models)))
