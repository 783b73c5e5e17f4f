"""Faults of a real served model under the router: a llama.cpp server killed between calls, a
server that accepts and never answers, one that only pings. The fallback is the real tiny model
in process. Times are asserted only as budget bounds, never as performance."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest

from appliance.errors import ModelTimeout
from appliance.llm.base import ChatMessage, GenerationParams, ModelSpec
from appliance.llm.breaker import BreakerPolicy
from appliance.llm.llamacpp import LlamaCppModel
from appliance.llm.openai_http import OpenAIHttpModel
from appliance.llm.router import Attempt, ModelRouter

TINY = "smollm2-135m-instruct"
PARAMS = GenerationParams(max_tokens=12, temperature=0.0, timeout_s=30.0)

HttpSpec = Callable[..., ModelSpec]


@pytest.fixture
def http_model(http_spec: HttpSpec) -> Iterator[Callable[..., OpenAIHttpModel]]:
    """http_model(model_id, url, **spec): an OpenAIHttpModel, closed after the test."""
    built: list[OpenAIHttpModel] = []

    def build(model_id: str, url: str, **spec: object) -> OpenAIHttpModel:
        model = OpenAIHttpModel(replace(http_spec(model_id, url), **spec), timeout_s=60.0)
        built.append(model)
        return model

    yield build
    for model in built:
        model.close()


def test_it_answers_from_the_local_model_once_the_server_is_killed(
    killable_llama_server: Any, http_model: Callable[..., OpenAIHttpModel],
    tiny_model: LlamaCppModel, hello: Sequence[ChatMessage],
) -> None:
    served = http_model("served", killable_llama_server.url)
    router = ModelRouter({"served": served, TINY: tiny_model}, {"reply": ["served", TINY]},
                         breaker=BreakerPolicy(failures=1, cooldown_s=60.0))

    before = router.complete("reply", lambda m: hello, PARAMS)
    killable_llama_server.kill()
    after = [router.complete("reply", lambda m: hello, PARAMS) for _ in range(2)]

    assert before.completion.model_id == "served" and not before.degraded
    for routed in after:
        assert routed.completion.model_id == TINY
        assert routed.completion.text.strip()
        assert routed.fallback and routed.degraded
    assert [routed.failed for routed in after] == [
        (Attempt("served", "model_unavailable"),),
        # That failure opened the circuit: the dead server is not even dialled.
        (Attempt("served", "circuit_open"),),
    ]
    status = router.status()["served"]
    assert (status.circuit, status.last_error) == ("open", "model_unavailable")


def test_it_passes_over_a_hanging_server_within_the_budget(
    hanging_server: Any, http_model: Callable[..., OpenAIHttpModel],
    tiny_model: LlamaCppModel, hello: Sequence[ChatMessage],
) -> None:
    # No timeout of its own: the hanging server gets its share of the budget (half, with one
    # model after it) to send a first token, and the tiny model has the rest.
    budget = 16.0
    hanging = http_model("hanging", hanging_server.url)
    router = ModelRouter({"hanging": hanging, TINY: tiny_model}, {"reply": ["hanging", TINY]})

    routed = router.complete("reply", lambda m: hello, replace(PARAMS, timeout_s=budget))

    assert routed.completion.model_id == TINY
    assert routed.completion.text.strip()
    assert routed.degraded
    assert routed.failed == (Attempt("hanging", "model_timeout"),)


def test_it_holds_a_hanging_server_to_its_own_timeout(
    hanging_server: Any, http_model: Callable[..., OpenAIHttpModel],
    tiny_model: LlamaCppModel, hello: Sequence[ChatMessage],
) -> None:
    budget, own = 30.0, 1.0
    hanging = http_model("hanging", hanging_server.url, timeout_s=own)
    router = ModelRouter({"hanging": hanging, TINY: tiny_model}, {"reply": ["hanging", TINY]})

    routed = router.complete("reply", lambda m: hello, replace(PARAMS, timeout_s=budget))

    assert routed.completion.model_id == TINY
    assert routed.failed == (Attempt("hanging", "model_timeout"),)


def test_it_times_out_a_server_that_only_pings(
    pinging_server: Any, http_model: Callable[..., OpenAIHttpModel],
    hello: Sequence[ChatMessage],
) -> None:
    pinging = http_model("pinging", pinging_server.url)
    params = replace(PARAMS, timeout_s=30.0, first_token_timeout_s=1.0)

    # The first-token deadline ended it (the whole call's 30 s would say so otherwise).
    with pytest.raises(ModelTimeout, match="sent no text within 1s"):
        list(pinging.stream(hello, params))
