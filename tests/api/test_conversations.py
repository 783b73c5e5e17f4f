"""The /v1 contract: open, reply (JSON and SSE), read, close; turn traces; the OpenAPI document;
health, readiness and versions. Replies come from the real tiny model."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance import __version__
from appliance.brands import Policy
from appliance.config import Settings
from appliance.db.migrate import SchemaMigration, migrate
from appliance.db.models import Conversation, Message, TurnTrace
from appliance.demo.seed import DEMO_BRANDS
from appliance.services import Services, build_services
from appliance.web import create_app

A = "lumen-goods"
TINY = "smollm2-135m-instruct"
TEST_REPLY_TOKENS = 24
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SseParser = Callable[[str], list[tuple[str, dict[str, Any]]]]
Auth = Callable[[str], dict[str, str]]


def greeting_of(slug: str) -> str:
    return next(demo.persona.greeting for demo in DEMO_BRANDS if demo.slug == slug)


def shape(value: Any) -> Any:
    """The structure of a JSON value: keys and value types, not the values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return type(value).__name__


def say(client: FlaskClient, conversation_id: str, headers: dict[str, str], text: str,
        *, stream: bool = False) -> TestResponse:
    accept = "text/event-stream" if stream else "application/json"
    return client.post(f"/v1/conversations/{conversation_id}/messages", json={"text": text},
                       headers={**headers, "Accept": accept})


# --- opening ------------------------------------------------------------------------------


def test_it_opens_a_conversation_that_starts_with_the_personas_greeting(
    client: FlaskClient, auth: Auth
) -> None:
    customer = {"id": "c-42", "name": "Rosa Diaz", "email": "rosa@example.com"}

    response = client.post("/v1/conversations", json={"customer": customer, "channel": "email"},
                           headers=auth(A))

    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"id", "brand", "status", "channel", "customer", "created_at",
                         "greeting"}
    assert body["id"].startswith("conv_")
    assert body["brand"] == A
    assert body["status"] == "active"
    assert body["channel"] == "email"
    assert body["customer"] == customer
    assert ISO_UTC.match(body["created_at"])
    assert body["greeting"]["text"] == greeting_of(A)
    assert body["greeting"]["id"].startswith("msg_")
    assert response.headers["X-Request-ID"]


def test_it_opens_a_widget_conversation_with_a_token_scoped_to_it(
    client: FlaskClient, seeded: dict[str, Any]
) -> None:
    response = client.post("/v1/widget/rho-bank/conversations", json={})

    assert response.status_code == 201
    body = response.get_json()
    assert body["channel"] == "widget"
    assert body["brand"] == "rho-bank"
    assert body["greeting"]["text"] == greeting_of("rho-bank")
    assert body["token"].startswith("sbw_")
    transcript = client.get(f"/v1/conversations/{body['id']}",
                            headers={"Authorization": f"Bearer {body['token']}"})
    assert transcript.status_code == 200


def test_it_hides_the_widget_of_a_brand_that_turned_it_off(
    client: FlaskClient, services: Services, seeded: dict[str, Any]
) -> None:
    services.brands.update(A, policy=Policy(widget_enabled=False), actor="test")
    before = Conversation.select().count()

    response = client.post(f"/v1/widget/{A}/conversations", json={})

    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "brand_not_found"
    assert Conversation.select().count() == before


@pytest.mark.parametrize(("body", "param"), [
    ({"customer": {"email": "not-an-email"}}, "customer.email"),
    ({"channel": "Not A Channel!"}, "channel"),
    ({"customer": "rosa"}, "customer"),
])
def test_it_rejects_a_bad_conversation_body_naming_the_field(
    client: FlaskClient, auth: Auth, body: dict[str, Any], param: str
) -> None:
    response = client.post("/v1/conversations", json=body, headers=auth(A))

    assert response.status_code == 400
    assert response.get_json()["error"]["param"] == param


# --- replying -----------------------------------------------------------------------------


