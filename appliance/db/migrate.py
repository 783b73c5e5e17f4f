"""Numbered migrations: `migrations/mNNNN_name.py` modules, each with `up(db)` and `down(db)`.

The pending migrations run in one transaction together with their rows in `schema_migration`
(PostgreSQL and SQLite both have transactional DDL), and so does a rollback: a migration that
fails, or a crash part way, leaves the schema exactly at the version it started from. After a
failed upgrade that is the version the previous release knows, so the previous release can run
again at once (the Ansible role puts it back). On PostgreSQL a change refuses while processes
still serve the schema (appliance.db.schema_lock). Migrations define their own frozen models:
they never import `db.models`, whose classes follow the newest schema.
"""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

import peewee

from appliance.db import migrations as migrations_pkg
from appliance.db import schema_lock
from appliance.errors import ApplianceError


class MigrationFailed(ApplianceError):
    """A migration raised: nothing of its batch was applied (or undone)."""

    code = "migration_failed"


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
    """Apply pending migrations up to `target` (all when None), all or none; return them."""
    with db.bind_ctx([SchemaMigration]), db.atomic():
        batch = _batch(db, lambda: [m for m in pending(db)
                                    if target is None or m.version <= target])
        # Under the lock: nodes migrating a fresh database together never race to create it.
        SchemaMigration.create_table(safe=True)
        for migration in batch:
            try:
                migration.module.up(db)
            except Exception as exc:
                raise _failed(migration, "applied", batch, exc) from exc
            SchemaMigration.create(
                version=migration.version, name=migration.name,
                applied_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
            )
    return batch


def rollback(db: peewee.Database, target: int) -> list[Migration]:
    """Undo applied migrations newer than `target`, newest first, all or none; return them."""
    def newer() -> list[Migration]:
        done = applied_versions(db)
        return [m for m in reversed(available()) if m.version > target and m.version in done]

    with db.bind_ctx([SchemaMigration]), db.atomic():
        batch = _batch(db, newer)
        for migration in batch:
            try:
                migration.module.down(db)
            except Exception as exc:
                raise _failed(migration, "undone", batch, exc) from exc
            SchemaMigration.delete().where(SchemaMigration.version == migration.version).execute()
    return batch


def _batch(db: peewee.Database, find: Callable[[], list[Migration]]) -> list[Migration]:
    """What to change, found again under the schema lock when there is anything (another node's
    migration may have done it while this one waited; appliance.db.schema_lock)."""
    if not find():
        return []
    schema_lock.take_for_change(db)
    return find()


def _failed(migration: Migration, verb: str, batch: list[Migration],
            exc: Exception) -> MigrationFailed:
    return MigrationFailed(
        f"migration {migration.version:04d} {migration.name} failed ({type(exc).__name__}: "
        f"{exc}); none of the {len(batch)} migration(s) was {verb}, the schema is as it was"
    )
