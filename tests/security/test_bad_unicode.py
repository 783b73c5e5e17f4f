"""Text that is not valid Unicode, sent over real HTTP to a real gunicorn: a lone UTF-16
surrogate ("\\ud800" in JSON) or its UTF-8 bytes, in every string a client sends. Each is one
400 in the one error shape, on the JSON and the streaming path alike, and no traceback is
logged (once a 503 with a traceback: nothing could store, embed or generate from it)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from server_support import LiveServer, running_server

JSON = {"Content-Type": "application/json"}
SURROGATE_TEXTS = [
    b'{"text": "hi \\ud800 there"}',
    b'{"text": "\\udfff"}',
    b'{"text": "half an emoji \\ud83d"}',
    b'{"text": "hi \xed\xa0\x80 there"}',  # the surrogate's bytes, which UTF-8 forbids
]


def assert_one_error(response: httpx.Response, code: str, param: str | None) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert (body["error"]["code"], body["error"]["param"]) == (code, param)
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`appliance serve` with the demo brands, without their knowledge (nothing here asks
    it, and ingesting it takes a while)."""
    data_dir = tmp_path_factory.mktemp("unicode") / "data"
    with running_server(data_dir, {"APPLIANCE_WEB_WORKERS": "1"}, "--no-knowledge") as server:
        yield server


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server.url, timeout=120, trust_env=False, headers={
            "Authorization": f"Bearer {live_server.key('lumen-goods')}"}) as client:
        yield client


@pytest.mark.parametrize("body", SURROGATE_TEXTS)
@pytest.mark.parametrize("accept", ["application/json", "text/event-stream"])
def test_it_refuses_a_message_that_is_not_unicode_with_one_400(
        http: httpx.Client, live_server: LiveServer, body: bytes, accept: str) -> None:
    conversation = http.post("/v1/conversations", json={}).json()["id"]

    response = http.post(f"/v1/conversations/{conversation}/messages", content=body,
                         headers={**JSON, "Accept": accept})

    assert_one_error(response, "invalid_text", "text")
    # The conversation goes on: the next message is answered.
    followed = http.post(f"/v1/conversations/{conversation}/messages",
                         json={"text": "hello"})
    assert followed.status_code == 200, followed.text
    assert "Traceback" not in (live_server.data_dir / "serve.log").read_text()


def test_a_widget_customer_gets_the_same_400(live_server: LiveServer) -> None:
    opened = httpx.post(f"{live_server.url}/v1/widget/lumen-goods/conversations", json={},
                        timeout=120, trust_env=False)
    assert opened.status_code == 201, opened.text
    token = opened.json()["token"]

    response = httpx.post(
        f"{live_server.url}/v1/conversations/{opened.json()['id']}/messages",
        content=SURROGATE_TEXTS[0], timeout=120, trust_env=False,
        headers={**JSON, "Authorization": f"Bearer {token}"})

    assert_one_error(response, "invalid_text", "text")


@pytest.mark.parametrize(("body", "param"), [
    (b'{"customer": {"name": "a\\ud800b"}}', "customer.name"),
    (b'{"customer": {"id": "a\\udc00b"}}', "customer.id"),
    (b'{"customer": {"email": "a\\ud800@example.com"}}', "customer.email"),
])
def test_a_surrogate_in_any_field_of_a_new_conversation_is_a_400(
        http: httpx.Client, body: bytes, param: str) -> None:
    assert_one_error(http.post("/v1/conversations", content=body, headers=JSON),
                     "invalid_request", param)
