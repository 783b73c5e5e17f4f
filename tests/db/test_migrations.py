"""Numbered migrations on SQLite and PostgreSQL: create the schema the models describe, roll
back, apply again, and never apply twice."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import peewee
import pytest

from appliance.db import open_database
from appliance.db.migrate import (
    Migration,
    MigrationFailed,
    applied_versions,
    available,
    migrate,
    pending,
    rollback,
)
from appliance.db.models import (
    ALL_MODELS,
    AdminSession,
    AdminUser,
    ApiKey,
    Brand,
    Conversation,
    Message,
    Outcome,
    TurnTrace,
    utcnow,
)
from appliance.users import usable

TABLES = {model._meta.table_name for model in ALL_MODELS}


@pytest.fixture
def fresh_db(database_url: str) -> Iterator[peewee.Database]:
    """An empty database, never migrated."""
    db = open_database(database_url)
    db.connect()
    yield db
    db.close()


def _tables(db: peewee.Database) -> set[str]:
    return set(db.get_tables())


def test_it_creates_every_table_of_the_models(fresh_db: peewee.Database) -> None:
    applied = migrate(fresh_db)

    assert [m.version for m in applied] == [m.version for m in available()]
    assert _tables(fresh_db) >= TABLES
    assert "schema_migration" in _tables(fresh_db)
    assert pending(fresh_db) == []


@pytest.mark.parametrize("model", ALL_MODELS, ids=[m.__name__ for m in ALL_MODELS])
def test_it_creates_the_columns_the_models_use(
    fresh_db: peewee.Database, model: type[peewee.Model]
) -> None:
    migrate(fresh_db)

    columns = {column.name for column in fresh_db.get_columns(model._meta.table_name)}

    assert columns == {field.column_name for field in model._meta.sorted_fields}


def test_it_rolls_back_to_an_empty_schema(fresh_db: peewee.Database) -> None:
    migrate(fresh_db)

    undone = rollback(fresh_db, 0)

    assert [m.version for m in undone] == sorted((m.version for m in available()), reverse=True)
    assert TABLES.isdisjoint(_tables(fresh_db))
    assert applied_versions(fresh_db) == set()


def test_it_migrates_again_after_a_rollback(fresh_db: peewee.Database) -> None:
    migrate(fresh_db)
    rollback(fresh_db, 0)

    applied = migrate(fresh_db)

    assert applied
    assert _tables(fresh_db) >= TABLES
    Brand.create(slug="back", name="Back", persona={}, policy={})
    assert Brand.select().count() == 1


def test_it_is_idempotent(fresh_db: peewee.Database) -> None:
    migrate(fresh_db)
    Brand.create(slug="kept", name="Kept", persona={}, policy={})

    again = migrate(fresh_db)

    assert again == []
    assert applied_versions(fresh_db) == {m.version for m in available()}
    assert [b.slug for b in Brand.select()] == ["kept"]


def test_it_stops_at_the_target_version(fresh_db: peewee.Database) -> None:
    assert migrate(fresh_db, target=0) == []
    assert TABLES.isdisjoint(_tables(fresh_db))
    assert [m.version for m in pending(fresh_db)] == [m.version for m in available()]


def _migration(version: int, name: str, up: Callable[[peewee.Database], None],
               down: Callable[[peewee.Database], None]) -> Migration:
    module = ModuleType(f"m{version:04d}_{name}")
    module.up, module.down = up, down  # type: ignore[attr-defined]
    return Migration(version, name, module)


def _creates_table(table: str) -> Callable[[peewee.Database], None]:
    return lambda db: db.execute_sql(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)")


def _fails(db: peewee.Database) -> None:
    raise RuntimeError("the disk is full")


def test_a_failed_upgrade_leaves_the_schema_and_data_of_the_release_before(
    fresh_db: peewee.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new release brings three migrations and the last one fails: the two before it are
    undone with it, so the previous release finds exactly the schema and rows it left."""
    migrate(fresh_db)
    brand = Brand.create(slug="kept", name="Kept", persona={}, policy={})
    ApiKey.create(brand=brand, name="k", prefix="sbk_kept", key_hash="1" * 64)
    rollback(fresh_db, 16)
    before = (_tables(fresh_db), {c.name for c in fresh_db.get_columns("brand")})

    def renames_and_fails(db: peewee.Database) -> None:
        db.execute_sql("UPDATE brand SET name = 'Changed'")
        _fails(db)

    shipped = available()
    monkeypatch.setattr(
        "appliance.db.migrate.available",
        lambda: [*shipped, _migration(19, "probe", _creates_table("upgrade_probe"), _fails),
                 _migration(20, "breaks", renames_and_fails, _fails)],
    )
    with pytest.raises(MigrationFailed) as failed:
        migrate(fresh_db)

    assert "0020 breaks failed (RuntimeError: the disk is full)" in failed.value.message
    assert "none of the 4 migration(s) was applied" in failed.value.message
    assert applied_versions(fresh_db) == set(range(1, 17))
    assert (_tables(fresh_db), {c.name for c in fresh_db.get_columns("brand")}) == before
    assert [(b.slug, b.name) for b in Brand.select(Brand.slug, Brand.name)] == [("kept", "Kept")]


