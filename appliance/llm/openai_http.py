"""Chat models behind an OpenAI-compatible HTTP server.

On GPU boxes that is vLLM's OpenAI server; on a CPU box llama.cpp's `python -m llama_cpp.server`
speaks the same protocol (and is what the tests run against). `spec.url` is the base URL ending
in `/v1`, `spec.served_name` the model name the server expects.

Error mapping (see base.py for the contract):
- no connection, a dropped connection, HTTP 429 or 5xx, a malformed or truncated reply:
  `ModelUnavailable` (another backend may answer);
- connect or read past the call's deadline, or a stream with no text by its first-token
  deadline (`GenerationParams.first_token_timeout_s`): `ModelTimeout`;
- any other 4xx (e.g. a prompt over the context window), or an error event inside a stream
  that carries a 4xx code: `ModelError`, not retryable.
Client-facing messages name the model and at most an HTTP status; what the server said goes to
the log only.

JSON-schema constrained output (`GenerationParams.json_schema`) is asked for in the server's
dialect, the manifest option `response_format` of the model:
- `"json_schema"` (the default): `{"type": "json_schema", "json_schema": {"name", "schema"}}`,
  OpenAI's form, which vLLM serves with guided decoding;
- `"json_object"`: `{"type": "json_object", "schema": ...}`, llama.cpp's and llama-cpp-python's
  servers (which compile the schema to a grammar and refuse the other form).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from appliance.errors import ConfigError, ModelError, ModelTimeout, ModelUnavailable
from appliance.llm.base import (
    ChatMessage,
    ChatModel,
    Completion,
    GenerationParams,
    Health,
    ModelSpec,
    TextDelta,
)

logger = logging.getLogger(__name__)

#: English text averages about 4 characters per BPE token (Llama, Qwen, Mistral and GPT
#: tokenizers all land between 3.5 and 4.5). Rounded up, so estimates err towards "too long".
CHARS_PER_TOKEN = 4
#: Chat templates wrap each message in role markers (ChatML: `<|im_start|>role\n ... <|im_end|>\n`).
MESSAGE_OVERHEAD_TOKENS = 4
#: A health probe is a cheap GET; a server that takes longer than this is not healthy.
HEALTH_TIMEOUT_S = 5.0
#: How much of a server's error body reaches the log.
_LOGGED_BODY_CHARS = 500
#: The manifest option naming how the server takes a JSON schema, and its values.
RESPONSE_FORMAT_OPTION = "response_format"
RESPONSE_FORMATS = ("json_schema", "json_object")


class _Deadline:
    """The call's time budget; every network wait gets what is left of it. Until the first text
    arrives, the wait is bounded by the (earlier) first-token deadline when there is one."""

    def __init__(self, model_id: str, seconds: float, first_token_s: float | None = None) -> None:
        self.model_id = model_id
        self.seconds = seconds
        now = time.monotonic()
        self._at = now + seconds
        self._first_at = self._at if first_token_s is None else min(self._at, now + first_token_s)
        self.first_token_s = first_token_s
        #: Set once text has arrived: from then on only the whole call's deadline applies.
        self.got_text = False

    def remaining(self) -> float:
        return (self._at if self.got_text else self._first_at) - time.monotonic()

    def expired(self) -> ModelTimeout:
        if not self.got_text and self._first_at < self._at and self.first_token_s is not None:
            return ModelTimeout(f"model {self.model_id} sent no text within "
                                f"{self.first_token_s:g}s")
        return ModelTimeout(f"model {self.model_id} took longer than {self.seconds:g}s")

    def check(self) -> None:
        if self.remaining() <= 0:
            raise self.expired()

    def timeout(self) -> httpx.Timeout:
        """An httpx timeout (connect, read, write, pool) bounded by the time left. Set when the
        request starts, it also bounds each later read of a stream (a server silent that long
        mid-reply is stuck); `check()` on every line bounds the whole."""
        self.check()
        return httpx.Timeout(self.remaining())


class OpenAIHttpModel(ChatModel):
    """A model served over the OpenAI chat completions API.

    `timeout_s` caps every call (the per-call `GenerationParams.timeout_s` may only shorten
    it). One `httpx.Client` per instance holds the connection pool; it is thread-safe, and
    `close()` closes it.
    """

    def __init__(self, spec: ModelSpec, *, timeout_s: float) -> None:
        super().__init__(spec)
        if not spec.url or not spec.served_name:
            raise ConfigError(f"model {spec.id!r}: backend openai_http needs url and served_name")
        self._served_name = spec.served_name
        self._response_format = spec.options.get(RESPONSE_FORMAT_OPTION, RESPONSE_FORMATS[0])
        if self._response_format not in RESPONSE_FORMATS:
            raise ConfigError(f"model {spec.id!r}: {RESPONSE_FORMAT_OPTION} must be one of "
                              f"{', '.join(RESPONSE_FORMATS)}")
        self._timeout_s = timeout_s
        self._closed = False
        try:
            self._client = httpx.Client(
                base_url=spec.url,
                timeout=timeout_s,
                # No keep-alive: a pooled connection the server has since closed (uvicorn drops
                # idle ones after 5 s, and llama.cpp's server resets one after a failed stream)
                # would fail the next call and trigger a needless fallback. Calls are local and
                # long, so a fresh TCP connection each costs nothing that shows.
                limits=httpx.Limits(max_keepalive_connections=0),
                # The servers are local; an HTTP_PROXY meant for the outside world must not
                # capture them.
                trust_env=False,
            )
        except httpx.InvalidURL as exc:
            raise ConfigError(f"model {spec.id!r}: url is not a valid URL") from exc

    def _deadline(self, params: GenerationParams, *, stream: bool = False) -> _Deadline:
        if self._closed:
            raise ModelUnavailable(f"model {self.spec.id} is closed")
        return _Deadline(self.spec.id, min(params.timeout_s, self._timeout_s),
                         params.first_token_timeout_s if stream else None)

    def _body(
        self, messages: Sequence[ChatMessage], params: GenerationParams, *, stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._served_name,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": stream,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.json_schema is not None:
            body["response_format"] = self._schema_format(params.json_schema)
        if stream:
            # vLLM then ends the stream with a chunk holding the exact token counts;
            # llama.cpp's server ignores it and we estimate.
            body["stream_options"] = {"include_usage": True}
        return body

    def _schema_format(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """The `response_format` that constrains the reply to `schema`, in the server's dialect
        (see the module docstring)."""
        if self._response_format == "json_object":
            return {"type": "json_object", "schema": dict(schema)}
        return {"type": "json_schema",
                "json_schema": {"name": "reply", "schema": dict(schema)}}

    def complete(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Completion:
        """One non-streaming request: servers report exact usage and reject bad prompts with a
        4xx here, where a stream would already have sent 200."""
        deadline = self._deadline(params)
        with self._translate(deadline):
            response = self._client.post(
                "/chat/completions",
                json=self._body(messages, params, stream=False),
                timeout=deadline.timeout(),
            )
            self._raise_for_status(response)
            payload = _parse_json(self.spec.id, response.content)
        choice = _first_choice(self.spec.id, payload)
        message = choice.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise ModelUnavailable(f"model {self.spec.id} sent a reply without text")
        prompt, completion = _usage(payload) or (
            self._estimate_prompt(messages), self.count_tokens(content)
        )
        return Completion(
            text=content,
            model_id=self.spec.id,
            prompt_tokens=prompt,
            completion_tokens=completion,
            finish_reason=str(choice.get("finish_reason") or "stop"),
        )

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Iterator[TextDelta | Completion]:
        deadline = self._deadline(params, stream=True)
        with (
            self._translate(deadline),
            self._client.stream(
                "POST",
                "/chat/completions",
                json=self._body(messages, params, stream=True),
                headers={"Accept": "text/event-stream"},
                timeout=deadline.timeout(),
            ) as response,
        ):
            self._raise_for_status(response)
            yield from self._events(response, messages, deadline, params.stop_when)

    def _events(
        self, response: httpx.Response, messages: Sequence[ChatMessage], deadline: _Deadline,
        stop_when: Callable[[], bool] | None = None,
    ) -> Iterator[TextDelta | Completion]:
        """Parse SSE `data:` lines up to `[DONE]`; other SSE lines (comments, pings) are skipped.
        When `stop_when` says so after a piece of text, the reply ends there: leaving the
        stream closes the connection, which makes the server abort the request."""
        parts: list[str] = []
        finish = "stop"
        usage: tuple[int, int] | None = None
        for line in response.iter_lines():
            data = line[len("data:"):].strip() if line.startswith("data:") else None
            if data == "[DONE]":
                # One SSE delta carries one sampled token on both vLLM and llama.cpp.
                prompt, completion = usage or (self._estimate_prompt(messages), len(parts))
                yield Completion("".join(parts), self.spec.id, prompt, completion, finish)
                return
            # On every line, pings and comments too: a server that only pings is hung.
            deadline.check()
            if data is None:
                continue
            chunk = _parse_json(self.spec.id, data.encode())
            if "error" in chunk:
                raise self._stream_error(chunk["error"])
            usage = _usage(chunk) or usage
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta")
                content = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(content, str) and content:
                    parts.append(content)
                    deadline.got_text = True
                    yield TextDelta(content)
                    if stop_when is not None and stop_when():
                        yield Completion("".join(parts), self.spec.id,
                                         self._estimate_prompt(messages), len(parts), "stopped")
                        return
                if choice.get("finish_reason"):
                    finish = str(choice["finish_reason"])
        # llama.cpp's server does this when generation fails after the 200 went out (e.g. a
        # prompt over the context window): the body just ends.
        raise ModelUnavailable(f"model {self.spec.id} ended its reply early")

    @contextmanager
    def _translate(self, deadline: _Deadline) -> Iterator[None]:
        """Map httpx's exceptions to ours."""
        try:
            yield
        except httpx.TimeoutException as exc:
            raise deadline.expired() from exc
        except httpx.TransportError as exc:
            raise ModelUnavailable(f"model {self.spec.id} is unreachable") from exc
        except httpx.HTTPStatusError as exc:
            raise _status_error(self.spec.id, exc.response.status_code) from exc

    def _raise_for_status(self, response: httpx.Response) -> None:
        if response.is_success:
            return
        response.read()
        logger.warning(
            "model %s: HTTP %d from %s: %s", self.spec.id, response.status_code,
            response.url, response.text[:_LOGGED_BODY_CHARS],
        )
        response.raise_for_status()

    def _stream_error(self, error: object) -> ModelError:
        """vLLM reports a failure after the 200 as `data: {"error": {..., "code": status}}`."""
        logger.warning("model %s: error event in stream: %.500s", self.spec.id, error)
        code = error.get("code") if isinstance(error, dict) else None
        status = code if isinstance(code, int) and not isinstance(code, bool) else 500
        return _status_error(self.spec.id, status)

    def _estimate_prompt(self, messages: Sequence[ChatMessage]) -> int:
        return sum(self.count_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in messages)

    def count_tokens(self, text: str) -> int:
        """An estimate: one token per `CHARS_PER_TOKEN` characters, rounded up. No network."""
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def check_health(self) -> Health:
        """GET {url}/models and check that `served_name` is listed."""
        if self._closed:
            return Health(False, "closed")
        started = time.monotonic()
        timeout = min(self._timeout_s, HEALTH_TIMEOUT_S)

        def elapsed_ms() -> float:
            return (time.monotonic() - started) * 1000

        try:
            response = self._client.get("/models", timeout=timeout)
        except httpx.TimeoutException:
            return Health(False, f"no answer within {timeout:g}s", elapsed_ms())
        except httpx.HTTPError:
            return Health(False, "unreachable", elapsed_ms())
        latency = elapsed_ms()
        if not response.is_success:
            return Health(False, f"HTTP {response.status_code} from /models", latency)
        try:
            listed = {entry.get("id") for entry in response.json()["data"]}
        except (ValueError, KeyError, TypeError, AttributeError):
            return Health(False, "malformed /models reply", latency)
        if self._served_name not in listed:
            return Health(False, f"server does not list {self._served_name!r}", latency)
        return Health(True, f"serving {self._served_name!r}", latency)

    def close(self) -> None:
        self._closed = True
        self._client.close()


def _status_error(model_id: str, status: int) -> ModelError:
    if status == 429 or status >= 500 or status < 400:
        return ModelUnavailable(f"model {model_id} is unavailable (HTTP {status})")
    return ModelError(f"model {model_id} rejected the request (HTTP {status})")


def _parse_json(model_id: str, raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ModelUnavailable(f"model {model_id} sent a malformed reply") from exc
    if not isinstance(value, dict):
        raise ModelUnavailable(f"model {model_id} sent a malformed reply")
    return value


def _first_choice(model_id: str, payload: dict[str, Any]) -> dict[str, Any]:
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    raise ModelUnavailable(f"model {model_id} sent a reply without choices")


def _usage(payload: dict[str, Any]) -> tuple[int, int] | None:
    """(prompt_tokens, completion_tokens) when the server reported them."""
    usage = payload.get("usage")
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return prompt, completion
    return None
