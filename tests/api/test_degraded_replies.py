"""A turn over /v1 while the reply route's first model is down or hangs: the tiny model answers,
and the reply says so (`confidence: degraded`, `fallback`, the model used)."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from model_stores import write_store

from appliance.config import Settings

A = "lumen-goods"
TINY = "smollm2-135m-instruct"
FIRST = "first-http"
#: The first model's own manifest timeout: the hanging server never answers, so the tiny model
#: answers after it, however slow the machine (the turn's budget is the tests' NO_TIME_LIMIT_S).
FIRST_TIMEOUT_S = 1.0
Auth = Callable[[str], dict[str, str]]
SseParser = Callable[[str], list[tuple[str, dict[str, Any]]]]


@pytest.fixture(params=["hanging", "killed"])
def first_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A /v1 URL whose server hangs (the kernel takes the connection, nobody ever answers) or
    was killed (nothing listens any more: connections are refused)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    if request.param == "hanging":
        sock.listen(8)
    else:
        sock.close()
    yield url
    sock.close()


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, first_url: str) -> Settings:
    first = {
        "id": FIRST, "role": "small", "profile": "gpu", "backend": "openai_http",
        "url": first_url, "served_name": "small", "context_tokens": 2048,
        "timeout_s": FIRST_TIMEOUT_S, "license": "test", "source": "a server that is down",
    }
    store = write_store(tmp_path / "model_store", reply=[TINY], extra=(first,))
    return dataclasses.replace(settings, model_store=store, reply_models=(FIRST, TINY))


def _say(client: FlaskClient, conversation_id: str, headers: dict[str, str], text: str,
         accept: str = "application/json") -> Any:
    return client.post(f"/v1/conversations/{conversation_id}/messages", json={"text": text},
                       headers={**headers, "Accept": accept})


def test_it_marks_a_reply_from_the_fallback_model_as_degraded(
    client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str]
) -> None:
    conversation_id = open_conversation(A)

    response = _say(client, conversation_id, auth(A), "Hi! How do I sign up for your newsletter?")

    assert response.status_code == 200, response.get_data(as_text=True)
    message = response.get_json()["message"]
    assert message["model"] == TINY
    assert message["text"].strip()
    assert message["fallback"] is True
    assert message["confidence"] == "degraded"


@pytest.mark.parametrize("first_url", ["hanging"], indirect=True)
def test_it_marks_the_streamed_reply_as_degraded_too(
    client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str], sse: SseParser
) -> None:
    conversation_id = open_conversation(A)

    response = _say(client, conversation_id, auth(A), "Hello there!", "text/event-stream")

    events = sse(response.get_data(as_text=True))
    name, final = events[-1]
    assert name == "message"
    assert final["message"]["model"] == TINY
    assert final["message"]["confidence"] == "degraded"
    assert final["message"]["fallback"] is True