def test_it_replies_with_the_model_latency_and_usage(
    client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str]
) -> None:
    conversation_id = open_conversation(A)

    response = say(client, conversation_id, auth(A), "Hi! How do I sign up for your newsletter?")

    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"message", "conversation", "usage"}
    message = body["message"]
    assert set(message) == {"id", "role", "text", "html", "model", "latency_ms", "fallback",
                            "confidence", "citations"}
    assert message["citations"] == []  # no published knowledge: nothing to cite
    assert message["id"].startswith("msg_")
    assert message["role"] == "agent"
    assert message["text"].strip()
    assert message["model"] == TINY
    assert message["fallback"] is False
    assert message["confidence"] == "normal"
    assert isinstance(message["latency_ms"], float) and message["latency_ms"] > 0
    assert body["conversation"] == {"id": conversation_id, "status": "active",
                                     "status_reason": None}
    assert body["usage"]["prompt_tokens"] > 0
    assert 0 < body["usage"]["completion_tokens"] <= TEST_REPLY_TOKENS


def test_it_streams_deltas_then_the_message_it_saved(
    client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str], sse: SseParser
) -> None:
    conversation_id = open_conversation(A)
    plain = say(client, conversation_id, auth(A),
                "Hello, I need help with my newsletter subscription.")

    streamed = say(client, conversation_id, auth(A),
                   "How do I unsubscribe from the newsletter?", stream=True)

    assert streamed.status_code == 200
    assert streamed.mimetype == "text/event-stream"
    events = sse(streamed.get_data(as_text=True))
    names = [name for name, _ in events]
    assert names[-1] == "message"
    assert names.count("message") == 1
    assert set(names[:-1]) == {"delta"}, "only deltas come before the message"
    assert "".join(data["text"] for _, data in events[:-1]).strip()
    final = events[-1][1]
    assert shape(final) == shape(plain.get_json())
    assert final["message"]["model"] == TINY
    assert final["conversation"] == {"id": conversation_id, "status": "active",
                                     "status_reason": None}

    transcript = client.get(f"/v1/conversations/{conversation_id}", headers=auth(A)).get_json()
    assert [(m["role"], m["text"]) for m in transcript["messages"]] == [
        ("agent", greeting_of(A)),
        ("customer", "Hello, I need help with my newsletter subscription."),
        ("agent", plain.get_json()["message"]["text"]),
        ("customer", "How do I unsubscribe from the newsletter?"),
        ("agent", final["message"]["text"]),
    ]
    assert transcript["messages"][-1]["id"] == final["message"]["id"]
    assert [m["model"] for m in transcript["messages"]] == [None, None, TINY, None, TINY]


def test_it_records_a_turn_trace_for_every_turn(
    client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str]
) -> None:
    conversation_id = open_conversation(A)
    first = say(client, conversation_id, auth(A), "How do I create an account?").get_json()
    # A streamed turn is generated and saved while the body is read.
    say(client, conversation_id, auth(A), "Can I get an invoice for my purchase?",
        stream=True).get_data()

    conversation = Conversation.get(Conversation.public_id == conversation_id)
    traces = list(TurnTrace.select().where(TurnTrace.conversation == conversation)
                  .order_by(TurnTrace.id))
    assert len(traces) == 2
    for trace in traces:
        assert trace.model == TINY
        assert trace.fallback is False
        assert trace.prompt_tokens > 0
        assert 0 < trace.completion_tokens <= TEST_REPLY_TOKENS
        assert {"prepare", "llm", "persist", "total", "overhead"} <= set(trace.latency_ms)
        assert all(trace.latency_ms[stage] >= 0 for stage in trace.latency_ms)
        assert trace.latency_ms["total"] >= trace.latency_ms["llm"]
        assert trace.decision["action"] == "reply"
        assert trace.customer_message.role == "customer"
        assert trace.agent_message.role == "agent"
        assert trace.agent_message.model == TINY
    assert traces[0].agent_message.public_id == first["message"]["id"]
    assert traces[0].prompt_tokens == first["usage"]["prompt_tokens"]
    assert traces[0].completion_tokens == first["usage"]["completion_tokens"]
    assert traces[0].latency_ms["total"] == first["message"]["latency_ms"]


# --- closing ------------------------------------------------------------------------------


def test_it_closes_a_conversation_and_then_refuses_messages(
    client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str]
) -> None:
    conversation_id = open_conversation(A)

    closed = client.post(f"/v1/conversations/{conversation_id}/close", headers=auth(A))

    assert closed.status_code == 200
    assert closed.get_json() == {"id": conversation_id, "status": "closed",
                                     "status_reason": None}
    transcript = client.get(f"/v1/conversations/{conversation_id}", headers=auth(A)).get_json()
    assert transcript["status"] == "closed"
    assert ISO_UTC.match(transcript["closed_at"])
    refused = say(client, conversation_id, auth(A), "Are you still there?")
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "conversation_closed"
    conversation = Conversation.get(Conversation.public_id == conversation_id)
    assert Message.select().where(Message.conversation == conversation).count() == 1


