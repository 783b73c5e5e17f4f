"""Signed customer identities: each brand's identity secrets."""

from __future__ import annotations

import peewee


def _models() -> list[type[peewee.Model]]:
    class Base(peewee.Model):
        pass

    class Brand(Base):
        class Meta:
            table_name = "brand"

    class IdentitySecret(Base):
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        secret = peewee.CharField(max_length=100)
        created_by = peewee.CharField(max_length=150)
        created_at = peewee.DateTimeField()
        revoked_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "identity_secret"

    return [IdentitySecret]


def up(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.create_tables(models)


def down(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.drop_tables(list(reversed(models)))
