"""Billing: contract versions per brand and the append-only, hash-chained ledger.

The ledger's rows are never changed: corrections are new entries. Triggers make the database
itself refuse UPDATE and DELETE (and, on PostgreSQL, TRUNCATE) on `ledger_entry`, so that no
code path, and no one with a SQL shell short of dropping the triggers, can rewrite it.
"""

from __future__ import annotations

import peewee

APPEND_ONLY = "ledger_entry is append-only"

SQLITE_UP = [
    f"CREATE TRIGGER ledger_entry_no_{verb.lower()} BEFORE {verb} ON ledger_entry "
    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
    for verb in ("UPDATE", "DELETE")
]
SQLITE_DOWN = ["DROP TRIGGER IF EXISTS ledger_entry_no_update",
               "DROP TRIGGER IF EXISTS ledger_entry_no_delete"]

POSTGRES_UP = [
    # restrict_violation: drivers report it as an integrity error, as SQLite's ABORT is.
    "CREATE FUNCTION ledger_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
    f"BEGIN RAISE EXCEPTION '{APPEND_ONLY}' USING ERRCODE = 'restrict_violation'; END $$",
    "CREATE TRIGGER ledger_entry_no_change BEFORE UPDATE OR DELETE ON ledger_entry "
    "FOR EACH ROW EXECUTE FUNCTION ledger_entry_append_only()",
    "CREATE TRIGGER ledger_entry_no_truncate BEFORE TRUNCATE ON ledger_entry "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_entry_append_only()",
]
POSTGRES_DOWN = ["DROP TRIGGER IF EXISTS ledger_entry_no_truncate ON ledger_entry",
                 "DROP TRIGGER IF EXISTS ledger_entry_no_change ON ledger_entry",
                 "DROP FUNCTION IF EXISTS ledger_entry_append_only()"]


def _models() -> list[type[peewee.Model]]:
    class Base(peewee.Model):
        pass

    class Brand(Base):
        class Meta:
            table_name = "brand"

    class BillingContract(Base):
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        version = peewee.IntegerField()
        effective_from = peewee.DateField()
        terms = peewee.TextField()
        created_by = peewee.CharField(max_length=150)
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "billing_contract"
            indexes = ((("brand", "version"), True),)

    class LedgerEntry(Base):
        brand = peewee.ForeignKeyField(Brand, on_delete="RESTRICT")
        seq = peewee.IntegerField()
        type = peewee.CharField(max_length=16)
        conversation = peewee.CharField(max_length=40, null=True, index=True)
        amount = peewee.CharField(max_length=40)
        currency = peewee.CharField(max_length=3)
        body = peewee.TextField()
        evidence_sha256 = peewee.CharField(max_length=64, null=True)
        prev_hash = peewee.CharField(max_length=64)
        hash = peewee.CharField(max_length=64, unique=True)
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "ledger_entry"
            indexes = ((("brand", "seq"), True), (("brand", "created_at"), False))

    return [BillingContract, LedgerEntry]


def _statements(db: peewee.Database, sqlite: list[str], postgres: list[str]) -> list[str]:
    return postgres if isinstance(db, peewee.PostgresqlDatabase) else sqlite


def up(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.create_tables(models)
    for statement in _statements(db, SQLITE_UP, POSTGRES_UP):
        db.execute_sql(statement)  # type: ignore[no-untyped-call]


def down(db: peewee.Database) -> None:
    for statement in _statements(db, SQLITE_DOWN, POSTGRES_DOWN):
        db.execute_sql(statement)  # type: ignore[no-untyped-call]
    models = _models()
    with db.bind_ctx(models):
        db.drop_tables(list(reversed(models)))
