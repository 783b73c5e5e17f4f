"""Lumen Goods with one small eval suite, for the tests of the eval history, the nightly job,
the admin's evals page and the report (tests/evals, tests/web)."""

from __future__ import annotations

import datetime as dt

from appliance.brands import policy_of
from appliance.db.models import Brand, EvalRun
from appliance.services import Services

SUITE = """\
suite: cancellations
cases:
  - name: reason given up front
    turns: ["cancel order #W3657213, I ordered it by mistake", olivia.ito5204@example.com, yes]
    expect:
      writes: [{tool: cancel_order, args: {order_id: "#W3657213"}}]
      state: {/orders/%23W3657213: {status: cancelled}}
      outcome: resolved
"""
#: The same case expecting what the agent rightly does not do: the suite now fails.
BROKEN = SUITE.replace("outcome: resolved", "outcome: escalated")
#: A failing case in quarantine: reported, never alerting.
FLAKY = SUITE.replace("suite: cancellations", "suite: flaky").replace(
    "    expect:", "    quarantine: waits on the shop's new cancel flow\n    expect:").replace(
    "outcome: resolved", "outcome: escalated")


def with_small_suite(services: Services, lumen: Brand, test_system: str) -> Brand:
    """Lumen Goods with only the `cancellations` suite and `test_system` (its order system)
    as its test system; Rho-Bank's tools on a production address, so it has none."""
    for record in services.suites.records(lumen):
        services.suites.delete(lumen, record.name, "test")
    services.suites.save(lumen, SUITE, "cara")
    policy = policy_of(lumen)
    brand = services.brands.update("lumen-goods", actor="test", policy=policy.model_copy(
        update={"evals": policy.evals.model_copy(update={"test_base_url": test_system})}))
    rho = policy_of(services.brands.get("rho-bank"))
    services.brands.update("rho-bank", actor="test", policy=rho.model_copy(
        update={"tools_base_url": "https://bank.example/api"}))
    return brand


def a_day_back(run_id: int) -> None:
    """Date a run a day back, as if the nightly job had made it last night."""
    run = EvalRun.get_by_id(run_id)
    EvalRun.update(created_at=run.created_at - dt.timedelta(days=1)).where(
        EvalRun.id == run_id).execute()
