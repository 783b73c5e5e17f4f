"""The schema lock on PostgreSQL: a process that serves holds it shared, and a migration or a
rollback with something to change refuses while any does, naming it; a second migration waits
for the first. SQLite holds nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import peewee
import pytest
from postgres_support import empty_postgres
from server_support import make_settings

from appliance import __version__
from appliance.config import Settings
from appliance.db import open_database, schema_lock
from appliance.db.migrate import Migration, applied_versions, available, migrate, rollback
from appliance.db.schema_lock import SchemaInUse


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, database_url=empty_postgres(), node_name="node-old")


@pytest.fixture
def db(settings: Settings) -> Iterator[peewee.Database]:
    database = open_database(settings.database_url)
    database.connect()
    migrate(database)
    yield database
    database.close()


@pytest.fixture
def next_release(monkeypatch: pytest.MonkeyPatch) -> int:
    return _next_release(monkeypatch)


def _next_release(monkeypatch: pytest.MonkeyPatch) -> int:
    """A later release's code: one migration more than this one ships."""
    shipped = available()
    version = shipped[-1].version + 1
    module = ModuleType(f"m{version:04d}_later")
    module.up = lambda db: db.execute_sql("CREATE TABLE later (id INTEGER)")  # type: ignore[attr-defined]
    module.down = lambda db: db.execute_sql("DROP TABLE later")  # type: ignore[attr-defined]
    monkeypatch.setattr("appliance.db.migrate.available",
                        lambda: [*shipped, Migration(version, "later", module)])
    return version


def test_a_migration_refuses_while_a_process_of_an_older_release_serves(
    settings: Settings, db: peewee.Database
) -> None:
    newest = available()[-1].version
    hold = schema_lock.hold(settings, "web")  # this release's web worker, serving
    assert hold is not None
    with pytest.MonkeyPatch.context() as later_code:
        later = _next_release(later_code)
        try:
            with pytest.raises(SchemaInUse) as refused:
                migrate(db)
            assert later not in applied_versions(db)
            assert "later" not in db.get_tables()
        finally:
            hold.release()

        assert refused.value.code == "schema_in_use"
        assert (f"1 process(es) still use it: appliance web node-old {__version__} schema "
                f"{newest} (pid " in refused.value.message)
        assert [m.version for m in migrate(db)] == [later]


def test_a_rollback_refuses_too(settings: Settings, db: peewee.Database) -> None:
    newest = available()[-1].version
    hold = schema_lock.hold(settings, "scheduler")
    assert hold is not None
    try:
        with pytest.raises(SchemaInUse, match="appliance scheduler node-old"):
            rollback(db, newest - 1)
        assert newest in applied_versions(db)
    finally:
        hold.release()
    assert [m.version for m in rollback(db, newest - 1)] == [newest]


def test_nothing_to_change_needs_no_lock(settings: Settings, db: peewee.Database) -> None:
    hold = schema_lock.hold(settings, "web")
    assert hold is not None
    try:
        assert migrate(db) == []
        assert rollback(db, available()[-1].version) == []
    finally:
        hold.release()


def test_a_second_migration_waits_for_the_first_and_finds_nothing_left(
    settings: Settings, db: peewee.Database, next_release: int
) -> None:
    first = open_database(settings.database_url)
    first.connect()
    second = open_database(settings.database_url)
    result: list[list[Migration]] = []
    try:
        with first.atomic():  # another node's migration, part way through
            first.execute_sql("SELECT pg_advisory_xact_lock(%s)", (schema_lock.LOCK_KEY,))
            waiter = threading.Thread(
                target=lambda: result.append(_migrate_on(second)), daemon=True)
            waiter.start()
            _until_one_waits_for_the_lock(first)
            first.execute_sql("CREATE TABLE later (id INTEGER)")
            first.execute_sql("INSERT INTO schema_migration (version, name, applied_at)"
                              " VALUES (%s, 'later', now())", (next_release,))
        waiter.join()
    finally:
        first.close()

    assert result == [[]]
    assert next_release in applied_versions(db)


def _migrate_on(database: peewee.Database) -> list[Migration]:
    with database.connection_context():
        return migrate(database)


def _until_one_waits_for_the_lock(db: peewee.Database) -> None:
    """Until a session waits for the schema lock. No deadline: a waiter that never comes fails
    the test by its timeout, whatever the machine's speed."""
    while not db.execute_sql(
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone():
        threading.Event().wait(0.05)


def test_sqlite_holds_nothing(tmp_path: Path) -> None:
    assert schema_lock.hold(make_settings(tmp_path), "web") is None


def test_a_lock_connection_has_the_server_end_a_vanished_box_s_session(settings: Settings) -> None:
    """PostgreSQL's own keepalive defaults would keep a vanished node's locks for two hours."""
    from appliance.db import lock_connection

    db = lock_connection(settings.database_url, "appliance web node-x")
    db.connect()
    try:
        shown = {name: db.execute_sql(f"SHOW {name}").fetchone()[0] for name in (
            "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count",
            "tcp_user_timeout", "application_name")}
    finally:
        db.close()
    assert shown == {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5",
                     "tcp_keepalives_count": "3", "tcp_user_timeout": "25000",
                     "application_name": "appliance web node-x"}
