"""The LLM extractor with the real tiny model on the CPU route: what it returns always passes
the slots' validation, or is None; and the engine calls it only where a slot asks for it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from appliance.demo.seed import WORKFLOWS_DIR
from appliance.errors import ConfigError
from appliance.llm.llamacpp import LlamaCppModel
from appliance.llm.manifest import load_manifest
from appliance.llm.router import ModelRouter
from appliance.workflows.engine import DONE, WAITING, Engine
from appliance.workflows.llm_extract import LlmExtractor, validated
from appliance.workflows.schema import (
    DefinitionError,
    Slot,
    ToolSpec,
    parse_toolset,
    parse_workflow,
)
from appliance.workflows.state import WorkflowState
from appliance.workflows.tools import ToolResult

MODEL_STORE = Path(__file__).resolve().parents[2] / "model_store"
#: Lumen Goods' slot formats (its order numbers, zip codes), as its toolset declares them.
FORMATS = parse_toolset((WORKFLOWS_DIR / "lumen-goods" / "tools.yaml").read_text()).formats

REASON = Slot(type="enum", values=("no longer needed", "ordered by mistake"),
              prompt="Why are you cancelling?", extractor="llm")
ITEM = Slot(type="choice", options="order['items']", key="item_id", match_on=("name",),
            prompt="Which item?", extractor="llm")
ORDER = {"order": {"items": [{"item_id": "1008292230", "name": "T-Shirt"},
                             {"item_id": "4107812777", "name": "Running Shoes"}]}}
CANCEL = """\
name: cancel_order
title: Cancel an order
slots:
  reason:
    type: enum
    values: [no longer needed, ordered by mistake]
    extractor: llm
    prompt: Why are you cancelling?
  order_id: {type: order_id, prompt: "Which order?"}
steps:
  - ask: order_id
  - ask: reason
  - say: Cancelling {{ order_id }} because it is {{ reason }}.
"""


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelRouter]:
    """The CPU profile's `extraction` route, as the manifest has it (the tiny model)."""
    manifest = load_manifest(MODEL_STORE)
    route = manifest.route("cpu", "extraction")
    cache = tmp_path_factory.mktemp("verify") / "model-verify.json"
    models = {model_id: LlamaCppModel(manifest.models[model_id], threads=2, verify_cache=cache)
              for model_id in route}
    built = ModelRouter(models, {"extraction": route})
    yield built
    built.close()


@pytest.fixture(scope="module")
def extractor(router: ModelRouter) -> LlmExtractor:
    return LlmExtractor(router)


@pytest.mark.parametrize("text", [
    "I bought it by accident", "I clicked the wrong button", "hmm", "what's the weather?",
])
def test_it_returns_one_of_the_enum_values_or_none(extractor: LlmExtractor, text: str) -> None:
    assert extractor(REASON, text, {}) in (*REASON.values, None)


def test_it_returns_one_of_the_option_keys_or_none(extractor: LlmExtractor) -> None:
    value = extractor(ITEM, "the shoes I run in", ORDER)

    assert value in ("1008292230", "4107812777", None)


def test_it_does_not_take_an_identifier_the_message_does_not_give(
    extractor: LlmExtractor,
) -> None:
    order_id = Slot(type="order_id", prompt="Which order is it?", extractor="llm")

    # The tiny model makes one up ("#W1234567"); it is not in the message, so it is refused.
    assert extractor(order_id, "the one from last week", {}, FORMATS) is None


def test_it_reads_an_identifier_the_patterns_miss(extractor: LlmExtractor) -> None:
    order_id = Slot(type="order_id", prompt="Which order is it?", extractor="llm")

    value = extractor(order_id, "it's W 123-4567", {}, FORMATS)

    assert value in ("#W1234567", None)  # normalised as the patterns would, or nothing


def test_it_gives_none_when_no_model_can_answer(tmp_path: Path) -> None:
    spec = load_manifest(MODEL_STORE).models["smollm2-135m-instruct"]
    absent = LlamaCppModel(replace(spec, path=tmp_path / "absent.gguf"), threads=2)
    router = ModelRouter({spec.id: absent}, {"extraction": [spec.id]})

    assert LlmExtractor(router)(REASON, "I bought it by accident", {}) is None


def test_it_needs_an_extraction_route(router: ModelRouter) -> None:
    only_replies = ModelRouter(router.models, {"reply": router.route("extraction")})

    with pytest.raises(ConfigError, match="extraction"):
        LlmExtractor(only_replies)


# --- the validation, on values a model could return -----------------------------------------


