"""Eval runs kept as history: each run's scores, cases, the live versions it judged and the
regressions a nightly run found, for the admin's trend, the alerts and the model-risk
report."""

from __future__ import annotations

import peewee


def _models() -> list[type[peewee.Model]]:
    class Base(peewee.Model):
        pass

    class Brand(Base):
        class Meta:
            table_name = "brand"

    class EvalRun(Base):
        brand = peewee.ForeignKeyField(Brand, on_delete="CASCADE")
        trigger = peewee.CharField(max_length=16)
        status = peewee.CharField(max_length=16)
        suite = peewee.CharField(max_length=100, null=True)
        trials = peewee.IntegerField()
        seed = peewee.IntegerField()
        requested_by = peewee.CharField(max_length=150)
        created_at = peewee.DateTimeField(index=True)
        started_at = peewee.DateTimeField(null=True)
        finished_at = peewee.DateTimeField(null=True)
        scores = peewee.TextField(null=True)
        cases = peewee.TextField(null=True)
        versions = peewee.TextField(null=True)
        regressions = peewee.TextField(null=True)
        error = peewee.TextField(null=True)
        node = peewee.CharField(max_length=255, null=True)

        class Meta:
            table_name = "eval_run"
            indexes = ((("brand", "trigger", "created_at"), False),)

    return [EvalRun]


def up(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.create_tables(models)


def down(db: peewee.Database) -> None:
    models = _models()
    with db.bind_ctx(models):
        db.drop_tables(list(reversed(models)))