def test_a_failed_rollback_undoes_nothing(
    fresh_db: peewee.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = available()
    monkeypatch.setattr(
        "appliance.db.migrate.available",
        lambda: [*shipped, _migration(19, "stuck", _creates_table("stuck"), _fails),
                 _migration(20, "probe", _creates_table("probe"),
                            lambda db: db.execute_sql("DROP TABLE probe"))],
    )
    migrate(fresh_db)

    with pytest.raises(MigrationFailed) as failed:
        rollback(fresh_db, 18)

    assert "0019 stuck failed" in failed.value.message
    assert "none of the 2 migration(s) was undone" in failed.value.message
    assert {19, 20} <= applied_versions(fresh_db)
    assert {"stuck", "probe"} <= _tables(fresh_db)


def test_it_enforces_foreign_keys(fresh_db: peewee.Database) -> None:
    migrate(fresh_db)

    with pytest.raises(peewee.IntegrityError):
        ApiKey.create(brand=987654, name="orphan", prefix="sbk_orphan", key_hash="0" * 64)


def test_it_cascades_a_brand_delete_to_its_keys(fresh_db: peewee.Database) -> None:
    migrate(fresh_db)
    brand = Brand.create(slug="gone", name="Gone", persona={}, policy={})
    ApiKey.create(brand=brand, name="k", prefix="sbk_gone", key_hash="1" * 64,
                  created_at=utcnow())

    Brand.delete().where(Brand.id == brand.id).execute()

    assert ApiKey.select().count() == 0


def test_it_keeps_an_unscoped_human_agent_through_0013_who_then_signs_in_to_nothing(
    fresh_db: peewee.Database,
) -> None:
    migrate(fresh_db, target=12)
    _insert_raw(fresh_db, "admin_user", {
        "id": 1, "username": "old-agent", "password_hash": "x", "role": "human_agent",
        "brand_id": None, "created_at": utcnow(), "disabled": False})

    migrate(fresh_db, target=13)

    user = AdminUser.get(AdminUser.username == "old-agent")
    assert (user.role, user.brand_id, user.disabled) == ("human_agent", None, False)
    assert not usable(user)
    AdminSession.create(token_hash="0" * 64, user=user)
    AdminUser.delete().execute()
    assert AdminSession.select().count() == 0  # a user's sessions go with the user


def test_it_runs_sqlite_in_wal_mode_with_foreign_keys_on(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'appliance.db'}")
    db.connect()
    try:
        journal_mode = db.execute_sql("PRAGMA journal_mode").fetchone()[0]
        foreign_keys = db.execute_sql("PRAGMA foreign_keys").fetchone()[0]
        busy_timeout = db.execute_sql("PRAGMA busy_timeout").fetchone()[0]
    finally:
        db.close()

    assert journal_mode == "wal"
    assert foreign_keys == 1
    assert busy_timeout > 0


# --- 0012: the report columns of outcomes attributed before it ------------------------------

REPORTED_EVIDENCE = {
    "upsell": {"rule": "workflow_upsold", "ended": "closed", "workflow": {
        "name": "apply_card", "outcome": "upsold", "slots": {"upsell_value": "300.5"}}},
    "resolved": {"rule": "answered_then_left", "ended": "idle", "messages": ["m1", "m2"]},
}


def _insert_raw(db: peewee.Database, table: str, values: dict[str, object]) -> None:
    marks = ", ".join([db.param] * len(values))
    db.execute_sql(  # type: ignore[no-untyped-call]
        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({marks})", list(values.values()))


def _insert_brand(db: peewee.Database) -> dt.datetime:
    """Brand 1, acme, as a migration finds it; returns the time it was made."""
    now = utcnow()
    _insert_raw(db, "brand", {"id": 1, "slug": "acme", "name": "Acme", "persona": "{}",
                              "policy": "{}", "created_at": now, "updated_at": now})
    return now


def test_it_fills_the_report_columns_of_earlier_outcomes_from_their_evidence(
    fresh_db: peewee.Database,
) -> None:
    migrate(fresh_db, target=11)
    now = _insert_brand(fresh_db)
    for n, (name, evidence) in enumerate(REPORTED_EVIDENCE.items(), 1):
        _insert_raw(fresh_db, "conversation", {
            "id": n, "public_id": f"conv_{name}", "brand_id": 1, "customer": "{}",
            "channel": "web", "status": "closed", "created_at": now, "updated_at": now})
        _insert_raw(fresh_db, "outcome", {
            "id": n, "conversation_id": n, "brand_id": 1, "type": name, "state": "settled",
            "evidence": json.dumps(evidence), "transcript_sha256": "0" * 64,
            "attributed_at": now, "settles_at": now})

    migrate(fresh_db)

    with fresh_db.bind_ctx([Outcome]):
        found = {o.type: (o.rule, o.workflow, o.stage, o.value_cents)
                 for o in Outcome.select()}
    assert found == {"upsell": ("workflow_upsold", "apply_card", 4, 30050),
                     "resolved": ("answered_then_left", None, 0, 0)}


# --- 0016: the action of turns traced before it ----------------------------------------------

def test_it_fills_the_action_of_earlier_turn_traces_from_their_decision(
    fresh_db: peewee.Database,
) -> None:
    migrate(fresh_db, target=12)
    now = utcnow()
    _insert_raw(fresh_db, "brand", {"id": 1, "slug": "acme", "name": "Acme", "persona": "{}",
                                "policy": "{}", "created_at": now, "updated_at": now})
    _insert_raw(fresh_db, "conversation", {
        "id": 1, "public_id": "conv_1", "brand_id": 1, "customer": "{}", "channel": "web",
        "status": "active", "created_at": now, "updated_at": now})
    decisions = {1: {"action": "no_answer", "rule": "knowledge_below_threshold"},
                 2: {"action": "answer", "rule": "grounded"}, 3: {}}
    for n, decision in decisions.items():
        for message, role in ((2 * n, "customer"), (2 * n + 1, "agent")):
            _insert_raw(fresh_db, "message", {
                "id": message, "public_id": f"msg_{message}", "conversation_id": 1,
                "role": role, "text": "hi", "created_at": now})
        _insert_raw(fresh_db, "turn_trace", {
            "id": n, "conversation_id": 1, "customer_message_id": 2 * n,
            "agent_message_id": 2 * n + 1, "model": "template", "fallback": False,
            "prompt_tokens": 0, "completion_tokens": 0, "latency_ms": "{}",
            "decision": json.dumps(decision), "created_at": now})

    migrate(fresh_db)

    with fresh_db.bind_ctx([TurnTrace]):
        found = {trace.id: trace.action for trace in TurnTrace.select()}
    assert found == {1: "no_answer", 2: "answer", 3: None}


# --- 0015: the visibility of sources registered before it -------------------------------------


def test_it_gives_earlier_sources_the_visibility_of_their_kind(
    fresh_db: peewee.Database,
) -> None:
    migrate(fresh_db, target=14)
    now = _insert_brand(fresh_db)
    kinds = ("faq_html", "zendesk_macros", "confluence", "slack", "markdown", "jsonl", "pdf")
    for number, kind in enumerate(kinds, start=1):
        _insert_raw(fresh_db, "knowledge_source", {
            "id": number, "brand_id": 1, "kind": kind, "location": f"/srv/{kind}",
            "owner": "kb@acme.example", "options": "{}", "created_at": now})

    migrate(fresh_db)

    rows = fresh_db.execute_sql(  # type: ignore[no-untyped-call]
        "SELECT kind, visibility FROM knowledge_source").fetchall()
    assert dict(rows) == {"faq_html": "customer", "zendesk_macros": "customer",
                          "confluence": "internal", "slack": "internal", "markdown": "internal",
                          "jsonl": "internal", "pdf": "internal"}
    rollback(fresh_db, 14)
    assert "visibility" not in {c.name for c in fresh_db.get_columns("knowledge_source")}


@pytest.mark.parametrize("version", [m.version for m in available()])
def test_each_migration_goes_down_and_up_again_with_data_in_the_tables(
    fresh_db: peewee.Database, version: int
) -> None:
    """Roll back to just before `version` with rows in the tables, then forward again: the
    down steps run on a populated schema, and the rows of the tables older than `version`
    survive (a column a down step drops loses its values, as it must)."""
    migrate(fresh_db)
    brand = Brand.create(slug="kept", name="Kept", persona={}, policy={})
    ApiKey.create(brand=brand, name="k", prefix="sbk_kept", key_hash="1" * 64)
    conversation = Conversation.create(public_id="conv_kept", brand=brand, customer={},
                                       channel="api", status="active")
    Message.create(public_id="msg_kept", conversation=conversation, role="customer",
                   text="hello")

    undone = rollback(fresh_db, version - 1)
    assert [m.version for m in undone][-1] == version
    migrate(fresh_db)

    assert applied_versions(fresh_db) == {m.version for m in available()}
    if version > 1:  # m0001 made these tables: rolling it back drops them
        assert [b.slug for b in Brand.select()] == ["kept"]
        assert Message.get(Message.public_id == "msg_kept").text == "hello"
