"""Why the agent did what it did, in the admin: each turn's decision with its evidence, the
signals and the model versions that read them, the reply model and per-stage latency; the
signal classifiers page; conversations waiting for a human on the dashboard.

Turns run for real (shipped classifiers, real embedder, real tiny LLM). The model store adds
two intent models: Rho-Bank's (present: the shipped human-request artefact under another
name, enough to exercise an intent model end to end) and Lumen Goods' (declared, absent).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from model_stores import REPO, write_store
from werkzeug.test import TestResponse

from appliance.agent.conversations import TurnResult
from appliance.config import Settings
from appliance.db.models import Brand, Conversation, TurnTrace
from appliance.services import Services

SIGNALS = REPO / "model_store" / "signals"
TINY = "smollm2-135m-instruct"
DEAD = "dead-http"
RHO_INTENTS, LUMEN_INTENTS = "rho-intents", "lumen-intents"
ASKS_FOR_HUMAN = "Can I talk to a real person please?"
HANDOFFS = '<section class="panel" aria-labelledby="handoffs-heading"'
PASSWORD = "a long enough password"
Login = Callable[[FlaskClient, str, str], TestResponse]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _intent_entry(model_id: str, brand: str, directory: Path) -> dict[str, Any]:
    return {
        "id": model_id, "role": "classifier", "profile": "cpu", "backend": "onnx",
        "file": str(directory / "model.onnx"), "context_tokens": 128, "signal": "intent",
        "brand": brand, "license": "test", "source": "tests/web/test_admin_traces.py",
    }


@pytest.fixture
def reply_route() -> list[str]:
    """The reply task's models; a test parametrizes it to put a dead model first."""
    return [TINY]


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, reply_route: list[str]) -> Settings:
    rho = shutil.copytree(SIGNALS / "human-request", tmp_path / RHO_INTENTS)
    meta = json.loads((rho / "classifier.json").read_text())
    (rho / "classifier.json").write_text(json.dumps({**meta, "name": RHO_INTENTS}))
    dead = {
        "id": DEAD, "role": "large", "profile": "gpu", "backend": "openai_http",
        "url": f"http://127.0.0.1:{_closed_port()}/v1", "served_name": "large",
        "context_tokens": 8192, "license": "test", "source": "nothing listens here",
    }
    store = write_store(
        tmp_path / "model_store", reply=[TINY],
        # The shipped classifiers, read from where they are: the store lives elsewhere.
        changed={name: {"file": str(SIGNALS / name / "model.onnx")}
                 for name in ("human-request", "sentiment")},
        # This test's own intent models stand in for the demo brands' shipped ones.
        dropped=("intent-rho-bank", "intent-lumen-goods"),
        extra=(dead, _intent_entry(RHO_INTENTS, "rho-bank", rho),
               _intent_entry(LUMEN_INTENTS, "lumen-goods", tmp_path / "not-installed")),
    )
    return dataclasses.replace(settings, model_store=store, reply_models=tuple(reply_route))


def text(response: TestResponse) -> str:
    assert response.status_code == 200, response.status_code
    body: str = response.get_data(as_text=True)
    return body


def say(services: Services, slug: str, conversation: Conversation | None,
        message: str) -> tuple[Conversation, TurnTrace]:
    brand: Brand = services.brands.get(slug)
    if conversation is None:
        conversation, _ = services.conversations.start(brand, {}, "web")
    result = list(services.conversations.reply(brand, conversation.public_id, message))[-1]
    assert isinstance(result, TurnResult)
    return result.conversation, TurnTrace.get(TurnTrace.agent_message == result.message.id)


def section(html: str, start: str) -> str:
    """The first element of `html` whose markup starts with `start`, up to its closing tag
    (the first one: these elements do not nest)."""
    tag = re.match(r"<(\w+)", start)
    assert tag, start
    found = re.search(rf"{re.escape(start)}.*?</{tag.group(1)}>", html, re.DOTALL)
    assert found, f"no {start} in the page"
    return found.group(0)


def meta_of(name: str) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((SIGNALS / name / "classifier.json").read_text())
    return meta


def test_it_explains_a_handoff_with_its_rule_evidence_and_signals(
    admin_client: FlaskClient, services: Services
) -> None:
    conversation, trace = say(services, "rho-bank", None, ASKS_FOR_HUMAN)
    _, waiting = say(services, "rho-bank", conversation, "My card number ends in 1234.")
    assert trace.decision["rule"] == "human_request"

    page = text(admin_client.get(f"/admin/conversations/{conversation.public_id}"))

    assert "pending human — human_request" in page
    assert 'class="turn turn-agent turn-escalated"' in page
    assert '<span class="status status-pending-human">escalated</span>' in page
    evidence = section(page, '<table class="table table-compact trace-evidence"')
    score, threshold = trace.decision["evidence"]["human_request"], trace.decision[
        "evidence"]["threshold"]
    assert f"<code>human_request</code></th><td>{score}</td>" in evidence
    assert (f'<code>threshold</code> <span class="badge">threshold</span></th>'
            f"<td>{threshold}</td>") in evidence
    signals = section(page, '<table class="table table-compact trace-signals"')
    assert str(trace.signals["human_request"]) in signals
    assert f"{trace.signals['sentiment']}, frustration {trace.signals['frustration']}" in signals
    for version in trace.signals["models"].values():
        assert f"<code>{version}</code>" in signals
    assert trace.signals["models"]["intent"].startswith(f"{RHO_INTENTS}@")
    intent, confidence = trace.signals["intent"], trace.signals["intent_confidence"]
    assert f"{intent} ({confidence})" in signals
    runner_up, p = next((label, p) for label, p in trace.signals["intent_top"]
                        if label != intent)
    assert f"then {runner_up} {p}" in signals
    for stage in ("embed", "signals", "retrieval"):
        assert f">{stage}</th>" in page
        assert stage in trace.latency_ms
    # The next message waits for the human: no model, no signals read.
    assert waiting.signals is None and waiting.decision["action"] == "awaiting_human"
    assert '<span class="status">awaiting human</span>' in page
    assert "No signals recorded for this turn." in page
    assert ">no model</dd>" in page


