"""Handoffs: each escalation with its packet and summary, who took it, how it ended and its
review; human agents' messages name their author."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator, migrate


def _models() -> list[type[peewee.Model]]:
    class Base(peewee.Model):
        pass

    class Brand(Base):
        class Meta:
            table_name = "brand"

    class Conversation(Base):
        class Meta:
            table_name = "conversation"

    class AdminUser(Base):
        class Meta:
            table_name = "admin_user"

    class Handoff(Base):
        public_id = peewee.CharField(max_length=40, unique=True)
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        conversation = peewee.ForeignKeyField(Conversation, on_delete="CASCADE")
        reason = peewee.CharField(max_length=64, index=True)
        workflow = peewee.CharField(max_length=64, null=True)
        status = peewee.CharField(max_length=16, index=True)
        packet = peewee.TextField()
        summary = peewee.TextField()
        created_at = peewee.DateTimeField(index=True)
        assigned_to = peewee.ForeignKeyField(AdminUser, null=True, on_delete="SET NULL")
        assigned_at = peewee.DateTimeField(null=True)
        returned_at = peewee.DateTimeField(null=True)
        resolved_at = peewee.DateTimeField(null=True)
        outcome = peewee.CharField(max_length=32, null=True)
        review = peewee.CharField(max_length=32, null=True)
        review_note = peewee.TextField(null=True)
        reviewed_by = peewee.CharField(max_length=150, null=True)
        reviewed_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "handoff"

    return [Handoff]


def up(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.create_tables(models)
    migrator = SchemaMigrator.from_database(db)
    migrate(migrator.add_column("message", "author", peewee.CharField(max_length=150,
                                                                      null=True)))


def down(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(migrator.drop_column("message", "author"))
    models = _models()
    with db.bind_ctx(models):
        db.drop_tables(models)
