"""One leader among the nodes' schedulers: each `appliance scheduler` process keeps a row in
`scheduler_node` (its role, since when it leads, when it was last seen), and every job run
records the node that ran it."""

from __future__ import annotations

import peewee
from playhouse.migrate import SchemaMigrator, migrate


def _models() -> list[type[peewee.Model]]:
    class SchedulerNode(peewee.Model):
        name = peewee.CharField(max_length=255, unique=True)
        pid = peewee.IntegerField()
        role = peewee.CharField(max_length=16)
        started_at = peewee.DateTimeField()
        leader_since = peewee.DateTimeField(null=True)
        last_seen = peewee.DateTimeField()

        class Meta:
            table_name = "scheduler_node"

    return [SchedulerNode]


def up(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.create_tables(models)
    migrator = SchemaMigrator.from_database(db)
    migrate(migrator.add_column("job_run", "node", peewee.CharField(max_length=255, null=True)))


def down(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(migrator.drop_column("job_run", "node"))
    models = _models()
    with db.bind_ctx(models):
        db.drop_tables(models)
