"""Privacy: `conversation.vault` (the sealed token vault behind a conversation's placeholders),
`conversation_subject` (who a conversation is about, by keyed hash), `legal_hold`, and
`purged_conversation` (what the ledger needs of a conversation deleted by policy)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator, migrate


def _models() -> list[type[peewee.Model]]:
    class Brand(peewee.Model):
        class Meta:
            table_name = "brand"

    class Conversation(peewee.Model):
        class Meta:
            table_name = "conversation"

    class ConversationSubject(peewee.Model):
        conversation = peewee.ForeignKeyField(Conversation, on_delete="CASCADE")
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        key = peewee.CharField(max_length=64)

        class Meta:
            table_name = "conversation_subject"
            indexes = ((("conversation", "key"), True), (("brand", "key"), False))

    class LegalHold(peewee.Model):
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        subject_key = peewee.CharField(max_length=64, null=True, index=True)
        conversation = peewee.CharField(max_length=40, null=True, index=True)
        reason = peewee.CharField(max_length=500)
        created_by = peewee.CharField(max_length=150)
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "legal_hold"

    class PurgedConversation(peewee.Model):
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        public_id = peewee.CharField(max_length=40, unique=True)
        reason = peewee.CharField(max_length=16)
        transcript_sha256 = peewee.CharField(max_length=64)
        purged_at = peewee.DateTimeField()

        class Meta:
            table_name = "purged_conversation"

    return [ConversationSubject, LegalHold, PurgedConversation]


def up(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.create_tables(models)
    migrator = SchemaMigrator.from_database(db)
    migrate(migrator.add_column("conversation", "vault", peewee.TextField(null=True)))


def down(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(migrator.drop_column("conversation", "vault"))
    models = _models()
    with db.bind_ctx(models):
        db.drop_tables(models)
