"""ModelRouter's ordered fallback, with real backends where the behaviour lives there."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

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
    sampling_seed,
)
from appliance.llm.breaker import BreakerPolicy
from appliance.llm.llamacpp import LlamaCppModel
from appliance.llm.openai_http import OpenAIHttpModel
from appliance.llm.queue import ModelQueue
from appliance.llm.router import Attempt, ModelRouter, RoutedCompletion

PARAMS = GenerationParams(max_tokens=12, temperature=0.0, timeout_s=30.0)
TINY = "smollm2-135m-instruct"


class FakeClock:
    """Monotonic seconds that move only when a test (or a scripted model) says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ScriptedModel(ChatModel):
    """Plays back a script of events; an exception in the script is raised when reached.
    With `clock` and `takes_s`, each call first lets that much (fake) time pass."""

    def __init__(self, model_id: str, script: Sequence[TextDelta | Completion | ModelError],
                 *, clock: FakeClock | None = None, takes_s: float = 0.0,
                 **spec: Any) -> None:
        super().__init__(ModelSpec(id=model_id, role="small", profile="cpu", backend="scripted",
                                   context_tokens=2048, license="test", source="test", **spec))
        self.script = script
        self.calls = 0
        self.params: list[GenerationParams] = []
        self._clock = clock
        self._takes_s = takes_s

    def stream(
        self, messages: Sequence[ChatMessage], params: GenerationParams
    ) -> Iterator[TextDelta | Completion]:
        self.calls += 1
        self.params.append(params)
        if self._clock is not None:
            self._clock.advance(self._takes_s)
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


# --- models that are absent --------------------------------------------------------------


def test_it_passes_over_a_missing_model_without_loading_it(
    missing_spec: ModelSpec, tiny_model: LlamaCppModel, hello: Sequence[ChatMessage]
) -> None:
    absent = LlamaCppModel(missing_spec, threads=2)
    prompted: list[str] = []

    def messages_for(model: ChatModel) -> Sequence[ChatMessage]:
        prompted.append(model.spec.id)
        return hello

    router = router_for(absent, tiny_model)
    for _ in range(2):
        routed = router.complete("reply", messages_for, PARAMS)

        assert routed.completion.model_id == TINY
        assert routed.fallback and routed.degraded
        assert routed.failed == (Attempt("absent", "model_missing"),)
    assert prompted == [TINY] * 2  # never asked to count tokens, so never loaded
    status = router.status()["absent"]
    assert (status.present, status.available) == (False, False)
    assert status.circuit == "closed" and status.consecutive_failures == 0


def test_it_uses_a_missing_models_file_once_it_is_copied_in(
    tmp_path: Path, hello: Sequence[ChatMessage]
) -> None:
    weights = tmp_path / "large.gguf"
    large = ScriptedModel("large", answering("large").script, path=weights, optional=True)
    router = ModelRouter({"large": large, "small": answering("small")},
                         {"reply_large": ["large", "small"]})

    before = router.complete("reply_large", lambda m: hello, PARAMS)
    weights.write_bytes(b"weights")
    after = router.complete("reply_large", lambda m: hello, PARAMS)

    assert before.completion.model_id == "small"
    assert after.completion.model_id == "large"
    assert not after.degraded
    assert large.calls == 1


def test_it_reports_which_models_of_each_route_are_present(tmp_path: Path) -> None:
    large = ScriptedModel("large", [], path=tmp_path / "large.gguf", optional=True)
    router = ModelRouter({"large": large, "small": answering("small")},
                         {"reply": ["small"], "reply_large": ["large", "small"]})

    assert router.tasks == ("reply", "reply_large")
    route = router.route_status("reply_large")
    assert (route.present, route.absent, route.ok) == (("small",), ("large",), True)
    status = router.status()
    assert status["large"].tasks == {"reply_large": 1}
    assert status["small"].tasks == {"reply": 1, "reply_large": 2}
    assert status["large"].optional and not status["large"].present


# --- the circuit breaker ------------------------------------------------------------------


def breaker_router(clock: FakeClock, *models: ChatModel) -> ModelRouter:
    return ModelRouter({m.spec.id: m for m in models}, {"reply": [m.spec.id for m in models]},
                       breaker=BreakerPolicy(failures=2, cooldown_s=30.0), clock=clock)


