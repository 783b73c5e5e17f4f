"""The workflow engine knows no brand: no demo brand's name and none of the formats the brands
declare appear in `appliance/workflows/`; a brand's identifiers are read with the formats its
toolset declares, and what the engine says on its own comes from the brand's policy."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from appliance.brands import WorkflowMessages
from appliance.db.models import Toolset
from appliance.demo.seed import DEMO_BRANDS, WORKFLOWS_DIR
from appliance.errors import InvalidRequest
from appliance.services import Services
from appliance.workflows.engine import DONE, STOPPED, WAITING, Engine
from appliance.workflows.schema import (
    DefinitionError,
    Prefix,
    SlotFormat,
    ToolSpec,
    parse_toolset,
    parse_workflow,
)
from appliance.workflows.state import WorkflowState
from appliance.workflows.tools import ToolResult

ENGINE = Path(__file__).resolve().parents[2] / "appliance" / "workflows"


def _engine_sources() -> dict[str, str]:
    sources = {path.name: path.read_text(encoding="utf-8") for path in ENGINE.glob("*.py")}
    assert {"engine.py", "extract.py", "llm_extract.py", "schema.py"} <= set(sources)
    return sources


def _declared_formats() -> dict[str, SlotFormat]:
    """Every format a demo brand declares, by `<slug>.<name>`."""
    formats = {}
    for path in sorted(WORKFLOWS_DIR.glob("*/tools.yaml")):
        toolset = parse_toolset(path.read_text(encoding="utf-8"), str(path))
        formats.update({f"{path.parent.name}.{name}": slot_format
                        for name, slot_format in toolset.formats.items()})
    return formats


def _brand_words() -> set[str]:
    """The words of each demo brand's slug, name and agent name ("lumen", "rho", "juniper")."""
    said = " ".join(f"{brand.slug} {brand.name} {brand.persona.agent_name}"
                    for brand in DEMO_BRANDS)
    return {word for word in re.findall(r"[a-z]+", said.lower()) if len(word) >= 3}


def test_the_engine_names_no_demo_brand() -> None:
    words = _brand_words()
    assert {"lumen", "rho"} <= words  # the scan knows the brands it guards against

    found = [(name, word) for name, source in _engine_sources().items()
             for word in sorted(words) if re.search(rf"\b{word}\b", source, re.IGNORECASE)]

    assert found == []


def test_the_engine_holds_none_of_the_brands_declared_formats() -> None:
    """Neither how a brand's identifier is found in text, nor its prefix, nor the full pattern
    of one that has a prefix. (A bare `^[0-9]{5}$` is also the US postal code that the
    engine's own `address` type reads: no brand's.)"""
    formats = _declared_formats()
    assert "lumen-goods.order_id" in formats  # Lumen Goods declares its order numbers
    fragments = {}
    for where, slot_format in formats.items():
        prefixes = {step.prefix for step in slot_format.normalise if isinstance(step, Prefix)}
        fragments[where] = {slot_format.find, *prefixes,
                            *((slot_format.pattern,) if prefixes else ())}
    assert "#W" in fragments["lumen-goods.order_id"]

    found = [(name, where, fragment) for name, source in _engine_sources().items()
             for where, declared in fragments.items() for fragment in declared
             if fragment in source]

    assert found == []


def test_the_engine_holds_no_order_number_written_as_the_demo_brands_write_them() -> None:
    """What a brand's identifiers look like in text, its examples included ("#W1234567")."""
    readers = [re.compile(slot_format.find) for slot_format in _declared_formats().values()
               if slot_format.normalise]  # identifiers with a shape of their own

    found = [(name, hit.group(0)) for name, source in _engine_sources().items()
             for reader in readers for hit in reader.finditer(source)]

    assert found == []


# --- a brand the engine has never seen: its formats and its words, declared, no code ----------

TOOLS = """\
base_url: http://127.0.0.1:9
formats:
  policy_number:
    description: a policy number, written like PN-12-3456
    find: '\\b[pP][nN][- ]?(\\d{2}[- ]?\\d{4})\\b'
    normalise: [strip_spaces, digits, {prefix: PN}]
    pattern: '^PN[0-9]{6}$'
"""
RENEW = """\
name: renew_policy
title: Renew a policy
slots:
  policy: {type: policy_number, prompt: "Which policy shall I renew?"}
steps:
  - ask: policy
  - confirm: Renew {{ policy }}?
  - say: Renewed {{ policy }}.
"""


class NoTools:
    def spec(self, name: str) -> ToolSpec | None:
        return None

    def call(self, spec: ToolSpec, arguments: Mapping[str, Any],
             idempotency_key: str | None) -> ToolResult:
        raise AssertionError("this workflow calls no tools")


