"""Two appliance nodes on one PostgreSQL, each with its own data dir, behave as one box:
knowledge ingested and published through node A answers on node B with its citation, a
conversation moves between the nodes turn by turn, and node B's event stream carries what was
written through node A; a later release refuses to migrate while they serve, naming them.
(Scheduler failover between nodes: tests/jobs/test_leader.py.)"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from postgres_support import empty_postgres
from server_support import LiveServer, running_server

from appliance import __version__
from appliance.db import open_database
from appliance.db.migrate import Migration, available, migrate
from appliance.db.schema_lock import SchemaInUse

BRAND = "lumen-goods"
SHIPPING = ("Standard shipping takes 3 to 5 business days. Express shipping costs $12 and "
            "arrives the next business day when ordered before noon.")


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    url = empty_postgres()
    root: Path = tmp_path_factory.mktemp("nodes")
    shared = {"APPLIANCE_DATABASE_URL": url, "APPLIANCE_WEB_WORKERS": "1"}
    (root / "a").mkdir()
    (root / "b").mkdir()
    with running_server(root / "a", shared | {"APPLIANCE_NODE_NAME": "node-a"},
                        "--no-knowledge") as a, \
            running_server(root / "b", shared | {"APPLIANCE_NODE_NAME": "node-b"},
                           seed=False) as b:
        yield a, b


def _headers(a: LiveServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {a.key(BRAND)}"}


def _say(node: LiveServer, key: dict[str, str], conversation: str, text: str) -> Any:
    reply = httpx.post(f"{node.url}/v1/conversations/{conversation}/messages",
                       json={"text": text}, headers=key, timeout=300)
    assert reply.status_code == 200, reply.text
    return reply.json()["message"]


def test_knowledge_published_on_one_node_answers_on_the_other(
        nodes: tuple[LiveServer, LiveServer]) -> None:
    a, b = nodes
    made = a.appliance("brands", "create", "acme", "--name", "Acme", "--agent-name", "Ada",
                       "--tone", "Brief.", "--greeting", "Hi!")
    assert made.returncode == 0, made.stderr
    key = {"Authorization": "Bearer " + a.appliance(
        "brands", "key", "create", "acme").stdout.strip()}
    folder = a.data_dir / "imports" / "acme" / "policies"
    folder.mkdir(parents=True)
    (folder / "shipping.md").write_text(f"# Shipping\n\n{SHIPPING}\n")
    added = a.appliance("knowledge", "sources", "add", "--brand", "acme", "--kind", "markdown",
                        "--path", str(folder), "--owner", "ops@acme.example",
                        "--visibility", "customer")
    assert added.returncode == 0, added.stderr
    # A brand with no eval suite yet: the release gate has nothing to run.
    ingested = a.appliance("knowledge", "ingest", "--brand", "acme", "--publish")
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    conversation = httpx.post(f"{b.url}/v1/conversations", json={}, headers=key,
                              timeout=60).json()["id"]

    answer = _say(b, key, conversation, "How much does express shipping cost?")

    assert [c["title"] for c in answer["citations"]] == ["Shipping"]
    assert "$12" in answer["text"]
    assert not (b.data_dir / "imports").exists(), "node B read no export: only the database"


def test_a_conversation_moves_between_nodes_and_their_streams(
        nodes: tuple[LiveServer, LiveServer]) -> None:
    a, b = nodes
    key = _headers(a)
    opened = httpx.post(f"{a.url}/v1/conversations", json={}, headers=key, timeout=60).json()
    first = _say(a, key, opened["id"], "Hello, how are you today?")
    seen: list[dict[str, Any]] = []

    def listen() -> None:
        # Node B's stream, opened after the first reply, waits for what comes next.
        with httpx.stream("GET", f"{b.url}/v1/conversations/{opened['id']}/events",
                          params={"after": first["id"], "wait": 30}, headers=key,
                          timeout=120) as stream:
            seen.extend(json.loads(line[len("data: "):]) for line in stream.iter_lines()
                        if line.startswith("data: "))

    listener = threading.Thread(target=listen)
    listener.start()
    second = _say(a, key, opened["id"], "I'd like to cancel order #W3657213")
    listener.join(180)
    third = _say(b, key, opened["id"], "Actually, never mind, thanks")

    transcript = httpx.get(f"{a.url}/v1/conversations/{opened['id']}", headers=key,
                           timeout=60).json()["messages"]
    assert [m["id"] for m in seen if m.get("id")][-1] == second["id"]
    assert [m["id"] for m in transcript if m["role"] != "customer"][-3:] == [
        first["id"], second["id"], third["id"]]


def test_a_later_release_refuses_to_migrate_while_the_nodes_serve_and_names_them(
        nodes: tuple[LiveServer, LiveServer], monkeypatch: pytest.MonkeyPatch) -> None:
    """A node upgraded first, migrating while both nodes of the older release still serve."""
    a, b = nodes
    shipped = available()
    later = ModuleType("m_later")
    later.up = lambda db: db.execute_sql("CREATE TABLE later (id INTEGER)")  # type: ignore[attr-defined]
    monkeypatch.setattr("appliance.db.migrate.available",
                        lambda: [*shipped, Migration(shipped[-1].version + 1, "later", later)])
    db = open_database(a.env["APPLIANCE_DATABASE_URL"])

    with db.connection_context(), pytest.raises(SchemaInUse) as refused:
        migrate(db)

    named = f"{__version__} schema {shipped[-1].version}"
    assert f"appliance web node-a {named}" in refused.value.message
    assert f"appliance web node-b {named}" in refused.value.message
    with db.connection_context():
        assert "later" not in db.get_tables()
    assert httpx.get(f"{b.url}/readyz", timeout=60).status_code == 200