def test_it_opens_the_circuit_after_consecutive_failures(hello: Sequence[ChatMessage]) -> None:
    clock = FakeClock()
    down = ScriptedModel("down", [ModelUnavailable("down")])
    router = breaker_router(clock, down, answering("backup"))

    first = router.complete("reply", lambda m: hello, PARAMS)
    router.complete("reply", lambda m: hello, PARAMS)
    third = router.complete("reply", lambda m: hello, PARAMS)

    assert first.failed == (Attempt("down", "model_unavailable"),)
    assert third.failed == (Attempt("down", "circuit_open"),)
    assert third.completion.model_id == "backup" and third.degraded
    assert down.calls == 2
    status = router.status()["down"]
    assert (status.circuit, status.consecutive_failures, status.last_error) == (
        "open", 2, "model_unavailable")
    assert status.retry_in_s == 30.0
    assert not status.available


def test_it_counts_only_consecutive_failures(hello: Sequence[ChatMessage]) -> None:
    clock = FakeClock()
    flaky = ScriptedModel("flaky", [ModelTimeout("slow")])
    router = breaker_router(clock, flaky, answering("backup"))

    router.complete("reply", lambda m: hello, PARAMS)
    flaky.script = answering("flaky").script
    router.complete("reply", lambda m: hello, PARAMS)
    flaky.script = [ModelTimeout("slow")]
    router.complete("reply", lambda m: hello, PARAMS)

    assert router.status()["flaky"].circuit == "closed"
    assert router.status()["flaky"].consecutive_failures == 1


def test_it_lets_one_trial_through_after_the_cooldown_and_closes_on_success(
    hello: Sequence[ChatMessage],
) -> None:
    clock = FakeClock()
    down = ScriptedModel("down", [ModelUnavailable("down")])
    router = breaker_router(clock, down, answering("backup"))
    for _ in range(2):
        router.complete("reply", lambda m: hello, PARAMS)

    clock.advance(29.9)
    still_open = router.complete("reply", lambda m: hello, PARAMS)
    clock.advance(0.1)
    down.script = answering("down").script
    trial = router.complete("reply", lambda m: hello, PARAMS)

    assert still_open.failed == (Attempt("down", "circuit_open"),)
    assert trial.completion.model_id == "down" and not trial.degraded
    assert down.calls == 3
    status = router.status()["down"]
    assert (status.circuit, status.consecutive_failures) == ("closed", 0)
    assert status.last_error == "model_unavailable"  # kept for ops after recovery


def test_it_opens_again_when_the_trial_fails(hello: Sequence[ChatMessage]) -> None:
    clock = FakeClock()
    down = ScriptedModel("down", [ModelUnavailable("down")])
    router = breaker_router(clock, down, answering("backup"))
    for _ in range(2):
        router.complete("reply", lambda m: hello, PARAMS)

    clock.advance(30)
    trial = router.complete("reply", lambda m: hello, PARAMS)
    after = router.complete("reply", lambda m: hello, PARAMS)

    assert trial.failed == (Attempt("down", "model_unavailable"),)
    assert after.failed == (Attempt("down", "circuit_open"),)
    assert down.calls == 3
    assert router.status()["down"].circuit == "open"
    assert router.status()["down"].retry_in_s == 30.0


def test_it_lets_only_one_trial_through_while_half_open(hello: Sequence[ChatMessage]) -> None:
    clock = FakeClock()
    down = ScriptedModel("down", [ModelUnavailable("down")])
    router = breaker_router(clock, down, answering("backup"))
    for _ in range(2):
        router.complete("reply", lambda m: hello, PARAMS)
    clock.advance(30)
    down.script = answering("down").script

    trial = router.stream("reply", lambda m: hello, PARAMS)
    assert next(trial) == TextDelta("Hi")  # the trial is under way
    meanwhile = router.complete("reply", lambda m: hello, PARAMS)
    rest = list(trial)

    assert meanwhile.failed == (Attempt("down", "circuit_open"),)
    assert isinstance(rest[-1], RoutedCompletion) and rest[-1].completion.model_id == "down"
    assert router.status()["down"].circuit == "closed"


def test_it_gives_the_trial_back_when_the_caller_stops_reading(
    hello: Sequence[ChatMessage],
) -> None:
    clock = FakeClock()
    down = ScriptedModel("down", [ModelUnavailable("down")])
    router = breaker_router(clock, down, answering("backup"))
    for _ in range(2):
        router.complete("reply", lambda m: hello, PARAMS)
    clock.advance(30)
    down.script = answering("down").script

    abandoned = router.stream("reply", lambda m: hello, PARAMS)
    next(abandoned)
    abandoned.close()
    routed = router.complete("reply", lambda m: hello, PARAMS)

    assert routed.completion.model_id == "down"
    assert down.calls == 4


def test_it_counts_a_refused_request_as_a_sign_of_life(hello: Sequence[ChatMessage]) -> None:
    clock = FakeClock()
    model = ScriptedModel("model", [ModelTimeout("slow")])
    router = breaker_router(clock, model, answering("backup"))
    router.complete("reply", lambda m: hello, PARAMS)

    model.script = [ModelError("prompt rejected")]
    with pytest.raises(ModelError):
        router.complete("reply", lambda m: hello, PARAMS)

    assert router.status()["model"].consecutive_failures == 0


