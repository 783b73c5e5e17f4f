"""OpenAIHttpModel against a real llama.cpp OpenAI server, and a canned HTTP server for the
replies llama.cpp never gives (vLLM's usage chunk, 429, 5xx, error events)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import httpx
import jsonschema
import pytest

from appliance.errors import ConfigError, ModelError, ModelTimeout, ModelUnavailable
from appliance.llm.base import ChatMessage, Completion, GenerationParams, ModelSpec, TextDelta
from appliance.llm.openai_http import OpenAIHttpModel

PARAMS = GenerationParams(max_tokens=16, temperature=0.0, timeout_s=30.0)
TOO_LONG = (ChatMessage("user", "word " * 3000),)  # ~3000 tokens, over the 2048 context

Call = Callable[[OpenAIHttpModel, Sequence[ChatMessage], GenerationParams], object]


def _complete(model: OpenAIHttpModel, messages: Sequence[ChatMessage],
              params: GenerationParams) -> object:
    return model.complete(messages, params)


def _stream(model: OpenAIHttpModel, messages: Sequence[ChatMessage],
            params: GenerationParams) -> object:
    return list(model.stream(messages, params))


BOTH_CALLS = pytest.mark.parametrize("call", [_complete, _stream], ids=["complete", "stream"])


@pytest.fixture(scope="module")
def served(llama_server: str, http_spec: Callable[..., ModelSpec]) -> Iterator[OpenAIHttpModel]:
    model = OpenAIHttpModel(http_spec("served-smol", llama_server), timeout_s=30.0)
    yield model
    model.close()


@pytest.fixture
def canned_model(canned_server: Any, http_spec: Callable[..., ModelSpec]
                 ) -> Iterator[OpenAIHttpModel]:
    model = OpenAIHttpModel(http_spec("canned", canned_server.url), timeout_s=5.0)
    yield model
    model.close()


def _sse(*events: object) -> str:
    lines = [f"data: {json.dumps(e) if not isinstance(e, str) else e}\n\n" for e in events]
    return "".join(lines)


def _delta(text: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta = {} if text is None else {"content": text}
    return {"object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


# --- against llama.cpp's server -------------------------------------------------------------


def test_it_completes_with_text_and_the_servers_token_counts(
    served: OpenAIHttpModel, hello: Sequence[ChatMessage]
) -> None:
    completion = served.complete(hello, PARAMS)

    assert completion.text.strip()
    assert completion.model_id == "served-smol"
    assert completion.prompt_tokens > 10  # system + user + ChatML markers
    assert 0 < completion.completion_tokens <= PARAMS.max_tokens
    assert completion.finish_reason in ("stop", "length")


def test_it_streams_deltas_that_join_to_the_final_text(
    served: OpenAIHttpModel, hello: Sequence[ChatMessage]
) -> None:
    events = list(served.stream(hello, PARAMS))

    *deltas, final = events
    assert deltas and all(isinstance(event, TextDelta) for event in deltas)
    assert isinstance(final, Completion)
    assert final.text == "".join(d.text for d in deltas if isinstance(d, TextDelta))
    assert final.text.strip()
    # llama.cpp's server ignores stream_options.include_usage: the counts are estimates.
    assert final.completion_tokens == len(deltas)
    assert final.prompt_tokens > 0


def test_it_reports_health_with_latency(served: OpenAIHttpModel) -> None:
    health = served.check_health()

    assert health.ok, health.detail
    assert health.latency_ms > 0


def test_it_reports_unhealthy_when_the_server_does_not_list_the_model(
    llama_server: str, http_spec: Callable[..., ModelSpec]
) -> None:
    model = OpenAIHttpModel(http_spec("other", llama_server, served_name="other"), timeout_s=5.0)

    health = model.check_health()

    assert not health.ok
    assert "other" in health.detail
    model.close()


def test_it_rejects_an_over_context_prompt_as_a_non_retryable_error(
    served: OpenAIHttpModel,
) -> None:
    with pytest.raises(ModelError) as caught:
        served.complete(TOO_LONG, PARAMS)

    error = caught.value
    assert type(error) is ModelError
    assert not error.retryable
    assert isinstance(error.__cause__, httpx.HTTPStatusError)
    assert error.__cause__.response.status_code == 400
    assert "context" not in error.message  # the server's own words stay in the log


def test_it_reports_a_stream_the_server_cuts_short_as_unavailable(
    served: OpenAIHttpModel, hello: Sequence[ChatMessage]
) -> None:
    # Streaming, llama.cpp's server sends 200 before it finds the prompt too long, then ends
    # the body without [DONE] and resets the connection.
    with pytest.raises(ModelUnavailable):
        list(served.stream(TOO_LONG, PARAMS))

    assert served.complete(hello, PARAMS).text  # no stale connection left behind


@BOTH_CALLS
def test_it_times_out_with_a_tiny_deadline(
    served: OpenAIHttpModel, hello: Sequence[ChatMessage], call: Call
) -> None:
    with pytest.raises(ModelTimeout) as caught:
        call(served, hello, GenerationParams(max_tokens=24, timeout_s=0.01))

    assert caught.value.retryable


def test_it_caps_every_call_at_the_models_timeout(
    llama_server: str, http_spec: Callable[..., ModelSpec], hello: Sequence[ChatMessage]
) -> None:
    model = OpenAIHttpModel(http_spec("impatient", llama_server), timeout_s=0.01)

    with pytest.raises(ModelTimeout):
        list(model.stream(hello, GenerationParams(max_tokens=24, timeout_s=30.0)))
    model.close()


# --- nothing listening ----------------------------------------------------------------------


@BOTH_CALLS
def test_it_raises_unavailable_on_a_closed_port(
    dead_url: str, http_spec: Callable[..., ModelSpec], hello: Sequence[ChatMessage], call: Call
) -> None:
    model = OpenAIHttpModel(http_spec("dead", dead_url), timeout_s=5.0)

    with pytest.raises(ModelUnavailable) as caught:
        call(model, hello, PARAMS)

    assert caught.value.retryable
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_it_reports_unhealthy_on_a_closed_port(
    dead_url: str, http_spec: Callable[..., ModelSpec]
) -> None:
    health = OpenAIHttpModel(http_spec("dead", dead_url), timeout_s=5.0).check_health()

    assert not health.ok
    assert health.detail == "unreachable"


def test_it_estimates_tokens_without_a_server(
    dead_url: str, http_spec: Callable[..., ModelSpec]
) -> None:
    model = OpenAIHttpModel(http_spec("dead", dead_url), timeout_s=5.0)

    assert model.count_tokens("") == 0
    assert model.count_tokens("abcd" * 10) == 10
    assert model.count_tokens("abcde") == 2  # rounded up


def test_it_refuses_after_close(
    dead_url: str, http_spec: Callable[..., ModelSpec], hello: Sequence[ChatMessage]
) -> None:
    model = OpenAIHttpModel(http_spec("closed", dead_url), timeout_s=5.0)
    model.close()

    with pytest.raises(ModelUnavailable):
        model.complete(hello, PARAMS)
    assert not model.check_health().ok


def test_it_needs_a_url_and_a_served_name(http_spec: Callable[..., ModelSpec]) -> None:
    with pytest.raises(ConfigError, match="url and served_name"):
        OpenAIHttpModel(http_spec("nameless", "http://127.0.0.1:1/v1", served_name=None),
                        timeout_s=5.0)


# --- replies llama.cpp never gives ----------------------------------------------------------


def test_it_reads_token_counts_from_a_vllm_usage_chunk(
    canned_server: Any, canned_model: OpenAIHttpModel, hello: Sequence[ChatMessage]
) -> None:
    # vLLM with stream_options.include_usage: a last chunk with no choices and the usage.
    usage = {"choices": [], "usage": {"prompt_tokens": 17, "completion_tokens": 2,
                                      "total_tokens": 19}}
    canned_server.answer(200, _sse(_delta(""), _delta("Hel"), _delta("lo"),
                                   _delta(finish="stop"), usage, "[DONE]"),
                         content_type="text/event-stream")

    events = list(canned_model.stream(hello, PARAMS))

    assert events == [TextDelta("Hel"), TextDelta("lo"), Completion("Hello", "canned", 17, 2,
                                                                     "stop")]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_it_maps_overload_and_server_errors_to_unavailable(
    canned_server: Any, canned_model: OpenAIHttpModel, hello: Sequence[ChatMessage], status: int
) -> None:
    canned_server.answer(status, '{"error": {"message": "secret internals"}}')

    with pytest.raises(ModelUnavailable) as caught:
        canned_model.complete(hello, PARAMS)

    assert caught.value.retryable
    assert "secret" not in caught.value.message
    assert str(status) in caught.value.message


def test_it_maps_a_client_error_to_a_non_retryable_error(
    canned_server: Any, canned_model: OpenAIHttpModel, hello: Sequence[ChatMessage]
) -> None:
    # vLLM answers 404 for a model name it does not serve.
    canned_server.answer(404, '{"error": {"message": "The model `x` does not exist."}}')

    with pytest.raises(ModelError) as caught:
        list(canned_model.stream(hello, PARAMS))

    assert type(caught.value) is ModelError
    assert not caught.value.retryable


@pytest.mark.parametrize(("code", "expected"), [(400, ModelError), (500, ModelUnavailable)])
def test_it_maps_an_error_event_inside_a_stream_by_its_code(
    canned_server: Any, canned_model: OpenAIHttpModel, hello: Sequence[ChatMessage],
    code: int, expected: type[ModelError],
) -> None:
    # vLLM reports a failure after the 200 as an error event, then [DONE].
    error = {"error": {"message": "boom", "type": "BadRequestError", "param": None,
                       "code": code}}
    canned_server.answer(200, _sse(_delta("Hel"), error, "[DONE]"),
                         content_type="text/event-stream")
    received: list[object] = []

    with pytest.raises(ModelError) as caught:
        for event in canned_model.stream(hello, PARAMS):
            received.append(event)

    assert type(caught.value) is expected
    assert received == [TextDelta("Hel")]


def test_it_maps_a_malformed_reply_to_unavailable(
    canned_server: Any, canned_model: OpenAIHttpModel, hello: Sequence[ChatMessage]
) -> None:
    canned_server.answer(200, "<html>not json</html>", content_type="text/html")

    with pytest.raises(ModelUnavailable):
        canned_model.complete(hello, PARAMS)


# --- JSON-schema constrained output ---------------------------------------------------------

COLOUR = {"type": "object", "properties": {"colour": {"enum": ["red", "green", None]}},
          "required": ["colour"], "additionalProperties": False}
CONSTRAINED = GenerationParams(max_tokens=24, temperature=0.0, timeout_s=30.0,
                               json_schema=COLOUR)


def _with_options(spec: ModelSpec, **options: str) -> ModelSpec:
    return replace(spec, options={**spec.options, **options})


@pytest.mark.parametrize(("options", "expected"), [
    ({}, {"type": "json_schema", "json_schema": {"name": "reply", "schema": COLOUR}}),
    ({"response_format": "json_schema"},
     {"type": "json_schema", "json_schema": {"name": "reply", "schema": COLOUR}}),
    ({"response_format": "json_object"}, {"type": "json_object", "schema": COLOUR}),
], ids=["vllm-by-default", "vllm", "llamacpp"])
@BOTH_CALLS
def test_it_asks_for_the_schema_in_the_servers_dialect(
    canned_server: Any, http_spec: Callable[..., ModelSpec], hello: Sequence[ChatMessage],
    options: dict[str, str], expected: dict[str, Any], call: Call,
) -> None:
    model = OpenAIHttpModel(_with_options(http_spec("canned", canned_server.url), **options),
                            timeout_s=5.0)
    if call is _stream:
        canned_server.answer(200, _sse(_delta('{"colour": "red"}', "stop"), "[DONE]"),
                             content_type="text/event-stream")
    else:
        canned_server.answer(200, json.dumps({"choices": [
            {"index": 0, "message": {"content": '{"colour": "red"}'}, "finish_reason": "stop"}]}))

    call(model, hello, CONSTRAINED)
    call(model, hello, PARAMS)
    model.close()

    constrained, plain = (json.loads(body) for body in canned_server.requests)
    assert constrained["response_format"] == expected
    assert "response_format" not in plain


def test_it_refuses_an_unknown_response_format(http_spec: Callable[..., ModelSpec]) -> None:
    spec = _with_options(http_spec("odd", "http://127.0.0.1:1/v1"), response_format="grammar")

    with pytest.raises(ConfigError, match="response_format"):
        OpenAIHttpModel(spec, timeout_s=5.0)


@BOTH_CALLS
def test_it_gets_json_matching_the_schema_from_llama_cpps_server(
    llama_server: str, http_spec: Callable[..., ModelSpec], hello: Sequence[ChatMessage],
    call: Call,
) -> None:
    # Unconstrained, the tiny model answers "Say hello." with prose.
    spec = _with_options(http_spec("served-json", llama_server), response_format="json_object")
    model = OpenAIHttpModel(spec, timeout_s=30.0)

    result = call(model, hello, CONSTRAINED)
    model.close()

    completion = result[-1] if isinstance(result, list) else result
    assert isinstance(completion, Completion)
    jsonschema.validate(json.loads(completion.text), COLOUR)
