"""Workflows: versioned definitions per brand, the brand's toolset, a log of every tool call,
and each conversation's workflow state."""

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

    class Workflow(Base):
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        name = peewee.CharField(max_length=64)
        status = peewee.CharField(max_length=16)
        published_version = peewee.IntegerField(null=True)
        created_at = peewee.DateTimeField()
        updated_at = peewee.DateTimeField()

        class Meta:
            table_name = "workflow"
            indexes = ((("brand", "name"), True),)

    class WorkflowVersion(Base):
        workflow = peewee.ForeignKeyField(Workflow, on_delete="CASCADE")
        number = peewee.IntegerField()
        status = peewee.CharField(max_length=16)
        source = peewee.TextField()
        definition = peewee.TextField()
        note = peewee.CharField(max_length=500, null=True)
        created_by = peewee.CharField(max_length=150)
        created_at = peewee.DateTimeField()
        published_at = peewee.DateTimeField(null=True)

        class Meta:
            table_name = "workflow_version"
            indexes = ((("workflow", "number"), True),)

    class Toolset(Base):
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE", unique=True)
        source = peewee.TextField()
        definition = peewee.TextField()
        updated_by = peewee.CharField(max_length=150)
        updated_at = peewee.DateTimeField()

        class Meta:
            table_name = "toolset"

    class ToolCall(Base):
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        conversation = peewee.ForeignKeyField(Conversation, null=True, on_delete="CASCADE")
        workflow = peewee.CharField(max_length=64, null=True)
        tool = peewee.CharField(max_length=64)
        method = peewee.CharField(max_length=8)
        path = peewee.TextField()
        arguments = peewee.TextField()
        status = peewee.CharField(max_length=16)
        http_status = peewee.IntegerField(null=True)
        code = peewee.CharField(max_length=64)
        latency_ms = peewee.FloatField()
        attempts = peewee.IntegerField()
        idempotency_key = peewee.CharField(max_length=200, null=True)
        at = peewee.DateTimeField(index=True)

        class Meta:
            table_name = "tool_call"

    return [Workflow, WorkflowVersion, Toolset, ToolCall]


def up(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.create_tables(models)
    migrator = SchemaMigrator.from_database(db)
    migrate(migrator.add_column("conversation", "state", peewee.TextField(null=True)))


def down(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(migrator.drop_column("conversation", "state"))
    models = _models()
    with db.bind_ctx(models):
        db.drop_tables(list(reversed(models)))
