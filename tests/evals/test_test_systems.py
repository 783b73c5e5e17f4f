"""Evals act on the brand's test systems (`evals.test_base_url`), never on the systems its
customers' conversations use. Real engine and Lumen Goods' order system over HTTP; the
"production" URL is a closed port, so any call that reached it would fail the case."""

from __future__ import annotations

from typing import Any

import pytest
from demo_backends import free_port
from retail_support import RetailBackend

from appliance.brands import EvalPolicy, policy_of
from appliance.db.models import Brand, ToolCall
from appliance.evals.cases import EvalSuite
from appliance.evals.runner import run_suites, say
from appliance.services import Services
from appliance.workflows.schema import parse_document

CANCEL = """\
workflow: cancel_order
cases:
  - name: cancelled on the test system
    turns: ["cancel order #W3657213, I ordered it by mistake", olivia.ito5204@example.com, yes]
    expect:
      writes: [{tool: cancel_order, args: {order_id: "#W3657213"}}]
      state: {/orders/%23W3657213: {status: cancelled}}
      outcome: resolved
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_eval_writes_to_the_test_system_while_customers_use_production(
        services: Services, lumen: Brand, retail_backend: RetailBackend) -> None:
    production = f"http://127.0.0.1:{free_port()}"  # nothing listens: a call there fails
    policy = policy_of(lumen)
    services.brands.update(lumen.slug, actor="test", policy=policy.model_copy(update={
        "tools_base_url": production,
        "evals": EvalPolicy(test_base_url=retail_backend.url)}))
    lumen = services.brands.get(lumen.slug)

    [result] = run_suites(services, lumen, [parse_document(CANCEL, EvalSuite, "e.yaml")])

    assert result.passed, result.problems
    customer, _ = services.conversations.start(lumen, {}, "web")
    say(services, lumen, customer, "cancel order #W2611340")
    say(services, lumen, customer, "olivia.ito5204@example.com")
    failed: Any = ToolCall.select().where(ToolCall.conversation == customer.id)
    assert [call.status for call in failed] and all(
        call.status != "ok" for call in failed), "a customer's call went to production"
