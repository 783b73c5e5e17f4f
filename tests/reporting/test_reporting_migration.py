"""Migration 0012 on SQLite and PostgreSQL: outcomes attributed before it get the columns the
reports group by, read from their evidence."""

from __future__ import annotations

import json
from collections.abc import Iterator

import peewee
import pytest

from appliance.db import open_database
from appliance.db.migrate import migrate
from appliance.db.models import Outcome, utcnow

EVIDENCE = {
    "upsell": {"rule": "workflow_upsold", "ended": "closed", "workflow": {
        "name": "apply_card", "outcome": "upsold", "slots": {"upsell_value": "300.5"}}},
    "resolved": {"rule": "answered_then_left", "ended": "idle", "messages": ["m1", "m2"]},
}


@pytest.fixture
def fresh_db(database_url: str) -> Iterator[peewee.Database]:
    db = open_database(database_url)
    db.connect()
    yield db
    db.close()


def _insert(db: peewee.Database, table: str, values: dict[str, object]) -> None:
    marks = ", ".join([db.param] * len(values))
    db.execute_sql(  # type: ignore[no-untyped-call]
        f"INSERT INTO {table} ({', '.join(values)}) VALUES ({marks})", list(values.values()))


def test_it_fills_the_report_columns_of_earlier_outcomes_from_their_evidence(
    fresh_db: peewee.Database,
) -> None:
    migrate(fresh_db, target=11)
    now = utcnow()
    _insert(fresh_db, "brand", {"id": 1, "slug": "acme", "name": "Acme", "persona": "{}",
                                "policy": "{}", "created_at": now, "updated_at": now})
    for n, (name, evidence) in enumerate(EVIDENCE.items(), 1):
        _insert(fresh_db, "conversation", {
            "id": n, "public_id": f"conv_{name}", "brand_id": 1, "customer": "{}",
            "channel": "web", "status": "closed", "created_at": now, "updated_at": now})
        _insert(fresh_db, "outcome", {
            "id": n, "conversation_id": n, "brand_id": 1, "type": name, "state": "settled",
            "evidence": json.dumps(evidence), "transcript_sha256": "0" * 64,
            "attributed_at": now, "settles_at": now})

    migrate(fresh_db)

    with fresh_db.bind_ctx([Outcome]):
        found = {o.type: (o.rule, o.workflow, o.stage, o.value_cents)
                 for o in Outcome.select()}
    assert found == {"upsell": ("workflow_upsold", "apply_card", 4, 30050),
                     "resolved": ("answered_then_left", None, 0, 0)}