def test_it_closes_idempotently(
    client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str]
) -> None:
    conversation_id = open_conversation(A)
    url = f"/v1/conversations/{conversation_id}"
    client.post(f"{url}/close", headers=auth(A))
    first = client.get(url, headers=auth(A)).get_json()["closed_at"]

    again = client.post(f"{url}/close", headers=auth(A))

    assert again.status_code == 200
    assert again.get_json()["status"] == "closed"
    assert client.get(url, headers=auth(A)).get_json()["closed_at"] == first


# --- the OpenAPI document -----------------------------------------------------------------


def _v1_routes(app: Flask) -> dict[str, set[str]]:
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1/"):
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
            routes.setdefault(path, set()).update(
                method.lower() for method in rule.methods or () if method not in
                ("HEAD", "OPTIONS")
            )
    return routes


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_it_documents_every_v1_route_in_openapi(app: Flask, client: FlaskClient) -> None:
    response = client.get("/v1/openapi.json")

    assert response.status_code == 200
    document = response.get_json()
    documented = {path: set(ops) for path, ops in document["paths"].items()}
    assert documented == _v1_routes(app)


def test_it_serves_a_valid_openapi_document_without_a_key(client: FlaskClient) -> None:
    document = client.get("/v1/openapi.json").get_json()

    assert document["openapi"] == "3.1.0"
    assert document["info"]["version"] == __version__
    refs = _refs(document)
    assert refs, "the document refers to its schemas"
    for ref in refs:
        assert isinstance(_resolve(document, ref), dict), ref
    for path, operations in document["paths"].items():
        names = set(re.findall(r"{([^}]+)}", path))
        for operation in operations.values():
            assert operation["responses"], path
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == names, f"{path}: path parameters {declared} != {names}"


# --- health, readiness, versions ----------------------------------------------------------


def test_it_reports_healthy(client: FlaskClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_it_is_ready_when_the_schema_is_current(client: FlaskClient) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["reply_model"]["model"] == TINY


def test_it_is_not_ready_while_migrations_are_pending(settings: Settings) -> None:
    services = build_services(settings)  # a fresh database, never migrated
    try:
        client = create_app({"TESTING": True}, services=services).test_client()

        response = client.get("/readyz")
    finally:
        services.close()

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "not_ready"
    assert body["checks"]["database"] == {"ok": False, "detail": "migrations pending"}


def test_it_is_not_ready_on_a_schema_newer_than_this_release(settings: Settings) -> None:
    """Another node migrated to a later release while this one was down: this code must not
    serve a schema it does not know."""
    services = build_services(settings)
    try:
        migrate(services.db)
        with services.db.bind_ctx([SchemaMigration]):
            SchemaMigration.create(version=9999, name="from_a_later_release",
                                   applied_at=dt.datetime(2026, 12, 8))
        client = create_app({"TESTING": True}, services=services).test_client()

        response = client.get("/readyz")
    finally:
        services.close()

    assert response.status_code == 503
    assert response.get_json()["checks"]["database"] == {
        "ok": False, "detail": "schema newer than this release"}


# --- over real HTTP -----------------------------------------------------------------------


def test_it_streams_a_reply_over_real_http(live_server: Any) -> None:
    headers = {"Authorization": f"Bearer {live_server.key(A)}"}
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=120,
                      trust_env=False) as http:
        opened = http.post("/v1/conversations", json={})
        assert opened.status_code == 201
        conversation_id = opened.json()["id"]

        events: list[tuple[str, str]] = []
        with http.stream("POST", f"/v1/conversations/{conversation_id}/messages",
                         json={"text": "How long does shipping usually take?"},
                         headers={"Accept": "text/event-stream"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["x-request-id"]
            event = ""
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((event, line.removeprefix("data: ")))

        transcript = http.get(f"/v1/conversations/{conversation_id}").json()

    names = [name for name, _ in events]
    assert names[0] == "delta"
    assert names[-1] == "message"
    assert set(names[:-1]) == {"delta"}
    final = json.loads(events[-1][1])
    assert final["message"]["model"] == TINY
    assert transcript["messages"][-1]["text"] == final["message"]["text"]
    assert [m["role"] for m in transcript["messages"]] == ["agent", "customer", "agent"]
