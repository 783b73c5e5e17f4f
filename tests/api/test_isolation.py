"""Brands never see each other's conversations, and a widget token sees only its own one.

Someone else's conversation must look exactly like a missing one (404, same code), and a
refused call must change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.db.models import Conversation, Message

A, B = "lumen-goods", "rho-bank"


@dataclass(frozen=True)
class Endpoint:
    id: str
    method: str
    path: str
    body: dict[str, str] | None = None

    def call(self, client: FlaskClient, conversation_id: str, token: str) -> TestResponse:
        return client.open(self.path.format(id=conversation_id), method=self.method,
                           json=self.body, headers={"Authorization": f"Bearer {token}"})


ENDPOINTS = [
    Endpoint("transcript", "GET", "/v1/conversations/{id}"),
    Endpoint("post-message", "POST", "/v1/conversations/{id}/messages", {"text": "Hello?"}),
    Endpoint("close", "POST", "/v1/conversations/{id}/close"),
]


@dataclass(frozen=True)
class World:
    """Two conversations per brand: one opened with the brand's key, one from its widget."""

    keys: dict[str, str]
    by_key: dict[str, str]
    by_widget: dict[str, tuple[str, str]]


@pytest.fixture
def world(
    seeded: dict[str, dict[str, str]], open_conversation: Callable[[str], str],
    open_widget_conversation: Callable[[str], tuple[str, str]],
) -> World:
    return World(
        keys=seeded["keys"],
        by_key={slug: open_conversation(slug) for slug in (A, B)},
        by_widget={slug: open_widget_conversation(slug) for slug in (A, B)},
    )


def _snapshot(conversation_id: str) -> tuple[str, int]:
    conversation = Conversation.get(Conversation.public_id == conversation_id)
    count = Message.select().where(Message.conversation == conversation).count()
    return conversation.status, count


# (caller's credential, its brand, target conversation's origin, its brand)
CROSSINGS = [
    ("key", A, "key", B),
    ("key", B, "key", A),
    ("key", A, "widget", B),
    ("key", B, "widget", A),
    ("widget", A, "key", B),
    ("widget", B, "key", A),
    ("widget", A, "widget", B),
    ("widget", B, "widget", A),
    # Same brand, another conversation: a widget token is scoped to its own conversation.
    ("widget", A, "key", A),
    ("widget", B, "key", B),
]


def _token(world: World, kind: str, slug: str) -> str:
    return world.by_widget[slug][1] if kind == "widget" else world.keys[slug]


def _conversation(world: World, kind: str, slug: str) -> str:
    return world.by_widget[slug][0] if kind == "widget" else world.by_key[slug]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[e.id for e in ENDPOINTS])
def test_it_hides_conversations_the_caller_does_not_own(
    client: FlaskClient, world: World, endpoint: Endpoint
) -> None:
    leaks = []
    for caller, caller_brand, target, target_brand in CROSSINGS:
        crossing = f"{caller} of {caller_brand} -> {target} conversation of {target_brand}"
        conversation_id = _conversation(world, target, target_brand)
        before = _snapshot(conversation_id)

        response = endpoint.call(client, conversation_id, _token(world, caller, caller_brand))

        error = (response.get_json() or {}).get("error") or {}
        if (response.status_code, error.get("code"), error.get("type")) != (
            404, "conversation_not_found", "not_found_error"
        ):
            leaks.append(f"{crossing}: {response.status_code} {response.get_data(as_text=True)}")
        if _snapshot(conversation_id) != before:
            leaks.append(f"{crossing}: the refused call changed the conversation")

    assert leaks == []


def test_it_lets_owners_read_their_own_conversations(client: FlaskClient, world: World) -> None:
    """The control for the matrix above: the same call succeeds for the owner."""
    transcript = ENDPOINTS[0]
    for slug in (A, B):
        widget_id, widget_token = world.by_widget[slug]
        for conversation_id, token in [
            (world.by_key[slug], world.keys[slug]),
            (widget_id, widget_token),
            (widget_id, world.keys[slug]),  # the brand's key sees its widget conversations
        ]:
            response = transcript.call(client, conversation_id, token)

            assert response.status_code == 200, response.get_data(as_text=True)
            assert response.get_json()["id"] == conversation_id
            assert response.get_json()["brand"] == slug


def test_it_lets_a_widget_token_close_its_own_conversation(
    client: FlaskClient, world: World
) -> None:
    widget_id, widget_token = world.by_widget[A]

    response = ENDPOINTS[2].call(client, widget_id, widget_token)

    assert response.status_code == 200
    assert response.get_json() == {"id": widget_id, "status": "closed", "status_reason": None}


def test_it_refuses_to_open_conversations_with_a_widget_token(
    client: FlaskClient, world: World
) -> None:
    _, widget_token = world.by_widget[A]
    before = Conversation.select().count()

    response = client.post("/v1/conversations", json={},
                           headers={"Authorization": f"Bearer {widget_token}"})

    assert response.status_code == 404
    assert set(response.get_json()) == {"error", "request_id"}
    assert Conversation.select().count() == before


def test_it_rejects_a_widget_token_signed_with_another_secret(
    client: FlaskClient, world: World
) -> None:
    widget_id, widget_token = world.by_widget[A]
    payload, _, signature = widget_token.rpartition(".")
    forged = f"{payload}.{'A' * len(signature)}"

    response = ENDPOINTS[0].call(client, widget_id, forged)

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_api_key"


def test_it_rejects_an_expired_widget_token(
    client: FlaskClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    widget_id, widget_token = world.by_widget[A]
    monkeypatch.setattr("appliance.web.api.auth.WIDGET_TOKEN_MAX_AGE_S", -1)

    response = ENDPOINTS[0].call(client, widget_id, widget_token)

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "token_expired"
