"""Idempotent turns: a retry with the same Idempotency-Key gets the original reply and never
runs the turn twice; the key reused for another request is a 409; keys go after 24 hours."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient

from appliance.db.models import IdempotencyKey, Message, TurnTrace, utcnow
from appliance.idempotency import fingerprint
from appliance.jobs import run_job
from appliance.services import Services

Auth = Callable[[str], dict[str, str]]


def _post(client: FlaskClient, auth: Auth, conversation_id: str, text: str,
          key: str | None, **headers: str) -> Any:
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"/v1/conversations/{conversation_id}/messages", json={"text": text},
                       headers={**auth("lumen-goods"), **headers})


def _customer_messages(text: str) -> int:
    return Message.select().where((Message.role == "customer") & (Message.text == text)).count()


def test_it_returns_the_original_reply_to_a_retry_and_runs_the_turn_once(
        client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str]) -> None:
    conversation_id = open_conversation("lumen-goods")

    first = _post(client, auth, conversation_id, "hello", "retry-1")
    again = _post(client, auth, conversation_id, "hello", "retry-1")

    assert first.status_code == again.status_code == 200, first.get_data(as_text=True)
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _customer_messages("hello") == 1
    assert TurnTrace.select().count() == 1


def test_a_retry_asking_for_a_stream_gets_the_stored_reply_as_one_event(
        client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str],
        sse: Callable[[str], list[tuple[str, dict[str, Any]]]]) -> None:
    conversation_id = open_conversation("lumen-goods")
    first = _post(client, auth, conversation_id, "hello", "k")

    again = _post(client, auth, conversation_id, "hello", "k", Accept="text/event-stream")

    assert sse(again.get_data(as_text=True)) == [("message", first.get_json())]


def test_the_same_key_with_another_body_is_a_conflict(
        client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str]) -> None:
    conversation_id = open_conversation("lumen-goods")
    assert _post(client, auth, conversation_id, "hello", "k").status_code == 200

    other_text = _post(client, auth, conversation_id, "thanks", "k")
    other_conversation = _post(client, auth, open_conversation("lumen-goods"), "hello", "k")

    for refused in (other_text, other_conversation):
        assert refused.status_code == 409
        assert refused.get_json()["error"]["code"] == "idempotency_conflict"
        assert refused.get_json()["error"]["param"] == "Idempotency-Key"
    assert _customer_messages("thanks") == 0


def test_keys_belong_to_one_brand(
        client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str]) -> None:
    lumen, rho = open_conversation("lumen-goods"), open_conversation("rho-bank")
    assert _post(client, auth, lumen, "hello", "shared").status_code == 200

    theirs = client.post(f"/v1/conversations/{rho}/messages", json={"text": "hi there"},
                         headers={**auth("rho-bank"), "Idempotency-Key": "shared"})

    assert theirs.status_code == 200, theirs.get_data(as_text=True)


def test_a_turn_refused_before_it_ran_releases_its_key(
        client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str]) -> None:
    conversation_id = open_conversation("lumen-goods")
    client.post(f"/v1/conversations/{conversation_id}/close", headers=auth("lumen-goods"))

    refused = _post(client, auth, conversation_id, "hello", "closed")

    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "conversation_closed"
    assert IdempotencyKey.select().count() == 0


def test_a_malformed_key_is_refused(
        client: FlaskClient, auth: Auth, open_conversation: Callable[[str], str]) -> None:
    refused = _post(client, auth, open_conversation("lumen-goods"), "hello", "x" * 256)

    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "invalid_idempotency_key"
    assert _customer_messages("hello") == 0


def test_a_key_held_by_a_live_worker_is_in_progress(
        client: FlaskClient, auth: Auth, services: Services,
        open_conversation: Callable[[str], str]) -> None:
    """A retry while the first request still runs (its worker, this process, is alive)."""
    conversation_id = open_conversation("lumen-goods")
    brand = services.brands.get("lumen-goods")
    services.idempotency.claim(brand, "busy", fingerprint(conversation_id, {"text": "hello"}))

    busy = _post(client, auth, conversation_id, "hello", "busy")

    assert busy.status_code == 409
    assert busy.get_json()["error"]["code"] == "idempotency_in_progress"
    assert busy.headers["Retry-After"] == "1"
    assert _customer_messages("hello") == 0


def test_the_purge_job_forgets_keys_after_a_day(
        client: FlaskClient, auth: Auth, services: Services,
        open_conversation: Callable[[str], str]) -> None:
    conversation_id = open_conversation("lumen-goods")
    _post(client, auth, conversation_id, "hello", "old")
    _post(client, auth, conversation_id, "thanks", "new")
    IdempotencyKey.update(created_at=utcnow() - dt.timedelta(hours=25)).where(
        IdempotencyKey.key == "old").execute()

    run = run_job(services, "idempotency.purge")

    assert run.status == "ok" and run.detail == {"deleted": 1}
    assert [row.key for row in IdempotencyKey.select()] == ["new"]