def test_it_keeps_a_circuit_per_model_across_tasks(hello: Sequence[ChatMessage]) -> None:
    clock = FakeClock()
    down = ScriptedModel("down", [ModelUnavailable("down")])
    router = ModelRouter({"down": down, "backup": answering("backup")},
                         {"reply": ["down", "backup"], "summary": ["down", "backup"]},
                         breaker=BreakerPolicy(failures=2, cooldown_s=30.0), clock=clock)

    router.complete("reply", lambda m: hello, PARAMS)
    router.complete("reply", lambda m: hello, PARAMS)
    summary = router.complete("summary", lambda m: hello, PARAMS)

    assert summary.failed == (Attempt("down", "circuit_open"),)
    assert summary.task == "summary"


# --- the time budget ----------------------------------------------------------------------


def test_it_gives_each_attempt_what_is_left_of_the_budget(hello: Sequence[ChatMessage]) -> None:
    clock = FakeClock()
    first = ScriptedModel("first", [ModelTimeout("hung")], clock=clock, takes_s=10)
    second = ScriptedModel("second", [ModelTimeout("hung")], clock=clock, takes_s=10)
    last = answering("last")
    router = ModelRouter({m.spec.id: m for m in (first, second, last)},
                         {"reply": ["first", "second", "last"]}, clock=clock)

    routed = router.complete("reply", lambda m: hello, replace(PARAMS, timeout_s=30.0))

    assert routed.completion.model_id == "last"
    # Each may use what is left, but must start answering within its share of it...
    assert (first.params[0].timeout_s, first.params[0].first_token_timeout_s) == (30.0, 10.0)
    assert (second.params[0].timeout_s, second.params[0].first_token_timeout_s) == (20.0, 10.0)
    # ...and the last resort has whatever remains, with no first-token limit.
    assert (last.params[0].timeout_s, last.params[0].first_token_timeout_s) == (10.0, None)


def test_it_shares_the_budget_only_among_models_that_could_answer(
    tmp_path: Path, hello: Sequence[ChatMessage]
) -> None:
    absent = ScriptedModel("absent", [], path=tmp_path / "absent.gguf")
    first = answering("first")
    router = ModelRouter({m.spec.id: m for m in (first, absent)},
                         {"reply": ["first", "absent"]})

    router.complete("reply", lambda m: hello, PARAMS)

    assert first.params[0].first_token_timeout_s is None


def test_it_caps_an_attempt_at_the_models_own_timeout(hello: Sequence[ChatMessage]) -> None:
    clock = FakeClock()
    capped = ScriptedModel("capped", [ModelTimeout("hung")], clock=clock, takes_s=4,
                           timeout_s=4.0)
    last = answering("last")
    router = ModelRouter({"capped": capped, "last": last}, {"reply": ["capped", "last"]},
                         clock=clock)

    router.complete("reply", lambda m: hello, replace(PARAMS, timeout_s=30.0))

    assert (capped.params[0].timeout_s, capped.params[0].first_token_timeout_s) == (4.0, 4.0)
    assert last.params[0].timeout_s == 26.0


def test_it_stops_when_the_budget_is_spent(hello: Sequence[ChatMessage]) -> None:
    clock = FakeClock()
    slow = ScriptedModel("slow", [ModelTimeout("hung")], clock=clock, takes_s=30)
    last = answering("last")
    router = ModelRouter({"slow": slow, "last": last}, {"reply": ["slow", "last"]},
                         clock=clock)

    with pytest.raises(ModelUnavailable) as caught:
        router.complete("reply", lambda m: hello, replace(PARAMS, timeout_s=30.0))

    assert last.calls == 0
    assert "last (budget_spent)" in caught.value.message


def test_an_eval_trials_seed_reaches_the_model_and_fixes_its_sampling(
    tiny_model: LlamaCppModel, hello: Sequence[ChatMessage]
) -> None:
    """Inside `sampling_seed` the router sends the seed with each call, and the real model
    gives the same text for the same seed at a temperature that samples. (llama.cpp repeats
    a draw from the same cache state: a prompt evaluated afresh and one found in its cache
    can sample differently, so the first call only warms the cache.)"""
    sampled = replace(PARAMS, temperature=1.0, max_tokens=24)
    router = router_for(tiny_model)

    def reply(seed: int | None) -> str:
        with sampling_seed(seed):
            return router.complete("reply", lambda model: hello, sampled).completion.text

    reply(7)
    assert reply(7) == reply(7)
    assert len({reply(seed) for seed in (1, 2, 3, 4)}) > 1
    scripted = answering("scripted")
    with sampling_seed(11):
        router_for(scripted).complete("reply", lambda model: hello, PARAMS)
    router_for(scripted).complete("reply", lambda model: hello, PARAMS)
    assert [params.seed for params in scripted.params] == [11, None]