@pytest.mark.parametrize(("slot", "value", "text", "values", "expected"), [
    (REASON, "ordered by mistake", "oops", {}, "ordered by mistake"),
    (REASON, "changed my mind", "changed my mind", {}, None),
    (REASON, ["ordered by mistake"], "oops", {}, None),
    (ITEM, "4107812777", "the shoes", ORDER, "4107812777"),
    (ITEM, "9999999999", "the shoes", ORDER, None),
    (Slot(type="order_id", prompt="?"), "#W1234567", "W 123-4567", {}, "#W1234567"),
    (Slot(type="order_id", prompt="?"), "#W7654321", "W 123-4567", {}, None),
    (Slot(type="order_id", prompt="?"), "1234567", "1234567", {}, None),
    (Slot(type="email", prompt="?"), "Jo@X.com", "jo at x dot com", {}, "jo@x.com"),
    (Slot(type="email", prompt="?"), "jane@example.com", "jo at x dot com", {}, None),
    (Slot(type="zip", prompt="?"), "78701", "seven eight? 787-01", {}, "78701"),
    (Slot(type="number", prompt="?"), 3, "three of them", {}, 3.0),
    (Slot(type="number", prompt="?"), True, "yes", {}, None),
    (Slot(type="address", prompt="?"),
     {"address1": "12 Elm St", "address2": "Apt 4", "city": "Austin", "state": "TX",
      "zip": "78701"}, "12 elm st apt 4 austin texas 78701", {},
     {"address1": "12 Elm St", "address2": "Apt 4", "city": "Austin", "state": "TX",
      "country": "USA", "zip": "78701"}),
    (Slot(type="address", prompt="?"),
     {"address1": "12 Elm St", "address2": "", "city": "Austin", "state": "TX",
      "zip": "90210"}, "12 elm st austin texas 78701", {}, None),
], ids=["enum", "enum-unknown", "enum-list", "choice", "choice-unknown", "order-id",
        "order-id-made-up", "order-id-malformed", "email", "email-made-up", "zip", "number",
        "number-bool", "address", "address-made-up-zip"])
def test_it_keeps_only_what_the_slots_validation_accepts(
    slot: Slot, value: Any, text: str, values: Mapping[str, Any], expected: Any,
) -> None:
    assert validated(slot, value, text, values, formats=FORMATS) == expected


def test_a_slot_whose_format_the_brand_does_not_declare_reads_nothing() -> None:
    order_id = Slot(type="order_id", prompt="?")

    assert validated(order_id, "#W1234567", "#W1234567", {}) is None


def test_it_refuses_llm_extraction_for_slots_it_cannot_check() -> None:
    source = CANCEL.replace("{type: order_id,", "{type: text, extractor: llm,")

    with pytest.raises(DefinitionError, match="extractor: llm is not available for text"):
        parse_workflow(source, "test.yaml")


# --- the engine's hook ------------------------------------------------------------------------


class NoTools:
    def spec(self, name: str) -> ToolSpec | None:
        return None

    def call(self, spec: ToolSpec, arguments: Mapping[str, Any],
             idempotency_key: str | None) -> ToolResult:
        raise AssertionError("this workflow calls no tools")


def test_the_engine_asks_the_llm_only_for_the_asked_slot_the_patterns_miss(
    extractor: LlmExtractor,
) -> None:
    workflow = parse_workflow(CANCEL, "cancel.yaml")
    calls: list[tuple[str, str]] = []

    def llm_extract(slot: Slot, text: str, values: Mapping[str, Any],
                    formats: Mapping[str, Any]) -> Any:
        calls.append((slot.type, text))
        return extractor(slot, text, values, formats)

    state = WorkflowState()

    def turn(text: str) -> Any:
        engine = Engine(state, NoTools(), conversation_id="c1", identity=None,
                        llm_extract=llm_extract, formats=FORMATS)
        if engine.running is None:
            engine.start(workflow, None)
        engine.remember(text)
        return engine.turn(workflow, text)

    assert turn("I want to cancel an order").status == WAITING  # asks for the order
    assert turn("#W1234567").status == WAITING  # asks why
    assert calls == []  # order_id reads by patterns; reason was not asked yet
    outcome = turn("I clicked the wrong button")

    assert calls == [("enum", "I clicked the wrong button")]
    assert outcome.status in (DONE, WAITING)  # filled by the model, or asked again
    if outcome.status == DONE:
        assert outcome.filled == ["reason"]
        assert state.history[-1].slots["reason"] in REASON.values


def test_the_engine_does_not_ask_the_llm_when_the_patterns_find_the_value() -> None:
    workflow = parse_workflow(CANCEL, "cancel.yaml")
    calls: list[str] = []

    def llm_extract(slot: Slot, text: str, values: Mapping[str, Any],
                    formats: Mapping[str, Any]) -> Any:
        calls.append(text)
        return None

    state = WorkflowState()
    for text in ("cancel #W1234567", "ordered by mistake"):
        engine = Engine(state, NoTools(), conversation_id="c1", identity=None,
                        llm_extract=llm_extract, formats=FORMATS)
        if engine.running is None:
            engine.start(workflow, None)
        engine.remember(text)
        outcome = engine.turn(workflow, text)

    assert outcome.status == DONE
    assert calls == []
