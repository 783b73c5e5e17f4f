"""What one definition and one template may cost: a YAML alias bomb, an alias inside itself,
deep nesting or an oversized file is refused before anything is stored; a template that would
build huge text, loop without end or run past its time is stopped, and a customer who meets
one in a published workflow is handed to a person with a plain message."""

from __future__ import annotations

from typing import Any

import pytest
from retail_support import say

from appliance.db.models import Conversation, EvalSuiteRecord, WorkflowVersion
from appliance.demo.seed import WORKFLOWS_DIR
from appliance.evals.cases import load_suites
from appliance.services import Services
from appliance.workflows import expressions
from appliance.workflows.expressions import TemplateLimit, evaluate, render
from appliance.workflows.schema import (
    MAX_DEFINITION_BYTES,
    DefinitionTooLarge,
    parse_toolset,
    parse_workflow,
)

HOURS = """\
name: store_hours
title: Store hours
triggers:
  examples: [when are you open, what are your opening hours]
steps:
  - say: {say}
"""
#: 522 bytes that expand to 9**6 (531,441) strings: a "billion laughs" document.
BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdef", "bcdefg", strict=True))
BOMB = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + BOMB


@pytest.mark.parametrize(("source", "why"), [
    (HOURS.format(say="hi") + BOMB, "more than 50,000 values once its aliases are expanded"),
    (HOURS.format(say="hi") + "loop: &loop [*loop]\n", "nested more than 32 deep"),
    (HOURS.format(say="hi") + "deep: " + "[" * 40 + "]" * 40 + "\n", "nested more than 32 deep"),
    (HOURS.format(say="x" * MAX_DEFINITION_BYTES), "larger than 256 KiB"),
])
def test_a_definition_over_the_limits_is_refused_and_nothing_is_stored(
        services: Services, seeded: dict[str, Any], source: str, why: str) -> None:
    assert len(BOMB) < 600
    brand = services.brands.get("lumen-goods")
    versions = WorkflowVersion.select().count()

    with pytest.raises(DefinitionTooLarge) as refused:
        services.workflows.save_draft(brand, source, "editor")

    assert (refused.value.status, refused.value.code) == (400, "definition_too_large")
    assert why in refused.value.message
    assert WorkflowVersion.select().count() == versions


def test_eval_suites_and_toolsets_are_held_to_the_same_limits(
        services: Services, seeded: dict[str, Any]) -> None:
    brand = services.brands.get("lumen-goods")
    suites = EvalSuiteRecord.select().count()
    with pytest.raises(DefinitionTooLarge):
        services.suites.save(brand, "suite: knowledge\ncases: []\n" + BOMB, "editor",
                             "knowledge.yaml")
    with pytest.raises(DefinitionTooLarge):
        parse_toolset("base_url: http://x\ntools: []\n" + BOMB, "tools.yaml")
    assert EvalSuiteRecord.select().count() == suites


def test_aliases_within_the_limits_still_work() -> None:
    # The shipped documents use anchors and aliases (shared argument lists, a goal's facts).
    brands = WORKFLOWS_DIR
    assert parse_toolset((brands / "rho-bank" / "tools.yaml").read_text(), "tools.yaml").tools
    identity = brands / "rho-bank" / "workflows" / "verify_identity.yaml"
    assert parse_workflow(identity.read_text(), identity.name).provides_identity
    assert load_suites(brands / "lumen-goods" / "evals", "tau_goals")[0].goals


@pytest.mark.parametrize("template", [
    "{{ 'x' * 200000000 }}",
    "{{ ['x'] * 200000000 }}",
    "{{ 'x' | center(1000000000) }}",
    "{{ 'x' | indent(1000000000) }}",
    "{{ '%*s' % (1000000000, 'x') }}",
    "{{ 2 ** 100000000 }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(5000) %}five or more characters{% endfor %}",
])
def test_a_template_past_its_limits_is_stopped(template: str) -> None:
    with pytest.raises(TemplateLimit) as stopped:
        render(template, {})
    assert stopped.value.code == "template_limit"


def test_ordinary_templates_and_expressions_are_untouched() -> None:
    values = {"order": {"items": [{"name": "lamp"}, {"name": "desk"}]}}
    assert render("{% for item in order['items'] %}{{ item.name }} {% endfor %}",
                  values) == "lamp desk"
    assert render("{{ '-' * 20 }} {{ 3 ** 2 }} {{ 'a' ~ 'b' }}", {}) == "-" * 20 + " 9 ab"
    assert evaluate("range(3) | list", {}) == [0, 1, 2]
    assert evaluate("[0] * 3 + [1]", {}) == [0, 0, 0, 1]


def test_a_template_still_running_past_its_time_budget_is_stopped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A clock that moves a second per reading: the budget runs out within a few steps,
    # whatever this machine's speed.
    readings = iter(range(10_000))
    monkeypatch.setattr(expressions, "clock", lambda: float(next(readings)))

    with pytest.raises(TemplateLimit, match="took longer than"):
        render("{% for i in range(100) %}{{ i }}{% endfor %}", {})


def test_a_customer_meeting_such_a_template_is_handed_off_plainly(
        services: Services, seeded: dict[str, Any]) -> None:
    brand = services.brands.get("lumen-goods")
    services.workflows.save_draft(brand, HOURS.format(say="\"{{ 'x' * 200000000 }}\""),
                                  "editor")
    services.workflows.publish(brand, "store_hours", "editor")
    conversation, _ = services.conversations.start(brand, {}, "web")

    reply = say(services, brand, conversation.public_id, "when are you open?")

    assert "I can't finish this myself" in reply
    after = Conversation.get_by_id(conversation.id)
    assert (after.status, after.status_reason) == ("pending_human", "workflow_template_failed")