# --- replicas of one model ----------------------------------------------------------------


def replica_of(first: str, model_id: str) -> ScriptedModel:
    return ScriptedModel(model_id, answering(model_id).script, replica_of=first)


def queued_router(models: Sequence[ChatModel], slots: dict[str, int], **kwargs: Any
                  ) -> tuple[ModelRouter, dict[str, ModelQueue]]:
    """A router over `models` in that order, each with a queue of `slots[id]` and no depth."""
    queues = {m.spec.id: ModelQueue(m.spec.id, slots[m.spec.id], depth=0) for m in models}
    return ModelRouter({m.spec.id: m for m in models}, {"reply": [m.spec.id for m in models]},
                       queues=queues, **kwargs), queues


def test_it_takes_idle_replicas_in_turn_as_one_first_choice(
    hello: Sequence[ChatMessage],
) -> None:
    router = router_for(answering("a"), replica_of("a", "b"), replica_of("a", "c"),
                        answering("backup"))

    answers = [router.complete("reply", lambda m: hello, PARAMS) for _ in range(4)]

    assert [routed.model_id for routed in answers] == ["a", "b", "c", "a"]
    assert not any(routed.fallback for routed in answers)
    assert {m: s.tasks for m, s in router.status().items()} == {
        "a": {"reply": 1}, "b": {"reply": 1}, "c": {"reply": 1}, "backup": {"reply": 2}}
    assert [router.place("reply", m) for m in ("c", "backup", "elsewhere")] == [1, 2, None]


def test_it_passes_a_failed_replica_over_for_the_next_then_the_rest_of_the_route(
    hello: Sequence[ChatMessage],
) -> None:
    hung = ScriptedModel("a", [ModelTimeout("hung")])
    other = replica_of("a", "b")
    router = router_for(hung, other, answering("backup"))

    replica = router.complete("reply", lambda m: hello, PARAMS)
    other.script = [ModelUnavailable("down")]
    fallback = router.complete("reply", lambda m: hello, PARAMS)

    assert replica.model_id == "b" and not replica.degraded
    assert replica.failed == (Attempt("a", "model_timeout"),)
    assert fallback.model_id == "backup" and fallback.degraded
    assert fallback.failed == (Attempt("b", "model_unavailable"), Attempt("a", "model_timeout"))


def test_it_tries_the_least_loaded_replica_first(hello: Sequence[ChatMessage]) -> None:
    router, queues = queued_router([answering("a"), replica_of("a", "b")], {"a": 2, "b": 2})

    with queues["a"].admitted_within(3600.0):  # a call on a, generating
        busy = [router.complete("reply", lambda m: hello, PARAMS) for _ in range(4)]
    idle = [router.complete("reply", lambda m: hello, PARAMS) for _ in range(2)]

    assert [routed.model_id for routed in busy] == ["b"] * 4
    assert [routed.model_id for routed in idle] == ["a", "b"]


def test_it_prefers_a_busy_replica_to_one_whose_queue_is_full(
    hello: Sequence[ChatMessage],
) -> None:
    router, queues = queued_router([answering("a"), replica_of("a", "b")], {"a": 1, "b": 4})

    with (queues["a"].admitted_within(3600.0), queues["b"].admitted_within(3600.0),
          queues["b"].admitted_within(3600.0)):
        answers = [router.complete("reply", lambda m: hello, PARAMS) for _ in range(2)]

    assert [(routed.model_id, routed.failed) for routed in answers] == [("b", ())] * 2


def test_it_prefers_a_busy_replica_to_one_whose_circuit_is_open(
    hello: Sequence[ChatMessage],
) -> None:
    down = ScriptedModel("a", [ModelUnavailable("down")])
    router, queues = queued_router([down, replica_of("a", "b")], {"a": 2, "b": 2},
                                   breaker=BreakerPolicy(failures=1, cooldown_s=30.0),
                                   clock=FakeClock())
    opened = router.complete("reply", lambda m: hello, PARAMS)

    with queues["b"].admitted_within(3600.0):
        answers = [router.complete("reply", lambda m: hello, PARAMS) for _ in range(2)]

    assert opened.failed == (Attempt("a", "model_unavailable"),) and not opened.degraded
    assert [(routed.model_id, routed.failed) for routed in answers] == [("b", ())] * 2
    assert down.calls == 1
