"""A worker killed (SIGKILL) in the middle of a turn: the conversation holds no half turn, and
the client's retry with the same Idempotency-Key completes the turn once.

The turn is held deterministically: Lumen Goods' tools reach its order system through a
gate this test controls, which holds the turn's lookup until the worker is dead.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from forwarding import forwarding
from retail_support import RetailBackend
from server_support import LiveServer, running_server, wait_for

EMAIL = "olivia.ito5204@example.com"
#: Bounds on waiting for processes to do their part; no assertion depends on them.
PROCESS_WAIT_S = 300.0


class Gate:
    """Holds each request to the order system, while closed, until it opens."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self.opened = threading.Event()
        self.opened.set()
        self.url = ""

    def close(self) -> None:
        self.held.clear()
        self.opened.clear()

    def pass_through(self, method: str, path: str, body: bytes) -> None:
        if not self.opened.is_set():
            self.held.set()
            self.opened.wait(PROCESS_WAIT_S)


@pytest.fixture
def gate(retail_backend: RetailBackend) -> Iterator[Gate]:
    retail_backend.reset()
    gate = Gate()
    with forwarding(retail_backend.url, before=gate.pass_through) as gate.url:
        try:
            yield gate
        finally:
            gate.opened.set()  # held requests end before the proxy stops


@pytest.fixture
def server(tmp_path: Path, gate: Gate) -> Iterator[LiveServer]:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with running_server(data_dir, {"APPLIANCE_DEMO_RETAIL_URL": gate.url,
                                   "APPLIANCE_WEB_WORKERS": "1"}, "--no-knowledge") as live:
        yield live


def _claim_owner(data_dir: Path, key: str) -> int:
    """The pid of the worker that claimed `key` (its row names "host:pid")."""
    with sqlite3.connect(data_dir / "appliance.db") as db:
        (owner,) = db.execute("SELECT owner FROM idempotency_key WHERE key = ?",
                              (key,)).fetchone()
    return int(owner.rpartition(":")[2])


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_turn_cut_by_a_killed_worker_leaves_nothing_and_its_retry_runs_once(
        server: LiveServer, gate: Gate) -> None:
    headers = {"Authorization": f"Bearer {server.key('lumen-goods')}"}
    opened = httpx.post(f"{server.url}/v1/conversations", json={}, headers=headers)
    conversation = opened.json()["id"]
    messages_url = f"{server.url}/v1/conversations/{conversation}/messages"
    first = httpx.post(messages_url, json={"text": "Hi! I'd like to cancel order #W3657213"},
                       headers=headers, timeout=PROCESS_WAIT_S)
    assert first.status_code == 200, first.text
    before = httpx.get(f"{server.url}/v1/conversations/{conversation}", headers=headers).json()

    gate.close()
    keyed = {**headers, "Idempotency-Key": "verify-olivia"}
    cut: list[BaseException] = []

    def send() -> None:
        try:
            httpx.post(messages_url, json={"text": EMAIL}, headers=keyed,
                       timeout=PROCESS_WAIT_S)
        except httpx.TransportError as exc:
            cut.append(exc)

    client = threading.Thread(target=send)
    client.start()
    assert gate.held.wait(PROCESS_WAIT_S), "the turn never reached the order system"
    worker = _claim_owner(server.data_dir, "verify-olivia")
    os.kill(worker, signal.SIGKILL)
    client.join(PROCESS_WAIT_S)
    gate.opened.set()

    assert cut, "the killed worker's client should lose its connection"
    assert wait_for(lambda: _gone(worker), PROCESS_WAIT_S)
    assert wait_for(lambda: httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200,
                    PROCESS_WAIT_S)
    after_kill = httpx.get(f"{server.url}/v1/conversations/{conversation}",
                           headers=headers).json()
    assert after_kill["messages"] == before["messages"]

    retried = httpx.post(messages_url, json={"text": EMAIL}, headers=keyed,
                         timeout=PROCESS_WAIT_S)
    again = httpx.post(messages_url, json={"text": EMAIL}, headers=keyed,
                       timeout=PROCESS_WAIT_S)

    assert retried.status_code == 200, retried.text
    assert "found your account" in retried.json()["message"]["text"]
    assert again.json() == retried.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    transcript = httpx.get(f"{server.url}/v1/conversations/{conversation}",
                           headers=headers).json()["messages"]
    assert [m["text"] for m in transcript if m["role"] == "customer"].count(EMAIL) == 1
    assert transcript[:len(before["messages"])] == before["messages"]
    assert len(transcript) == len(before["messages"]) + 2
