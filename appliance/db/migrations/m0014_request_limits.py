"""Requests under load: Idempotency-Key records for turns (kept 24 hours) and the token
buckets of the rate limits, in the database so that every gunicorn worker and every node
shares them."""

from __future__ import annotations

import peewee


def _models() -> list[type[peewee.Model]]:
    class Base(peewee.Model):
        pass

    class Brand(Base):
        class Meta:
            table_name = "brand"

    class IdempotencyKey(Base):
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        key = peewee.CharField(max_length=255)
        fingerprint = peewee.CharField(max_length=64)
        owner = peewee.CharField(max_length=255, null=True)
        claimed_at = peewee.DateTimeField()
        status = peewee.IntegerField(null=True)
        response = peewee.TextField(null=True)
        created_at = peewee.DateTimeField(index=True)

        class Meta:
            table_name = "idempotency_key"
            indexes = ((("brand", "key"), True),)

    class RateBucket(Base):
        name = peewee.CharField(max_length=255, unique=True)
        # Double precision: a take compares the tokens it read (PostgreSQL's real would
        # round them, and the compare-and-set would never match).
        tokens = peewee.DoubleField()
        updated_at = peewee.DateTimeField(index=True)

        class Meta:
            table_name = "rate_bucket"

    return [IdempotencyKey, RateBucket]


def up(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.create_tables(models)


def down(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.drop_tables(list(reversed(models)))
