"""Eval suites in the database: each brand's suites, so the release gate, the nightly run and
handoffs promoted to cases work for any brand, not only the demo's files."""

from __future__ import annotations

import peewee


def _models() -> list[type[peewee.Model]]:
    class Base(peewee.Model):
        pass

    class Brand(Base):
        class Meta:
            table_name = "brand"

    class EvalSuite(Base):
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        name = peewee.CharField(max_length=100)
        source = peewee.TextField()
        updated_by = peewee.CharField(max_length=150)
        updated_at = peewee.DateTimeField()

        class Meta:
            table_name = "eval_suite"
            indexes = ((("brand", "name"), True),)

    return [EvalSuite]


def up(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.create_tables(models)


def down(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.drop_tables(list(reversed(models)))
