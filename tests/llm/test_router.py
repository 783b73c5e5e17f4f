"""ModelRouter's ordered fallback, with real backends where the behaviour lives there."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

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
from appliance.llm.llamacpp import LlamaCppModel
from appliance.llm.openai_http import OpenAIHttpModel
from appliance.llm.router import Attempt, ModelRouter, RoutedCompletion

PARAMS = GenerationParams(max_tokens=12, temperature=0.0, timeout_s=30.0)
TINY = "smollm2-135m-instruct"


class ScriptedModel(ChatModel):
    """Plays back a script of events; an exception in the script is raised when reached."""

    def __init__(self, model_id: str, script: Sequence[TextDelta | Completion | ModelError]):
        super().__init__(ModelSpec(id=model_id, role="small", profile="cpu", backend="scripted",
                                   context_tokens=2048, license="test", source="test"))
        self.script = script
        self.calls = 0

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Iterator[TextDelta | Completion]:
        self.calls += 1
        for event in self.script:
            if isinstance(event, ModelError):
                raise event
            yield event

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def check_health(self) -> Health:
        return Health(True, "scripted")


def answering(model_id: str) -> ScriptedModel:
    return ScriptedModel(model_id, [TextDelta("Hi"), Completion("Hi", model_id, 3, 1, "stop")])


def router_for(*models: ChatModel) -> ModelRouter:
    return ModelRouter({m.spec.id: m for m in models}, {"reply": [m.spec.id for m in models]})


@pytest.fixture
def dead_http(dead_url: str, http_spec: Callable[..., ModelSpec]) -> Iterator[OpenAIHttpModel]:
    model = OpenAIHttpModel(http_spec("dead-http", dead_url), timeout_s=5.0)
    yield model
    model.close()


def test_it_answers_from_the_first_model_when_it_is_up(
    tiny_model: LlamaCppModel, hello: Sequence[ChatMessage]
) -> None:
    routed = router_for(tiny_model).complete("reply", lambda model: hello, PARAMS)

    assert routed.completion.model_id == TINY
    assert not routed.fallback
    assert routed.failed == ()


def test_it_falls_back_past_a_dead_server_to_the_local_model(
    dead_http: OpenAIHttpModel, tiny_model: LlamaCppModel, hello: Sequence[ChatMessage]
) -> None:
    routed = router_for(dead_http, tiny_model).complete("reply", lambda model: hello, PARAMS)

    assert routed.completion.model_id == TINY
    assert routed.completion.text.strip()
    assert routed.fallback
    assert routed.failed == (Attempt("dead-http", "model_unavailable"),)


def test_it_streams_from_the_fallback_model(
    dead_http: OpenAIHttpModel, tiny_model: LlamaCppModel, hello: Sequence[ChatMessage]
) -> None:
    *deltas, final = router_for(dead_http, tiny_model).stream(
        "reply", lambda model: hello, PARAMS
    )

    assert isinstance(final, RoutedCompletion)
    assert final.fallback
    assert final.completion.text == "".join(d.text for d in deltas if isinstance(d, TextDelta))


def test_it_falls_back_after_a_timeout(hello: Sequence[ChatMessage]) -> None:
    slow = ScriptedModel("slow", [ModelTimeout("slow took too long")])

    routed = router_for(slow, answering("backup")).complete("reply", lambda m: hello, PARAMS)

    assert routed.completion.model_id == "backup"
    assert routed.failed == (Attempt("slow", "model_timeout"),)


def test_it_raises_unavailable_when_every_model_is_down(
    dead_url: str, http_spec: Callable[..., ModelSpec], hello: Sequence[ChatMessage]
) -> None:
    first = OpenAIHttpModel(http_spec("dead-a", dead_url), timeout_s=5.0)
    second = OpenAIHttpModel(http_spec("dead-b", dead_url), timeout_s=5.0)

    with pytest.raises(ModelUnavailable) as caught:
        router_for(first, second).complete("reply", lambda model: hello, PARAMS)

    assert "dead-a" in caught.value.message and "dead-b" in caught.value.message


def test_it_stops_at_a_non_retryable_error(hello: Sequence[ChatMessage]) -> None:
    rejecting = ScriptedModel("rejecting", [ModelError("prompt rejected")])
    backup = answering("backup")

    with pytest.raises(ModelError) as caught:
        router_for(rejecting, backup).complete("reply", lambda model: hello, PARAMS)

    assert type(caught.value) is ModelError
    assert backup.calls == 0


def test_it_does_not_retry_a_stream_that_failed_after_its_first_token(
    hello: Sequence[ChatMessage],
) -> None:
    flaky = ScriptedModel("flaky", [TextDelta("Hel"), ModelUnavailable("flaky went away")])
    backup = answering("backup")
    received: list[object] = []

    with pytest.raises(ModelUnavailable):
        for event in router_for(flaky, backup).stream("reply", lambda model: hello, PARAMS):
            received.append(event)

    assert received == [TextDelta("Hel")]
    assert backup.calls == 0


def test_it_refuses_a_route_to_an_unknown_model() -> None:
    with pytest.raises(ConfigError, match="nowhere"):
        ModelRouter({"a": answering("a")}, {"reply": ["a", "nowhere"]})
