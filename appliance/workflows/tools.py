"""Calling a brand's HTTP tools: argument and result schemas, auth, timeouts, retries only for
idempotent calls, an idempotency key on every write, and a log line per call.

A call ends one of three ways (`ToolResult.status`):
- ok: a 2xx with a JSON body that matches the tool's result schema;
- rejected: the brand's system said no (a 4xx: not found, wrong status, bad argument); the
  workflow shows the reason and carries on;
- failed: the system could not answer properly (timeout, connection error, 5xx, a body that is
  not JSON or not the promised shape); the customer is told plainly and the policy escalates.
"""

from __future__ import annotations

import logging
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema

from appliance import metrics
from appliance.workflows.schema import Toolset, ToolSpec

log = logging.getLogger(__name__)
OK, REJECTED, FAILED = "ok", "rejected", "failed"
_RETRY_BACKOFF_S = 0.2
_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True)
class ToolResult:
    tool: str
    status: str
    data: Any = None
    http_status: int | None = None
    #: For rejected/failed calls: a stable code and a message safe to show to a customer.
    code: str = ""
    message: str = ""
    latency_ms: float = 0.0
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass(frozen=True)
class ToolCallRecord:
    """What is logged for every call (arguments already redacted)."""

    tool: str
    method: str
    path: str
    arguments: dict[str, Any]
    result: ToolResult
    idempotency_key: str | None = None


class ToolRunner:
    """Runs the tools of one toolset against its base URL (or an override)."""

    def __init__(
        self, toolset: Toolset, *, base_url: str | None = None,
        record: Callable[[ToolCallRecord], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._toolset = toolset
        self._base_url = (base_url or toolset.base_url).rstrip("/")
        self._record = record
        self._transport = transport

    @property
    def toolset(self) -> Toolset:
        return self._toolset

    def call(self, spec: ToolSpec, arguments: Mapping[str, Any], *,
             idempotency_key: str | None = None) -> ToolResult:
        started = time.perf_counter()
        arguments = dict(arguments)
        problem = _schema_problem(spec.arguments, arguments)
        path = spec.path
        if problem is not None:
            result = ToolResult(spec.name, FAILED, code="invalid_arguments",
                                message=f"invalid arguments: {problem}")
        else:
            path, body = _fill_path(spec.path, arguments)
            result = self._send(spec, path, body, idempotency_key)
        result = ToolResult(**{**result.__dict__,
                               "latency_ms": round((time.perf_counter() - started) * 1000, 2)})
        metrics.record_tool_call(spec.name, result.status, result.latency_ms / 1000)
        level = logging.INFO if result.status != FAILED else logging.WARNING
        # The path's template, not the filled path: filled, it holds the customer's details.
        log.log(level, "tool %s %s %s -> %s %s (%.0f ms)", spec.name, spec.method, spec.path,
                result.status, result.http_status, result.latency_ms)
        if self._record is not None:
            redacted = {key: ("***" if key in spec.redact else value)
                        for key, value in arguments.items()}
            self._record(ToolCallRecord(spec.name, spec.method, path, redacted, result,
                                        idempotency_key))
        return result

    def _send(self, spec: ToolSpec, path: str, body: dict[str, Any],
              idempotency_key: str | None) -> ToolResult:
        headers = {"Accept": "application/json"}
        token = self._token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if spec.writes and idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        # Writes are never retried: a timed-out write may have happened.
        attempts = 1 if spec.writes else 1 + spec.retries
        url = f"{self._base_url}{path}"
        request: dict[str, Any] = {"params": body} if spec.method == "GET" else {"json": body}
        result = ToolResult(spec.name, FAILED, code="unavailable")
        with httpx.Client(timeout=spec.timeout_s, transport=self._transport) as client:
            for attempt in range(1, attempts + 1):
                try:
                    response = client.request(spec.method, url, headers=headers, **request)
                except httpx.TimeoutException:
                    result = ToolResult(spec.name, FAILED, code="timeout",
                                        message="the system did not answer in time",
                                        attempts=attempt)
                except httpx.HTTPError:
                    result = ToolResult(spec.name, FAILED, code="unreachable",
                                        message="the system could not be reached",
                                        attempts=attempt)
                else:
                    result = _interpret(spec, response, attempt)
                    if result.status != FAILED or response.status_code < 500:
                        return result
                if attempt < attempts:
                    time.sleep(_RETRY_BACKOFF_S * attempt)
        return result

    def _token(self) -> str | None:
        if not self._toolset.auth_token_file:
            return None
        try:
            return Path(self._toolset.auth_token_file).read_text(encoding="utf-8").strip()
        except OSError:
            log.error("tool token file %s cannot be read", self._toolset.auth_token_file)
            return None


def _interpret(spec: ToolSpec, response: httpx.Response, attempt: int) -> ToolResult:
    status = response.status_code
    try:
        data = response.json()
    except ValueError:
        return ToolResult(spec.name, FAILED, http_status=status, code="invalid_response",
                          message="the system sent an answer that is not JSON",
                          attempts=attempt)
    if 400 <= status < 500:
        return ToolResult(spec.name, REJECTED, data=data, http_status=status,
                          code=_error_field(data, "code") or f"http_{status}",
                          message=_error_field(data, "message") or "the request was refused",
                          attempts=attempt)
    if status >= 500 or status < 200 or status >= 300:
        return ToolResult(spec.name, FAILED, http_status=status, code=f"http_{status}",
                          message="the system reported an error", attempts=attempt)
    problem = _schema_problem(spec.result, data)
    if problem is not None:
        return ToolResult(spec.name, FAILED, http_status=status, code="invalid_response",
                          message=f"the system's answer has the wrong shape: {problem}",
                          attempts=attempt)
    return ToolResult(spec.name, OK, data=data, http_status=status, attempts=attempt)


def _error_field(data: Any, name: str) -> str:
    if isinstance(data, Mapping):
        error = data.get("error")
        if isinstance(error, Mapping) and isinstance(error.get(name), str):
            return str(error[name])
        if isinstance(error, str) and name == "message":
            return error
    return ""


def _schema_problem(schema: Mapping[str, Any], value: Any) -> str | None:
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{where + ': ' if where else ''}{error.message}"


def _fill_path(template: str, arguments: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The path with `{name}` placeholders filled (URL-encoded) and the arguments left over,
    which go in the query string (GET) or the JSON body."""
    used: set[str] = set()

    def fill(name: str) -> str:
        used.add(name)
        return urllib.parse.quote(str(arguments.get(name, "")), safe="")

    path = _PLACEHOLDER.sub(lambda m: fill(m.group(1)), template)
    return path, {key: value for key, value in arguments.items() if key not in used}


