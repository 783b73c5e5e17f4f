"""LlamaCppModel with the real tiny model (SmolLM2-135M-Instruct, loaded once per module)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from appliance.errors import ModelError, ModelTimeout, ModelUnavailable
from appliance.llm.base import ChatMessage, Completion, GenerationParams, ModelSpec, TextDelta
from appliance.llm.llamacpp import PROMPT_CACHE_MB, LlamaCppModel

PARAMS = GenerationParams(max_tokens=16, temperature=0.0, timeout_s=30.0)


def test_it_completes_with_text_and_token_counts(
    tiny_model: LlamaCppModel, hello: Sequence[ChatMessage]
) -> None:
    completion = tiny_model.complete(hello, PARAMS)

    assert completion.text.strip()
    assert completion.model_id == "smollm2-135m-instruct"
    assert completion.prompt_tokens > 10
    assert 0 < completion.completion_tokens <= PARAMS.max_tokens
    assert completion.finish_reason in ("stop", "length")


def test_it_streams_deltas_that_join_to_the_final_text(
    tiny_model: LlamaCppModel, hello: Sequence[ChatMessage]
) -> None:
    *deltas, final = tiny_model.stream(hello, PARAMS)

    assert deltas and all(isinstance(event, TextDelta) for event in deltas)
    assert isinstance(final, Completion)
    assert final.text == "".join(d.text for d in deltas if isinstance(d, TextDelta))
    assert final.completion_tokens == len(deltas)


def test_it_counts_tokens_with_the_models_tokenizer(tiny_model: LlamaCppModel) -> None:
    short = tiny_model.count_tokens("Where is my order?")
    long = tiny_model.count_tokens("Where is my order? " * 10)

    assert 0 < short < len("Where is my order?")
    assert long > 5 * short


def test_it_reports_health_once_loaded(tiny_model: LlamaCppModel) -> None:
    health = tiny_model.check_health()

    assert health.ok, health.detail
    assert health.latency_ms > 0


def test_it_times_out_with_a_tiny_deadline(
    tiny_model: LlamaCppModel, hello: Sequence[ChatMessage]
) -> None:
    with pytest.raises(ModelTimeout) as caught:
        tiny_model.complete(hello, GenerationParams(max_tokens=24, timeout_s=0.001))

    assert caught.value.retryable


def test_it_gives_up_waiting_for_a_busy_model_at_the_first_token_deadline(
    tiny_model: LlamaCppModel, hello: Sequence[ChatMessage]
) -> None:
    # One generation at a time per process: a second turn waits for the first, but only as
    # long as it may wait for its first token; then the router can try another model.
    first = tiny_model.stream(hello, PARAMS)
    next(first)  # generating, holding the model

    # "busy": the first-token deadline ended the wait, not the whole call's timeout.
    with pytest.raises(ModelTimeout, match="busy"):
        tiny_model.complete(hello, replace(PARAMS, first_token_timeout_s=0.2))

    assert isinstance(list(first)[-1], Completion)


def test_it_rejects_a_prompt_over_the_context_window(tiny_model: LlamaCppModel) -> None:
    with pytest.raises(ModelError) as caught:
        tiny_model.complete([ChatMessage("user", "word " * 3000)], PARAMS)

    assert type(caught.value) is ModelError
    assert not caught.value.retryable


def test_it_is_unavailable_when_the_file_is_missing(
    missing_spec: ModelSpec, hello: Sequence[ChatMessage]
) -> None:
    model = LlamaCppModel(missing_spec, threads=2)

    with pytest.raises(ModelUnavailable) as caught:
        model.complete(hello, PARAMS)
    health = model.check_health()

    assert caught.value.retryable
    assert not health.ok


def test_it_refuses_weights_that_fail_verification(
    tiny_spec: ModelSpec, hello: Sequence[ChatMessage]
) -> None:
    model = LlamaCppModel(replace(tiny_spec, id="altered", sha256="0" * 64), threads=2)

    with pytest.raises(ModelUnavailable):
        model.complete(hello, PARAMS)


def test_it_constrains_the_reply_to_a_json_schema(
    tiny_model: LlamaCppModel, hello: Sequence[ChatMessage]
) -> None:
    # Unconstrained, the tiny model answers "Say hello." with prose; the grammar compiled from
    # the schema leaves it only JSON of that shape.
    schema = {"type": "object", "properties": {"colour": {"enum": ["red", "green", None]}},
              "required": ["colour"], "additionalProperties": False}

    plain = tiny_model.complete(hello, PARAMS)
    constrained = tiny_model.complete(hello, replace(PARAMS, max_tokens=24, json_schema=schema))

    with pytest.raises(ValueError):
        json.loads(plain.text)
    jsonschema.validate(json.loads(constrained.text), schema)


def test_it_keeps_each_brands_evaluated_prompt_across_other_brands_turns(
    tiny_spec: ModelSpec, verify_cache: Path
) -> None:
    model = LlamaCppModel(tiny_spec, threads=2, verify_cache=verify_cache)
    brands = [f"You are the assistant of {name}. Tone: {tone}." for name, tone in
              (("Rho-Bank", "calm and precise"), ("Lumen Goods", "warm and brief"))]
    try:
        for system in (*brands, brands[0]):
            model.complete([ChatMessage("system", system), ChatMessage("user", "hi")],
                           replace(PARAMS, max_tokens=2))
        cache = model._model().cache
        kept = [model._model().detokenize(list(key)).decode() for key in cache.cache_state]
    finally:
        model.close()

    assert cache.capacity_bytes == PROMPT_CACHE_MB << 20
    # Both brands' prompts are held: going back to the first one finds its evaluated state.
    assert all(any(system in text for text in kept) for system in brands)


def test_a_model_can_do_without_the_prompt_cache(tiny_spec: ModelSpec, verify_cache: Path) -> None:
    model = LlamaCppModel(replace(tiny_spec, options={**tiny_spec.options, "prompt_cache_mb": 0}),
                          threads=2, verify_cache=verify_cache)
    try:
        assert model.complete([ChatMessage("user", "hi")], replace(PARAMS, max_tokens=2)).text
        assert model._model().cache is None
    finally:
        model.close()


def test_it_generates_on_a_decode_thread_of_lower_cpu_priority(
    tiny_spec: ModelSpec, hello: Sequence[ChatMessage], verify_cache: Path
) -> None:
    # The request threads keep the process's priority, so on saturated cores they still
    # answer (health checks, workflow steps) while the model takes what is left.
    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    earlier = {t.native_id for t in threading.enumerate()}
    model = LlamaCppModel(tiny_spec, threads=2, niceness=5, verify_cache=verify_cache)
    try:
        model.complete(hello, PARAMS)
        decoders = [t for t in threading.enumerate() if t.native_id not in earlier
                    and t.name == f"decode-{tiny_spec.id}"]
        assert len(decoders) == 1 and decoders[0].native_id is not None
        assert os.getpriority(os.PRIO_PROCESS, decoders[0].native_id) == min(before + 5, 19)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
    finally:
        model.close()
    decoders[0].join()
    assert not decoders[0].is_alive(), "closing the model ends its decode thread"


def test_a_reader_that_stops_gets_exactly_what_it_read(
    tiny_model: LlamaCppModel, hello: Sequence[ChatMessage]
) -> None:
    read: list[str] = []
    params = replace(PARAMS, max_tokens=24, stop_when=lambda: len(read) >= 2)

    events = []
    for event in tiny_model.stream(hello, params):
        events.append(event)
        if isinstance(event, TextDelta):
            read.append(event.text)

    *deltas, final = events
    assert len(deltas) == 2 and isinstance(final, Completion)
    assert (final.text, final.completion_tokens, final.finish_reason) == (
        "".join(read), 2, "stopped")
    assert isinstance(tiny_model.complete(hello, PARAMS), Completion), "the model is free again"
