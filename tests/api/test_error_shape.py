"""Every /v1 error has one shape: {"error": {message, type, param, code}, "request_id"}, with the
right status and the X-Request-ID header equal to request_id; a 500 never shows internals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.services import Services

SECRET = "secret-internal-detail /etc/passwd"
ERROR_FIELDS = {"message", "type", "param", "code"}


def assert_error_shape(
    response: TestResponse, status: int, *, code: str | None = None,
    param: str | None = None, type_: str | None = None,
) -> dict[str, Any]:
    """Check the one error shape and return the `error` object."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error", "request_id"}
    error = body["error"]
    assert set(error) == ERROR_FIELDS
    assert isinstance(error["message"], str) and error["message"].strip()
    assert isinstance(error["type"], str) and error["type"]
    assert isinstance(error["code"], str) and error["code"]
    assert error["param"] == param
    if code is not None:
        assert error["code"] == code
    if type_ is not None:
        assert error["type"] == type_
    assert body["request_id"], "every error names its request"
    assert response.headers["X-Request-ID"] == body["request_id"]
    return dict(error)


@dataclass(frozen=True)
class Ctx:
    """What a case needs: the client, a live key, a conversation of that key's brand."""

    client: FlaskClient
    services: Services
    headers: dict[str, str]
    conversation_id: str

    @property
    def messages_url(self) -> str:
        return f"/v1/conversations/{self.conversation_id}/messages"

    def post_raw(self, data: bytes | str) -> TestResponse:
        return self.client.post(self.messages_url, data=data,
                                headers={**self.headers, "Content-Type": "application/json"})

    def post_json(self, body: Any) -> TestResponse:
        return self.client.post(self.messages_url, json=body, headers=self.headers)


def _revoked_key(ctx: Ctx) -> TestResponse:
    key, token = ctx.services.brands.create_key("lumen-goods", "to-revoke", actor="test")
    ctx.services.brands.revoke_key("lumen-goods", key.id, actor="test")
    return ctx.client.get(f"/v1/conversations/{ctx.conversation_id}",
                          headers={"Authorization": f"Bearer {token}"})


def _closed(ctx: Ctx) -> TestResponse:
    closed = ctx.client.post(f"/v1/conversations/{ctx.conversation_id}/close",
                             headers=ctx.headers)
    assert closed.status_code == 200
    return ctx.post_json({"text": "hello?"})


def _too_long_text(ctx: Ctx) -> TestResponse:
    return ctx.post_json({"text": "x" * (ctx.services.settings.max_message_chars + 1)})


def _too_big_body(ctx: Ctx) -> TestResponse:
    return ctx.post_json({"text": "x" * (ctx.services.settings.max_request_bytes + 1)})


@dataclass(frozen=True)
class Case:
    id: str
    send: Callable[[Ctx], TestResponse]
    status: int
    code: str
    param: str | None = None


CASES = [
    Case("malformed-json", lambda c: c.post_raw('{"text": "hi"'), 400, "invalid_json"),
    Case("json-array-body", lambda c: c.post_raw('["hi"]'), 400, "invalid_json"),
    Case("missing-text", lambda c: c.post_json({}), 400, "invalid_request", "text"),
    Case("text-is-int", lambda c: c.post_json({"text": 42}), 400, "invalid_request", "text"),
    Case("unknown-field", lambda c: c.post_json({"text": "hi", "mood": "happy"}), 400,
         "invalid_request", "mood"),
    Case("empty-text", lambda c: c.post_json({"text": "   "}), 400, "empty_message", "text"),
    Case("lone-surrogate", lambda c: c.post_raw('{"text": "hi \\ud800 there"}'), 400,
         "invalid_text", "text"),
    Case("text-too-long", _too_long_text, 413, "message_too_long", "text"),
    Case("body-too-big", _too_big_body, 413, "payload_too_large"),
    Case("missing-key", lambda c: c.client.get(f"/v1/conversations/{c.conversation_id}"), 401,
         "missing_api_key"),
    Case("wrong-key", lambda c: c.client.get(
        f"/v1/conversations/{c.conversation_id}",
        headers={"Authorization": "Bearer sbk_not-a-key-anyone-was-given"}), 401,
        "invalid_api_key"),
    Case("not-a-key", lambda c: c.client.get(
        f"/v1/conversations/{c.conversation_id}", headers={"Authorization": "Bearer hunter2"}),
        401, "invalid_api_key"),
    Case("forged-widget-token", lambda c: c.client.get(
        f"/v1/conversations/{c.conversation_id}",
        headers={"Authorization": "Bearer sbw_eyJiIjoxLCJjIjoiY29udiJ9.forged.sig"}), 401,
        "invalid_api_key"),
    Case("revoked-key", _revoked_key, 401, "invalid_api_key"),
    Case("unknown-conversation", lambda c: c.client.get(
        "/v1/conversations/conv_000000000000000000000000", headers=c.headers), 404,
        "conversation_not_found"),
    Case("closed-conversation", _closed, 409, "conversation_closed"),
    Case("unknown-v1-route", lambda c: c.client.get("/v1/no-such-thing", headers=c.headers),
         404, "not_found"),
    Case("wrong-method", lambda c: c.client.delete(
        f"/v1/conversations/{c.conversation_id}", headers=c.headers), 405, "method_not_allowed"),
    Case("widget-for-unknown-brand", lambda c: c.client.post(
        "/v1/widget/no-such-brand/conversations", json={}), 404, "brand_not_found"),
]


