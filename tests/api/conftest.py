"""Fixtures for the /v1 API tests: the demo brands' keys, conversations, and an SSE reader."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

SseEvents = list[tuple[str, dict[str, Any]]]


def parse_sse(text: str) -> SseEvents:
    """(event, data) for every Server-Sent Event in `text`, in order."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


@pytest.fixture
def sse() -> Callable[[str], SseEvents]:
    return parse_sse


@pytest.fixture
def auth(seeded: dict[str, Any]) -> Callable[[str], dict[str, str]]:
    """auth(slug): the Authorization header with that demo brand's key."""

    def header(slug: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {seeded['keys'][slug]}"}

    return header


@pytest.fixture
def open_conversation(
    client: FlaskClient, auth: Callable[[str], dict[str, str]]
) -> Callable[[str], str]:
    """open_conversation(slug): a new conversation of that brand, opened with its key."""

    def open_(slug: str) -> str:
        response = client.post("/v1/conversations", json={}, headers=auth(slug))
        assert response.status_code == 201, response.get_data(as_text=True)
        conversation_id: str = response.json["id"]  # type: ignore[index]
        return conversation_id

    return open_


@pytest.fixture
def open_widget_conversation(client: FlaskClient) -> Callable[[str], tuple[str, str]]:
    """open_widget_conversation(slug): (conversation id, its widget token), via the public route."""

    def open_(slug: str) -> tuple[str, str]:
        response = client.post(f"/v1/widget/{slug}/conversations", json={})
        assert response.status_code == 201, response.get_data(as_text=True)
        body: dict[str, str] = response.json  # type: ignore[assignment]
        return body["id"], body["token"]

    return open_
