"""Webhooks: each brand's helpdesk endpoints and the outbox of deliveries to them."""

from __future__ import annotations

import peewee


def _models() -> list[type[peewee.Model]]:
    class Base(peewee.Model):
        pass

    class Brand(Base):
        class Meta:
            table_name = "brand"

    class WebhookEndpoint(Base):
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        url = peewee.TextField()
        secret = peewee.CharField(max_length=100)
        events = peewee.TextField()
        active = peewee.BooleanField()
        created_by = peewee.CharField(max_length=150)
        created_at = peewee.DateTimeField()
        disabled_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "webhook_endpoint"

    class WebhookDelivery(Base):
        public_id = peewee.CharField(max_length=40, unique=True)
        endpoint = peewee.ForeignKeyField(WebhookEndpoint, on_delete="CASCADE")
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        event_id = peewee.CharField(max_length=40, index=True)
        event = peewee.CharField(max_length=64)
        body = peewee.TextField()
        status = peewee.CharField(max_length=16)
        attempts = peewee.IntegerField()
        next_attempt_at = peewee.DateTimeField()
        last_status = peewee.IntegerField(null=True)
        last_error = peewee.CharField(max_length=200, null=True)
        created_at = peewee.DateTimeField()
        delivered_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "webhook_delivery"
            indexes = ((("status", "next_attempt_at"), False),)

    return [WebhookEndpoint, WebhookDelivery]


def up(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.create_tables(models)


def down(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.drop_tables(list(reversed(models)))