def test_it_renders_a_trace_written_before_signals_were_read(
    admin_client: FlaskClient, services: Services
) -> None:
    conversation, trace = say(services, "lumen-goods", None, ASKS_FOR_HUMAN)
    TurnTrace.update(
        signals=None, decision={"action": "reply", "rule": "no_knowledge"},
        latency_ms={"prepare": 1.5, "llm": 120.0, "total": 130.0},
    ).where(TurnTrace.id == trace.id).execute()

    page = text(admin_client.get(f"/admin/conversations/{conversation.public_id}"))

    assert "No signals recorded for this turn." in page
    assert "trace-evidence" not in page
    assert ">not recorded</span>" in page
    assert "<td>120.0 ms</td>" in page
    latency = section(page, '<table class="table table-compact" aria-label="Latency')
    assert latency.count("<td>—</td>") == 6, "embed, signals, retrieval, ttft, persist, overhead"


@pytest.mark.parametrize("reply_route", [[DEAD, TINY]])
def test_it_shows_the_models_a_fallback_turn_tried(
    admin_client: FlaskClient, services: Services
) -> None:
    conversation, trace = say(services, "lumen-goods", None, "Hello there!")
    assert trace.fallback and trace.decision["failed"] == [[DEAD, "model_unavailable"]]

    page = text(admin_client.get(f"/admin/conversations/{conversation.public_id}"))

    assert f"Trace: <code>{TINY}</code>" in page
    assert '<span class="status status-bad">fallback</span>' in page
    assert "<dt>Tried and failed</dt>" in page
    assert f'<code>{DEAD}</code> <span class="muted">(model_unavailable)</span>' in page
    assert ">small model first</dd>" in page
    signals = section(page, '<table class="table table-compact trace-signals"')
    assert "no intent model for this brand" in signals, "Lumen Goods' intent model is absent"


def test_it_lists_the_classifiers_with_their_training_data_and_metrics(
    admin_client: FlaskClient,
) -> None:
    page = text(admin_client.get("/admin/models/classifiers"))

    for name in ("human-request", "sentiment"):
        meta = meta_of(name)
        row = section(page, f'<tr id="classifier-{name}">')
        assert "all brands" in row
        assert '<span class="status status-ok">present</span>' in row
        assert f"{meta['name']}@{meta['model_sha256'][:12]}" in row
        data = meta["training_data"]
        assert f"{data['rows']} rows" in row
        assert f"{len(meta['labels'])} labels" in row
        assert f'title="{data["sha256"]}">sha256 {data["sha256"][:12]}…' in row
        metrics = {key: value for key, value in meta["metrics"].items()
                   if key != "folds" and value is not None}
        assert metrics, "held-out metrics are recorded"
        for value in metrics.values():
            assert f"<dd>{value}</dd>" in row
        assert "OOS precision" not in row, "null metrics are left out"
        assert meta["trained_at"][:10] in row
    assert "human_request_threshold" in section(page, '<tr id="classifier-human-request">')
    rho = section(page, f'<tr id="classifier-{RHO_INTENTS}">')
    assert "Rho-Bank" in rho and "present" in rho
    lumen = section(page, f'<tr id="classifier-{LUMEN_INTENTS}">')
    assert "Lumen Goods" in lumen
    assert '<span class="status status-bad">absent</span>' in lumen


def test_it_shows_a_brand_scoped_user_only_their_brands_intent_model(
    sign_in_as: Callable[..., FlaskClient],
) -> None:
    viewer = sign_in_as("viewer", "lumen-goods")

    page = text(viewer.get("/admin/models/classifiers"))

    for visible in ("human-request", "sentiment", LUMEN_INTENTS):
        assert f'id="classifier-{visible}"' in page
    assert RHO_INTENTS not in page
    assert "Rho-Bank" not in page


def test_it_keeps_the_classifiers_from_human_agents(
    sign_in_as: Callable[..., FlaskClient],
) -> None:
    agent = sign_in_as("human_agent", "lumen-goods")

    assert agent.get("/admin/models/classifiers").status_code == 403
    assert "/admin/models/classifiers" not in text(agent.get("/admin/"))


def test_it_lists_conversations_waiting_for_a_human_on_the_dashboard(
    admin_client: FlaskClient, services: Services, app: Flask, login: Login
) -> None:
    first, _ = say(services, "lumen-goods", None, ASKS_FOR_HUMAN)
    second, _ = say(services, "lumen-goods", None, "I want a human, not a bot")

    waiting = section(text(admin_client.get("/admin/")), HANDOFFS)

    assert "Lumen Goods" in waiting
    assert '<span class="status status-pending-human">2</span>' in waiting
    for conversation in (first, second):
        assert f"/admin/conversations/{conversation.public_id}" in waiting
    assert "human_request" in waiting
    services.users.create("rho-viewer", PASSWORD, "viewer", services.brands.get("rho-bank"),
                          actor="test")
    rho_viewer = app.test_client()
    assert login(rho_viewer, "rho-viewer", PASSWORD).status_code == 302
    waiting = section(text(rho_viewer.get("/admin/")), HANDOFFS)
    assert "No conversation is waiting for a human." in waiting
    assert first.public_id not in waiting