@pytest.fixture
def ctx(
    client: FlaskClient, services: Services, auth: Callable[[str], dict[str, str]],
    open_conversation: Callable[[str], str],
) -> Ctx:
    return Ctx(client, services, auth("lumen-goods"), open_conversation("lumen-goods"))


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_it_answers_every_error_in_the_one_shape(ctx: Ctx, case: Case) -> None:
    response = case.send(ctx)

    assert_error_shape(response, case.status, code=case.code, param=case.param)


def test_it_types_errors_by_their_nature(ctx: Ctx) -> None:
    assert_error_shape(ctx.post_json({}), 400, param="text", type_="invalid_request_error")
    assert_error_shape(ctx.client.get(f"/v1/conversations/{ctx.conversation_id}"), 401,
                       code="missing_api_key", type_="authentication_error")
    assert_error_shape(ctx.client.get("/v1/conversations/conv_nope", headers=ctx.headers), 404,
                       code="conversation_not_found", type_="not_found_error")


def test_it_echoes_a_well_formed_client_request_id(ctx: Ctx) -> None:
    response = ctx.client.get("/v1/conversations/conv_nope",
                              headers={**ctx.headers, "X-Request-ID": "client-abc.123"})

    assert_error_shape(response, 404)
    assert response.get_json()["request_id"] == "client-abc.123"


def test_it_replaces_a_malformed_client_request_id(ctx: Ctx) -> None:
    response = ctx.client.get("/v1/conversations/conv_nope",
                              headers={**ctx.headers, "X-Request-ID": "bad id\twith <tags>"})

    assert_error_shape(response, 404)
    assert response.get_json()["request_id"] != "bad id\twith <tags>"
    assert response.get_json()["request_id"].startswith("req_")


def test_it_names_the_allowed_methods_in_a_405(ctx: Ctx) -> None:
    # RFC 9110 section 15.5.6: a 405 response MUST carry an Allow header.
    response = ctx.client.delete(f"/v1/conversations/{ctx.conversation_id}", headers=ctx.headers)

    assert_error_shape(response, 405, code="method_not_allowed")
    allowed = {method.strip() for method in response.headers.get("Allow", "").split(",")}
    assert "GET" in allowed


def test_it_never_leaks_internals_in_a_500(
    ctx: Ctx, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError(SECRET)

    monkeypatch.setattr(services.conversations, "start", crash)

    response = ctx.client.post("/v1/conversations", json={}, headers=ctx.headers)

    error = assert_error_shape(response, 500, code="internal_error", type_="server_error")
    assert "internal error" in error["message"]
    raw = response.get_data(as_text=True)
    assert "secret-internal-detail" not in raw
    assert "/etc/passwd" not in raw
    assert "RuntimeError" not in raw
    assert "Traceback" not in raw
    assert not any("secret-internal-detail" in value for value in response.headers.values())


def _stream(ctx: Ctx) -> TestResponse:
    return ctx.client.post(ctx.messages_url, json={"text": "Where is my parcel?"},
                           headers={**ctx.headers, "Accept": "text/event-stream"})


def test_it_reports_a_crash_mid_stream_as_an_error_event(
    ctx: Ctx, services: Services, monkeypatch: pytest.MonkeyPatch,
    sse: Callable[[str], list[tuple[str, dict[str, Any]]]],
) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError(SECRET)

    # The reply is generated and streamed; saving it fails.
    monkeypatch.setattr(services.conversations, "_persist", crash)

    response = _stream(ctx)
    raw = response.get_data(as_text=True)

    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    events = sse(raw)
    names = [name for name, _ in events]
    assert names[-1] == "error"
    assert "delta" in names, "the error came after text had been streamed"
    assert "message" not in names
    body = events[-1][1]
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == ERROR_FIELDS
    assert body["error"]["code"] == "internal_error"
    assert body["error"]["type"] == "server_error"
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert "secret-internal-detail" not in raw
    assert "/etc/passwd" not in raw
