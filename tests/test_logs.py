"""Log lines: JSON with the bound ids, and no customer's details from HTTP clients' loggers."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from metrics_support import sample_value
from retail_support import RetailBackend
from server_support import make_settings

from appliance import logs, metrics
from appliance.workflows.schema import parse_toolset
from appliance.workflows.tools import ToolRunner

REPO = Path(__file__).resolve().parent.parent
LUMEN_TOOLS = REPO / "appliance" / "demo" / "workflows" / "lumen-goods" / "tools.yaml"
EMAIL = "mei.castillo.3917@example.com"


@pytest.fixture
def json_lines(tmp_path: Path) -> Iterator[Any]:
    """Logging as a JSON-configured process has it, at DEBUG, its stdout handler writing to
    a buffer; yields a reader of the lines. The test runner's handlers come back afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logging.config.dictConfig(logs.logging_config(
        make_settings(tmp_path, log_format="json", log_level="DEBUG")))
    out = io.StringIO()
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(out)

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in out.getvalue().splitlines() if line]

    try:
        yield read
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        logs.bind_request("")


def test_it_writes_json_lines_with_the_ids_bound_to_the_request(json_lines: Any) -> None:
    logs.bind_request("req_abc123")
    logs.bind(brand="lumen-goods", conversation_id="conv_42")
    logging.getLogger("appliance.agent").warning("a turn had no reply")
    logs.bind_request("req_def456")
    logging.getLogger("appliance.web").info("next request")
    first, second = json_lines()
    assert {k: first[k] for k in ("level", "logger", "message", "request_id", "brand",
                                  "conversation_id")} == {
        "level": "WARNING", "logger": "appliance.agent", "message": "a turn had no reply",
        "request_id": "req_abc123", "brand": "lumen-goods", "conversation_id": "conv_42"}
    assert second["request_id"] == "req_def456"
    assert "brand" not in second and "conversation_id" not in second
    assert first["time"] and first["process"]


def test_text_lines_carry_the_bound_ids_after_the_message(tmp_path: Path) -> None:
    formatter = logs.make_formatter(make_settings(tmp_path, log_format="text").log_format)
    record = logging.LogRecord("appliance.agent", logging.INFO, __file__, 1, "replied", None,
                               None)
    logs.bind_request("req_abc123")
    logs.bind(brand="rho-bank")
    try:
        assert logs.ContextFilter().filter(record)
        assert formatter.format(record).endswith(
            f"INFO [{record.process}] appliance.agent: replied "
            "[request_id=req_abc123 brand=rho-bank]")
    finally:
        logs.bind_request("")


def test_a_tool_call_logs_its_path_template_and_never_the_customers_email(
        json_lines: Any, retail_backend: RetailBackend) -> None:
    runner = ToolRunner(parse_toolset(LUMEN_TOOLS.read_text()), base_url=retail_backend.url)
    spec = runner.toolset.get("find_user_by_email")
    before = metrics.exposition()[0].decode()
    result = runner.call(spec, {"email": EMAIL})
    # httpx's own logger, asked directly at DEBUG, writes nothing either.
    httpx.get(f"{retail_backend.url}/users/by-email", params={"email": EMAIL})
    lines = json_lines()
    assert [line["message"] for line in lines if line["logger"] == "appliance.workflows.tools"
            ] == [f"tool find_user_by_email GET /users/by-email -> {result.status} "
                  f"{result.http_status} ({result.latency_ms:.0f} ms)"]
    assert EMAIL not in json.dumps(lines)
    assert not [line for line in lines if line["logger"].startswith(("httpx", "httpcore"))]
    after = metrics.exposition()[0].decode()
    labels = {"tool": "find_user_by_email", "result": result.status}
    assert sample_value(after, "switchboard_tool_calls_total", labels) == sample_value(
        before, "switchboard_tool_calls_total", labels) + 1


def test_pii_in_a_message_or_a_traceback_leaves_as_placeholders(json_lines: Any,
                                                                 tmp_path: Path) -> None:
    card, ssn = "4111 1111 1111 1111", "078-05-1121"
    log = logging.getLogger("appliance.agent")
    log.warning("customer %s wrote %r", EMAIL, f"my card is {card}")
    try:
        raise ValueError(f"could not parse {ssn} from {EMAIL}")
    except ValueError:
        log.exception("turn failed")
    text = logs.make_formatter("text")
    record = logging.LogRecord("appliance.web", logging.ERROR, __file__, 1, "from %s", (EMAIL,),
                               None)
    assert logs.RedactFilter().filter(record)

    warned, failed = json_lines()
    assert warned["message"] == "customer [EMAIL_1] wrote 'my card is [CARD_1]'"
    assert failed["message"] == "turn failed"
    assert "ValueError: could not parse [SSN_1] from [EMAIL_1]" in failed["exc_info"]
    assert text.format(record).split(": ", 1)[1] == "from [EMAIL_1]"
    written = json.dumps([warned, failed])
    assert EMAIL not in written and card not in written and ssn not in written
