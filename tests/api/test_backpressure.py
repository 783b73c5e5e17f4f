"""Backpressure: while the reply model's queue is full, a turn that needs the model is
refused at once (503 overloaded, Retry-After) and leaves no half turn; turns that need no
model (a handoff, a template) go through."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from server_support import make_settings, wait_for

from appliance.config import Settings
from appliance.db.models import Message
from appliance.services import Services

Auth = Callable[[str], dict[str, str]]
#: Bounds a thread's start, never asserted on.
START_S = 60.0


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """No call may wait for the model: one generating fills its queue."""
    return make_settings(tmp_path, database_url=database_url, llm_queue_depth=0)


@pytest.fixture
def model_busy(services: Services) -> Iterator[None]:
    """Another turn holds the reply model for the duration of the test."""
    queue = services.router.queue(services.router.route("reply")[0])
    assert queue is not None
    release = threading.Event()

    def generate() -> None:
        with queue.admitted_within(3600.0):
            release.wait(START_S)

    thread = threading.Thread(target=generate)
    thread.start()
    assert wait_for(lambda: queue.admitted == 1, START_S)
    yield
    release.set()
    thread.join()


def _send(client: FlaskClient, auth: Auth, conversation_id: str, text: str,
          **headers: str) -> Any:
    return client.post(f"/v1/conversations/{conversation_id}/messages", json={"text": text},
                       headers={**auth("lumen-goods"), **headers})


@pytest.mark.usefixtures("model_busy")
def test_a_model_turn_is_refused_while_the_model_is_full_and_leaves_nothing(
        client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str]) -> None:
    conversation_id = open_conversation("lumen-goods")
    messages = Message.select().count()

    plain = _send(client, auth, conversation_id, "hello")
    streamed = _send(client, auth, conversation_id, "hello", Accept="text/event-stream")
    keyed = _send(client, auth, conversation_id, "hello", **{"Idempotency-Key": "k1"})

    for refused in (plain, streamed, keyed):
        assert refused.status_code == 503, refused.get_data(as_text=True)
        assert refused.mimetype == "application/json"
        assert refused.get_json()["error"]["code"] == "overloaded"
        assert int(refused.headers["Retry-After"]) >= 1
    assert Message.select().count() == messages


@pytest.mark.usefixtures("model_busy")
def test_turns_that_need_no_model_do_not_wait_for_it(
        client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str]) -> None:
    conversation_id = open_conversation("lumen-goods")

    handoff = _send(client, auth, conversation_id, "I want to talk to a human agent please")
    waiting = _send(client, auth, conversation_id, "are you there?")

    assert handoff.status_code == 200, handoff.get_data(as_text=True)
    assert handoff.get_json()["conversation"]["status"] == "pending_human"
    assert waiting.status_code == 200
    assert waiting.get_json()["message"]["model"] == "template"
