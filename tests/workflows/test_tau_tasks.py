"""The scripted customer plays a fixed sample of τ-bench retail training tasks against Lumen
Goods' agent and order system; each must end with the order system exactly as the task's
gold writes leave it. The sample covers every kind of request the benchmark plays
(scripts/bench/tau_retail.py measures the rate on all of them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from retail_support import RetailBackend

from appliance.evals.customer import Task, load_tasks, policy_problem
from appliance.evals.runner import run_task
from appliance.services import Services

SAMPLE = Path(__file__).parent / "data" / "tau_retail_tasks.json"
#: A task whose gold writes exchange an item for itself, which the policy does not allow.
AGAINST_POLICY = 5


def sample() -> list[Task]:
    return [task for task in load_tasks(SAMPLE) if task.index != AGAINST_POLICY]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("task", sample(), ids=lambda task: f"task-{task.index}")
def test_the_scripted_customer_gets_the_exact_end_state(
        services: Services, lumen: Any, retail_backend: RetailBackend, task: Task) -> None:
    with httpx.Client(base_url=retail_backend.url, timeout=30) as system:
        assert policy_problem(system, task) is None
        result = run_task(services, lumen, system, task)
    assert result.passed, result.transcript
    assert result.status == "resolved"


def test_the_sample_covers_every_kind_of_request() -> None:
    kinds = {write["name"] for task in sample() for write in task.writes}
    assert kinds == {"cancel_pending_order", "modify_pending_order_address",
                     "modify_pending_order_payment", "modify_pending_order_items",
                     "return_delivered_order_items", "exchange_delivered_order_items"}
    assert any(len(task.writes) == 2 for task in sample())


def test_gold_writes_against_the_policy_are_left_out(retail_backend: RetailBackend) -> None:
    task = next(task for task in load_tasks(SAMPLE) if task.index == AGAINST_POLICY)
    with httpx.Client(base_url=retail_backend.url, timeout=30) as system:
        assert policy_problem(system, task) == "an item to itself"
