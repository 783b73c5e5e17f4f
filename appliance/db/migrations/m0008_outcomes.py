"""Outcomes: what each conversation achieved, with its evidence, and the customer's feedback."""

from __future__ import annotations

import peewee


def _models() -> list[type[peewee.Model]]:
    class Base(peewee.Model):
        pass

    class Brand(Base):
        class Meta:
            table_name = "brand"

    class Conversation(Base):
        class Meta:
            table_name = "conversation"

    class Message(Base):
        class Meta:
            table_name = "message"

    class Outcome(Base):
        conversation = peewee.ForeignKeyField(Conversation, unique=True, on_delete="CASCADE")
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        type = peewee.CharField(max_length=16)
        how = peewee.CharField(max_length=16, null=True)
        state = peewee.CharField(max_length=16, index=True)
        evidence = peewee.TextField()
        transcript_sha256 = peewee.CharField(max_length=64)
        attributed_at = peewee.DateTimeField(index=True)
        settles_at = peewee.DateTimeField(index=True)
        settled_at = peewee.DateTimeField(null=True)
        reversed_at = peewee.DateTimeField(null=True)
        reversal_reason = peewee.CharField(max_length=200, null=True)

        class Meta:
            table_name = "outcome"

    class Feedback(Base):
        conversation = peewee.ForeignKeyField(Conversation, on_delete="CASCADE")
        resolved = peewee.BooleanField(null=True)
        csat = peewee.SmallIntegerField(null=True)
        comment = peewee.TextField(null=True)
        message = peewee.ForeignKeyField(Message, null=True, on_delete="SET NULL")
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "feedback"

    return [Outcome, Feedback]


def up(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.create_tables(models)


def down(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.drop_tables(list(reversed(models)))
