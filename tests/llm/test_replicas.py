"""Replicas of one served model, as `appliance serve` builds them from the manifest, with real
llama.cpp servers standing in for vLLM boxes: the calls spread over the replicas, a busy replica
gives way to an idle one, and a dead or hung replica is passed over for the other without the
answer counting as a fallback."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from server_support import NO_TIME_LIMIT_S, make_settings

from appliance.llm.base import ChatMessage, GenerationParams, TextDelta
from appliance.llm.manifest import load_manifest
from appliance.llm.router import Attempt, ModelRouter, RoutedCompletion
from appliance.services import TASKS, build_router

#: No answer is ever cut short by time: the verdicts hold on a loaded machine.
PARAMS = GenerationParams(max_tokens=12, temperature=0.0, timeout_s=NO_TIME_LIMIT_S)
FIRST, SECOND = "replica-a", "replica-b"

REPLICA = """
[[models]]
id = "{id}"
role = "small"
profile = "gpu"
backend = "openai_http"
url = "{url}"
served_name = "smol"
response_format = "json_object"
context_tokens = 2048
license = "test"
source = "a llama.cpp server standing in for a vLLM box"
"""

ReplicaRouter = Callable[..., ModelRouter]


@pytest.fixture
def replica_router(tmp_path: Path) -> Iterator[ReplicaRouter]:
    """replica_router(first_url, second_url, first_timeout_s=None): the router built from a
    manifest whose every task routes to `replica-a`, which has a replica, `replica-b`. Two
    failures in a row open a circuit, for the rest of the test."""
    built: list[ModelRouter] = []

    def build(first_url: str, second_url: str, first_timeout_s: float | None = None
              ) -> ModelRouter:
        text = "[profiles.gpu]\n" + "".join(f'{task} = ["{FIRST}"]\n' for task in TASKS)
        text += REPLICA.format(id=FIRST, url=first_url)
        text += f"timeout_s = {first_timeout_s}\n" if first_timeout_s is not None else ""
        text += REPLICA.format(id=SECOND, url=second_url) + f'replica_of = "{FIRST}"\n'
        store = tmp_path / "model_store"
        store.mkdir()
        (store / "manifest.toml").write_text(text)
        settings = make_settings(tmp_path, model_store=str(store), model_profile="gpu",
                                 llm_breaker_failures=2, llm_breaker_cooldown_s=NO_TIME_LIMIT_S)
        router = build_router(settings, load_manifest(store))
        built.append(router)
        return router

    yield build
    for router in built:
        router.close()


def in_flight(router: ModelRouter, model_id: str) -> int:
    """Calls this process has generating or waiting on the model: its load."""
    queue = router.queue(model_id)
    assert queue is not None
    return queue.admitted


def test_it_spreads_calls_over_idle_replicas_in_turn(
    replica_router: ReplicaRouter, llama_server: str, other_llama_server: str,
    hello: Sequence[ChatMessage],
) -> None:
    router = replica_router(llama_server, other_llama_server)
    assert router.route("reply") == (FIRST, SECOND)

    answers = [router.complete("reply", lambda m: hello, PARAMS) for _ in range(4)]

    assert [a.model_id for a in answers] == [FIRST, SECOND, FIRST, SECOND]
    for routed in answers:
        assert routed.completion.text.strip()
        assert not routed.fallback and not routed.degraded
        assert routed.failed == ()
    status = router.status()
    assert status[FIRST].tasks["reply"] == status[SECOND].tasks["reply"] == 1


def test_it_sends_calls_to_the_idle_replica_while_the_other_is_busy(
    replica_router: ReplicaRouter, llama_server: str, other_llama_server: str,
    hello: Sequence[ChatMessage],
) -> None:
    router = replica_router(llama_server, other_llama_server)

    # A reply that has started streaming holds its replica's slot until it is read to the end.
    held = router.stream("reply", lambda m: hello, PARAMS)
    assert isinstance(next(held), TextDelta)
    assert (in_flight(router, FIRST), in_flight(router, SECOND)) == (1, 0)
    # Taken in turn alone, two of these four would go to replica-a.
    meanwhile = [router.complete("reply", lambda m: hello, PARAMS) for _ in range(4)]
    *_, done = held

    assert [routed.model_id for routed in meanwhile] == [SECOND] * 4
    assert isinstance(done, RoutedCompletion) and done.model_id == FIRST
    assert not any(routed.fallback for routed in [*meanwhile, done])


def test_it_answers_every_call_from_the_live_replica_once_the_other_is_killed(
    replica_router: ReplicaRouter, killable_llama_server: Any, llama_server: str,
    hello: Sequence[ChatMessage],
) -> None:
    router = replica_router(killable_llama_server.url, llama_server)
    before = router.complete("reply", lambda m: hello, PARAMS)

    killable_llama_server.kill()
    after = [router.complete("reply", lambda m: hello, PARAMS) for _ in range(6)]

    assert before.model_id == FIRST
    for routed in after:
        assert routed.model_id == SECOND and routed.completion.text.strip()
        assert not routed.fallback and not routed.degraded
    # In turn, the dead replica is tried first every other call, until its second failure
    # opens its circuit; from then on it goes last, after the live one has answered.
    dead = (Attempt(FIRST, "model_unavailable"),)
    assert [routed.failed for routed in after] == [(), dead, (), dead, (), ()]
    status = router.status()[FIRST]
    assert (status.circuit, status.last_error) == ("open", "model_unavailable")


def test_it_passes_a_replica_that_times_out_over_for_the_other(
    replica_router: ReplicaRouter, hanging_server: Any, llama_server: str,
    hello: Sequence[ChatMessage],
) -> None:
    # The hanging replica is first in turn; its own timeout (1 s) bounds what it costs.
    router = replica_router(hanging_server.url, llama_server, first_timeout_s=1.0)

    routed = router.complete("reply", lambda m: hello, PARAMS)

    assert routed.model_id == SECOND and routed.completion.text.strip()
    assert routed.failed == (Attempt(FIRST, "model_timeout"),)
    assert not routed.fallback
    assert router.status()[FIRST].consecutive_failures == 1