def _turns(texts: list[str], messages: WorkflowMessages | None = None) -> list[Any]:
    workflow = parse_workflow(RENEW)
    formats = parse_toolset(TOOLS).formats
    state = WorkflowState()
    outcomes = []
    for text in texts:
        engine = Engine(state, NoTools(), conversation_id="c1", identity=None,
                        formats=formats, messages=messages)
        if engine.running is None:
            engine.start(workflow, None)
        engine.remember(text)
        outcomes.append(engine.turn(workflow, text))
    return outcomes


def test_a_new_brands_format_is_read_and_normalised_as_its_toolset_declares() -> None:
    asked, confirmed, done = _turns(["I'd like to renew my policy", "it's pn 12-3456", "yes"])

    assert (asked.status, asked.text) == (WAITING, "Which policy shall I renew?")
    assert (confirmed.status, confirmed.text) == (WAITING, "Renew PN123456?")
    assert done.status == DONE
    assert done.messages[0] == "Renewed PN123456."


def test_a_slot_whose_format_the_toolset_does_not_declare_is_never_filled() -> None:
    workflow = parse_workflow(RENEW)
    state = WorkflowState()
    engine = Engine(state, NoTools(), conversation_id="c1", identity=None)
    engine.start(workflow, None)
    engine.remember("renew PN-12-3456")

    outcome = engine.turn(workflow, "renew PN-12-3456")

    assert (outcome.status, outcome.text) == (WAITING, "Which policy shall I renew?")


@pytest.mark.parametrize(("texts", "said"), [
    (["renew PN-12-3456", "never mind"], "Fine, nothing changed."),
    (["renew PN-12-3456", "no"], "Understood, I left it as it was."),
])
def test_what_the_engine_says_on_its_own_is_the_brands_policy(texts: list[str],
                                                               said: str) -> None:
    messages = WorkflowMessages(stopped="Fine, nothing changed.",
                                declined="Understood, I left it as it was.")

    outcome = _turns(texts, messages)[-1]

    assert (outcome.status, outcome.text) == (STOPPED, said)


def test_the_default_messages_name_no_brand() -> None:
    said = " ".join(str(value) for value in WorkflowMessages().model_dump().values())

    assert [word for word in _brand_words() if re.search(rf"\b{word}\b", said, re.I)] == []


# --- declaring formats: a format that does not compile is never saved ---------------------


@pytest.mark.parametrize(("broken", "line", "message"), [
    ("    find: '\\b[pP][nN][- ]?(\\d{2}[- ]?\\d{4})\\b'", "'(unclosed'",
     "not a regular expression"),
    ("    pattern: '^PN[0-9]{6}$'", "'^(PN)([0-9]{6})$'", "at most one"),
    ("    normalise: [strip_spaces, digits, {prefix: PN}]", "[strip_spaces, reverse]",
     "unknown normaliser 'reverse'"),
], ids=["find", "two-groups", "normaliser"])
def test_a_format_that_does_not_compile_is_an_error_with_its_line(
        broken: str, line: str, message: str) -> None:
    key = broken.split(":", 1)[0]
    source = TOOLS.replace(broken, f"{key}: {line}")
    assert source != TOOLS

    with pytest.raises(DefinitionError) as caught:
        parse_toolset(source, "tools.yaml")

    error = caught.value.errors[0]
    assert error["path"].startswith("formats.policy_number.")
    assert error["line"] == 1 + TOOLS.splitlines().index(broken)
    assert message in str(caught.value.errors)


def test_a_toolset_with_a_broken_format_saves_nothing_and_workflows_need_declared_formats(
        services: Services, seeded: dict[str, Any]) -> None:
    brand = services.brands.get("lumen-goods")
    flows = services.workflows
    before = flows.toolset(brand)
    assert before is not None and "order_id" in before.formats

    with pytest.raises(DefinitionError):
        flows.save_toolset(brand, TOOLS.replace("'^PN[0-9]{6}$'", "'^PN[0-9'"), "tester")
    assert flows.toolset(brand) == before
    with pytest.raises(InvalidRequest, match="policy_number") as caught:
        flows.save_draft(brand, RENEW, "tester")
    assert caught.value.code == "unknown_slot_format"

    with pytest.raises(InvalidRequest) as caught:  # it drops the tools the workflows use
        flows.save_toolset(brand, TOOLS, "tester")
    assert caught.value.code == "toolset_in_use"
    stored = Toolset.get(Toolset.brand == brand).source
    flows.save_toolset(brand, stored.replace(
        "formats:\n", "formats:\n" + TOOLS.split("formats:\n", 1)[1], 1), "tester")
    assert flows.save_draft(brand, RENEW, "tester").status == "draft"
