"""Each turn trace keeps its supervisor's action as a column, so that the reports find the
questions the agent could not answer (no answer in the knowledge, asked to rephrase, out of
scope) with an indexed WHERE instead of reading every trace's decision."""

from __future__ import annotations

import json

import peewee
from playhouse.migrate import SchemaMigrator, migrate

#: Traces read and updated per round trip of the backfill.
_BATCH = 1000


def _backfill(db: peewee.Database) -> None:
    """The action each earlier trace's decision already records."""
    mark = db.param  # "?" on SQLite, "%s" on PostgreSQL
    last = 0
    while True:
        rows = db.execute_sql(  # type: ignore[no-untyped-call]
            f"SELECT id, decision FROM turn_trace WHERE id > {mark} ORDER BY id LIMIT {_BATCH}",
            (last,)).fetchall()
        if not rows:
            return
        for trace_id, raw in rows:
            action = (json.loads(raw) if raw else {}).get("action")
            if action:
                db.execute_sql(  # type: ignore[no-untyped-call]
                    f"UPDATE turn_trace SET action = {mark} WHERE id = {mark}",
                    (str(action)[:32], trace_id))
        last = rows[-1][0]


def up(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(
        migrator.add_column("turn_trace", "action", peewee.CharField(max_length=32, null=True)),
        migrator.add_index("turn_trace", ("action",), False),
    )
    _backfill(db)


def down(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(
        migrator.drop_index("turn_trace", "turn_trace_action"),
        migrator.drop_column("turn_trace", "action"),
    )
