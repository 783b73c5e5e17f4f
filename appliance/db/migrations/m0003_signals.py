"""The constellation: each turn trace records the signals read from the customer's message
(intent, sentiment, human request, with the model versions that read them)."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator, migrate


def up(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(migrator.add_column("turn_trace", "signals", peewee.TextField(null=True)))


def down(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(migrator.drop_column("turn_trace", "signals"))
