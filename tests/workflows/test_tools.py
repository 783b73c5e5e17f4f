"""HTTP tools against a real local server that answers as told: retries only for idempotent
calls, an idempotency key on writes, auth from a file, schemas checked both ways."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from appliance.workflows.schema import Toolset, parse_toolset
from appliance.workflows.tools import FAILED, OK, REJECTED, ToolCallRecord, ToolRunner

TOOLS = """
base_url: http://127.0.0.1:1
tools:
  - name: get_order
    path: /orders/{order_id}
    arguments: {type: object, required: [order_id], properties: {order_id: {type: string}}}
    result: {type: object, required: [status], properties: {status: {type: string}}}
    retries: 2
    timeout_s: 0.5
  - name: cancel
    method: POST
    path: /orders/{order_id}/cancel
    arguments: {type: object, required: [order_id, reason]}
    result: {type: object, required: [status]}
    writes: true
    retries: 0
    timeout_s: 0.5
    redact: [reason]
"""


class Script:
    """What the server answers next, per path, and what it received."""

    def __init__(self) -> None:
        self.answers: dict[str, list[tuple[int, Any, float]]] = {}
        self.received: list[dict[str, Any]] = []

    def then(self, path: str, status: int, body: Any, delay: float = 0.0) -> None:
        self.answers.setdefault(path, []).append((status, body, delay))


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            script.received.append({"method": self.command, "path": self.path,
                                    "headers": dict(self.headers), "body": body})
            path = self.path.split("?")[0]
            queue = script.answers.get(path) or [(404, {"error": {"code": "nf"}}, 0.0)]
            status, payload, delay = queue.pop(0) if len(queue) > 1 else queue[0]
            time.sleep(delay)
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()


def runner(url: str, records: list[ToolCallRecord], toolset: Toolset | None = None
           ) -> ToolRunner:
    return ToolRunner(toolset or parse_toolset(TOOLS), base_url=url, record=records.append)


def spec(name: str) -> Any:
    return parse_toolset(TOOLS).get(name)


def test_it_calls_a_tool_with_the_path_filled_in_and_logs_the_call(server: Any) -> None:
    url, script = server
    script.then("/orders/%23W1", 200, {"status": "pending"})
    records: list[ToolCallRecord] = []
    result = runner(url, records).call(spec("get_order"), {"order_id": "#W1"})
    assert (result.status, result.data, result.http_status) == (OK, {"status": "pending"}, 200)
    assert script.received[0]["path"] == "/orders/%23W1"
    assert [(r.tool, r.path, r.result.status) for r in records] == [
        ("get_order", "/orders/%23W1", OK)]


def test_it_retries_an_idempotent_read_after_a_server_error(server: Any) -> None:
    url, script = server
    script.then("/orders/W1", 500, {"error": "boom"})
    script.then("/orders/W1", 200, {"status": "pending"})
    result = runner(url, []).call(spec("get_order"), {"order_id": "W1"})
    assert result.ok and result.attempts == 2


def test_it_never_retries_a_write_and_sends_an_idempotency_key(server: Any) -> None:
    url, script = server
    script.then("/orders/W1/cancel", 500, {"error": "boom"})
    script.then("/orders/W1/cancel", 200, {"status": "cancelled"})
    result = runner(url, []).call(spec("cancel"), {"order_id": "W1", "reason": "x"},
                                  idempotency_key="conv:1:abc")
    assert result.status == FAILED and result.attempts == 1
    assert len(script.received) == 1
    assert script.received[0]["headers"]["Idempotency-Key"] == "conv:1:abc"
    assert json.loads(script.received[0]["body"]) == {"reason": "x"}


def test_it_reports_a_refusal_with_the_systems_message(server: Any) -> None:
    url, script = server
    script.then("/orders/W1/cancel", 409, {"error": {"code": "order_not_pending",
                                                      "message": "order is delivered"}})
    result = runner(url, []).call(spec("cancel"), {"order_id": "W1", "reason": "x"})
    assert (result.status, result.code, result.message) == (
        REJECTED, "order_not_pending", "order is delivered")


@pytest.mark.parametrize(("status", "body", "delay", "code"), [
    (200, "<html>not json</html>", 0.0, "invalid_response"),
    (200, {"unexpected": True}, 0.0, "invalid_response"),
    (503, {"error": "down"}, 0.0, "http_503"),
    (200, {"status": "late"}, 1.5, "timeout"),
])
def test_it_fails_clearly_on_a_broken_answer(server: Any, status: int, body: Any,
                                             delay: float, code: str) -> None:
    url, script = server
    script.then("/orders/W1", status, body, delay)
    result = runner(url, []).call(spec("get_order"), {"order_id": "W1"})
    assert (result.status, result.code) == (FAILED, code)
    assert result.message and "Traceback" not in result.message


def test_it_fails_on_an_unreachable_system() -> None:
    result = runner("http://127.0.0.1:9", []).call(spec("get_order"), {"order_id": "W1"})
    assert (result.status, result.code) == (FAILED, "unreachable")


def test_it_refuses_arguments_that_break_the_schema_without_calling(server: Any) -> None:
    url, script = server
    result = runner(url, []).call(spec("get_order"), {"order_id": 7})
    assert (result.status, result.code) == (FAILED, "invalid_arguments")
    assert script.received == []


def test_it_redacts_arguments_in_the_log(server: Any) -> None:
    url, script = server
    script.then("/orders/W1/cancel", 200, {"status": "cancelled"})
    records: list[ToolCallRecord] = []
    runner(url, records).call(spec("cancel"), {"order_id": "W1", "reason": "secret"})
    assert records[0].arguments == {"order_id": "W1", "reason": "***"}


def test_it_sends_the_token_from_the_secret_file(server: Any, tmp_path: Path) -> None:
    url, script = server
    script.then("/orders/W1", 200, {"status": "pending"})
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    toolset = parse_toolset(TOOLS).model_copy(update={"auth_token_file": str(token)})
    runner(url, [], toolset).call(spec("get_order"), {"order_id": "W1"})
    assert script.received[0]["headers"]["Authorization"] == "Bearer s3cret"
