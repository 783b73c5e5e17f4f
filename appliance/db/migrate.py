"""Numbered migrations: `migrations/mNNNN_name.py` modules, each with `up(db)` and `down(db)`.

Each migration runs in its own transaction together with its row in `schema_migration`, so a
crash mid-migration leaves the schema at the previous version (PostgreSQL and SQLite both have
transactional DDL). Migrations define their own frozen models: they never import `db.models`,
whose classes follow the newest schema.
"""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
import re
from dataclasses import dataclass
from types import ModuleType

import peewee

from appliance.db import migrations as migrations_pkg


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    module: ModuleType


class SchemaMigration(peewee.Model):
    version = peewee.IntegerField(primary_key=True)
    name = peewee.CharField(max_length=200)
    applied_at = peewee.DateTimeField()

    class Meta:
        table_name = "schema_migration"


def available() -> list[Migration]:
    """Every migration shipped with the code, in order."""
    found = []
    for info in pkgutil.iter_modules(migrations_pkg.__path__):
        match = re.fullmatch(r"m(\d{4})_(\w+)", info.name)
        if match:
            module = importlib.import_module(f"{migrations_pkg.__name__}.{info.name}")
            found.append(Migration(int(match.group(1)), match.group(2), module))
    return sorted(found, key=lambda m: m.version)


def applied_versions(db: peewee.Database) -> set[int]:
    with db.bind_ctx([SchemaMigration]):
        if not SchemaMigration.table_exists():  # type: ignore[no-untyped-call]
            return set()
        return {row.version for row in SchemaMigration.select(SchemaMigration.version)}


def pending(db: peewee.Database) -> list[Migration]:
    done = applied_versions(db)
    return [m for m in available() if m.version not in done]


def migrate(db: peewee.Database, target: int | None = None) -> list[Migration]:
    """Apply pending migrations up to `target` (all when None); return what was applied."""
    applied = []
    with db.bind_ctx([SchemaMigration]):
        SchemaMigration.create_table(safe=True)
        for migration in pending(db):
            if target is not None and migration.version > target:
                break
            with db.atomic():
                migration.module.up(db)
                SchemaMigration.create(
                    version=migration.version, name=migration.name,
                    applied_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
                )
            applied.append(migration)
    return applied


def rollback(db: peewee.Database, target: int) -> list[Migration]:
    """Undo applied migrations newer than `target`, newest first; return what was undone."""
    undone = []
    done = applied_versions(db)
    with db.bind_ctx([SchemaMigration]):
        for migration in reversed(available()):
            if migration.version <= target or migration.version not in done:
                continue
            with db.atomic():
                migration.module.down(db)
                SchemaMigration.delete().where(
                    SchemaMigration.version == migration.version
                ).execute()
            undone.append(migration)
    return undone
