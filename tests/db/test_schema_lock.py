"""The schema lock on PostgreSQL: a process that serves holds it shared (and holds it again
after the database dropped its session), and a migration or a rollback with something to
change refuses while any does, naming it; a second migration waits for the first. A worker on
a schema of another release serves nothing. SQLite holds nothing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import peewee
import pytest
from postgres_support import empty_postgres
from server_support import make_settings

from appliance import __version__
from appliance.config import Settings
from appliance.db import lock_connection, open_database, schema_lock
from appliance.db.migrate import Migration, applied_versions, available, migrate, rollback
from appliance.db.schema_lock import SchemaInUse
from appliance.services import build_services
from appliance.web import SCHEMA_HOLD_KEY, create_app


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


Hold = Callable[..., schema_lock.SchemaHold]


@pytest.fixture
def holding(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hold]:
    """Start a serving process's hold and wait until it holds; all released at the end."""
    monkeypatch.setattr(schema_lock, "CHECK_S", 0.1)  # the keeper's pace, not a verdict
    holds: list[schema_lock.SchemaHold] = []

    def start(role: str = "web", known: frozenset[int] | None = None) -> schema_lock.SchemaHold:
        if known is None:
            made = schema_lock.hold(settings, role)
            assert made is not None
        else:
            made = schema_lock.SchemaHold(settings.database_url, f"appliance {role} test",
                                          known)
        holds.append(made)
        _until(lambda: made.held and made.schema != "unknown")
        return made

    yield start
    for made in holds:
        made.release()


def _until(condition: Callable[[], object]) -> None:
    """Poll until `condition` holds. No deadline: what never comes fails the test by its
    timeout, whatever the machine's speed."""
    while not condition():
        threading.Event().wait(0.05)


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
    db: peewee.Database, holding: Hold
) -> None:
    newest = available()[-1].version
    hold = holding("web")  # this release's web worker, serving
    with pytest.MonkeyPatch.context() as later_code:
        later = _next_release(later_code)
        with pytest.raises(SchemaInUse) as refused:
            migrate(db)
        assert later not in applied_versions(db)
        assert "later" not in db.get_tables()
        hold.release()

        assert refused.value.code == "schema_in_use"
        assert (f"1 process(es) still use it: appliance web node-old {__version__} schema "
                f"{newest} (pid " in refused.value.message)
        assert [m.version for m in migrate(db)] == [later]


def test_a_rollback_refuses_too(db: peewee.Database, holding: Hold) -> None:
    newest = available()[-1].version
    hold = holding("scheduler")
    with pytest.raises(SchemaInUse, match="appliance scheduler node-old"):
        rollback(db, newest - 1)
    assert newest in applied_versions(db)
    hold.release()
    assert [m.version for m in rollback(db, newest - 1)] == [newest]


def test_nothing_to_change_needs_no_lock(db: peewee.Database, holding: Hold) -> None:
    holding("web")
    assert migrate(db) == []
    assert rollback(db, available()[-1].version) == []


def test_a_hold_takes_the_lock_again_after_the_database_drops_its_session(
    db: peewee.Database, holding: Hold
) -> None:
    """A PostgreSQL restart or failover ends the session, and the lock with it: the process
    holds it again on a fresh connection, so a later migration still finds it."""
    hold = holding("web")
    (before,) = _holder_pids(db)

    db.execute_sql("SELECT pg_terminate_backend(%s)", (before,))
    _until(lambda: _holder_pids(db) not in ([], [before]))

    assert hold.held
    with pytest.MonkeyPatch.context() as later_code:
        _next_release(later_code)
        with pytest.raises(SchemaInUse):
            migrate(db)


def _holder_pids(db: peewee.Database) -> list[int]:
    return [int(holder.split("(pid ")[1].split()[0]) for holder in schema_lock.holders(db)]


def test_a_hold_reads_whether_the_schema_is_this_release_s(
    db: peewee.Database, holding: Hold
) -> None:
    shipped = frozenset(m.version for m in available())
    assert holding(known=shipped).schema == "current"
    assert holding(known=shipped - {max(shipped)}).schema == "newer"
    assert holding(known=shipped | {max(shipped) + 1}).schema == "pending"


def test_a_hold_starts_while_the_database_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker boots (gunicorn would stop the whole node if one could not) and says, through
    /readyz, that it holds nothing yet."""
    monkeypatch.setattr(schema_lock, "CHECK_S", 0.1)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings = make_settings(tmp_path, database_url=f"postgresql://u:p@127.0.0.1:{port}/gone")
    hold = schema_lock.hold(settings, "web")
    assert hold is not None
    try:
        assert (hold.held, hold.schema) == (False, "unknown")
    finally:
        hold.release()


def test_a_worker_on_a_schema_of_another_release_serves_nothing(
    settings: Settings, db: peewee.Database, holding: Hold
) -> None:
    """Another node migrated past this worker's release: every request but the probes gets 503
    `schema_mismatch` (/readyz's own check of the schema: tests/api/test_conversations.py)."""
    shipped = frozenset(m.version for m in available())
    services = build_services(settings)
    app = create_app({"TESTING": True}, services=services)
    app.extensions[SCHEMA_HOLD_KEY] = holding(known=shipped - {max(shipped)})
    client = app.test_client()
    try:
        response = client.post("/v1/conversations", json={},
                               headers={"Authorization": "Bearer sbk_anything"})
        ready = client.get("/readyz")
    finally:
        services.close()

    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "schema_mismatch"  # the one error shape
    assert response.headers["Retry-After"] == "5"
    assert ready.get_json()["checks"]["schema_lock"] == {"ok": True, "detail": "held"}


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
    """Until a session of this database waits for the schema lock (another test worker's
    database has locks of its own)."""
    key = schema_lock.LOCK_KEY & 0xFFFF_FFFF_FFFF_FFFF
    _until(lambda: db.execute_sql(
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND classid::bigint = %s AND objid::bigint = %s"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (key >> 32, key & 0xFFFF_FFFF)).fetchone())


def test_sqlite_holds_nothing(tmp_path: Path) -> None:
    assert schema_lock.hold(make_settings(tmp_path), "web") is None


def test_a_lock_connection_has_the_server_end_a_vanished_box_s_session(settings: Settings) -> None:
    """PostgreSQL's own keepalive defaults would keep a vanished node's locks for two hours."""
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
