"""Reporting: each outcome keeps, as columns the reports group and sum in SQL, the rule that
decided it, the workflow the conversation ran last, how far that workflow got (its funnel
stage) and an upsell's value in cents; conversations are indexed by brand and day."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

import peewee
from playhouse.migrate import SchemaMigrator, migrate

#: The funnel stage a workflow rule's outcome reached: its write was made.
_WRITTEN = 4
_WORKFLOW_RULES = ("workflow_saved", "workflow_upsold", "workflow_resolved")


def _cents(slots: dict[str, Any]) -> int:
    try:
        value = Decimal(str(slots.get("upsell_value", "0")))
    except InvalidOperation:
        return 0
    return int((value * 100).quantize(Decimal(1))) if value > 0 else 0


def _backfill(db: peewee.Database) -> None:
    """What the evidence of outcomes attributed before this migration already says."""
    rows = db.execute_sql(  # type: ignore[no-untyped-call]
        "SELECT id, evidence FROM outcome").fetchall()
    for outcome_id, raw in rows:
        evidence = json.loads(raw) if raw else {}
        workflow = evidence.get("workflow") or {}
        rule = evidence.get("rule")
        mark = db.param  # "?" on SQLite, "%s" on PostgreSQL
        db.execute_sql(  # type: ignore[no-untyped-call]
            f"UPDATE outcome SET rule = {mark}, workflow = {mark}, stage = {mark}, "
            f"value_cents = {mark} WHERE id = {mark}",
            (rule, workflow.get("name"), _WRITTEN if rule in _WORKFLOW_RULES else 0,
             _cents(workflow.get("slots") or {}), outcome_id))


def up(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(
        migrator.add_column("outcome", "rule", peewee.CharField(max_length=32, null=True)),
        migrator.add_column("outcome", "workflow", peewee.CharField(max_length=64, null=True)),
        migrator.add_column("outcome", "stage", peewee.SmallIntegerField(default=0)),
        migrator.add_column("outcome", "value_cents", peewee.BigIntegerField(default=0)),
        migrator.add_index("conversation", ("brand_id", "created_at"), False),
    )
    _backfill(db)


def down(db: peewee.Database) -> None:
    migrator = SchemaMigrator.from_database(db)
    migrate(
        migrator.drop_index("conversation", "conversation_brand_id_created_at"),
        migrator.drop_column("outcome", "value_cents"),
        migrator.drop_column("outcome", "stage"),
        migrator.drop_column("outcome", "workflow"),
        migrator.drop_column("outcome", "rule"),
    )
