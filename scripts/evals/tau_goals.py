"""Write Lumen Goods eval goals from τ-bench retail training tasks (public, MIT licensed).

Each task with one write whose gold action follows the store's policy becomes a goal
(appliance/evals/cases.py `Goal`): the customer's identity and request as the task gives
them, the facts the agent will ask for (which order, items, the new option, payment method,
reason, address), a persona that varies with the task, and the expected write and end state
of the order system. The simulated customer (appliance/evals/simulator.py) plays them.

    .venv/bin/python scripts/evals/tau_goals.py \\
        --tasks ../shared/data/tau_bench/retail/tasks_train.json --count 30 \\
        --out appliance/demo/workflows/lumen-goods/evals/tau_goals.yaml

It starts Lumen Goods' order system to read the customers' orders, as a customer knows them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from workflows import start_backend, stop_backend

from appliance.evals.cases import EvalSuite
from appliance.evals.customer import (
    ScriptedCustomer,
    gold_state,
    load_tasks,
    policy_problem,
)
from appliance.workflows.schema import parse_document

#: τ-bench's write tools as Lumen Goods' tools, and the arguments both name alike.
TOOLS = {
    "cancel_pending_order": ("cancel_order", ("order_id", "reason")),
    "modify_pending_order_address": ("modify_order_address", ("order_id", "zip")),
    "modify_pending_order_payment": ("modify_order_payment", ("order_id", "payment_method_id")),
    "modify_pending_order_items": ("modify_order_items",
                                   ("order_id", "item_ids", "new_item_ids")),
    "return_delivered_order_items": ("return_items", ("order_id", "item_ids")),
    "exchange_delivered_order_items": ("exchange_items",
                                       ("order_id", "item_ids", "new_item_ids")),
    "modify_user_address": ("update_user_address", ("user_id", "zip")),
}
PERSONAS = ("plain", "terse", "chatty", "angry")
#: How the order system's agent asks for the new option (beyond the simulator's defaults).
ASKED = {"target": ["instead", "available options", "which option"]}
OTHER_REASON = {"no longer needed": "I ordered it by mistake",
                "ordered by mistake": "I no longer need it"}


def goal_of(task: Any, customer: ScriptedCustomer, gold: dict[str, Any]) -> dict[str, Any]:
    [request] = customer.requests
    [write] = task.writes
    tool, shared = TOOLS[write["name"]]
    facts: dict[str, Any] = {}
    identity = task.identity
    if identity.startswith("My email is "):
        facts["email"] = identity.removeprefix("My email is ").rstrip(".")
    else:
        name, zip_code = identity.removeprefix("I'm ").rstrip(".").split(", zip ")
        facts["name"], facts["zip"] = name, zip_code
    for key in ("order", "items", "target", "payment", "address"):
        value = getattr(request, key).rstrip(".")
        if value:
            facts[key] = value.removeprefix("Order ") if key == "order" else value
    persona = PERSONAS[task.index % len(PERSONAS)]
    reason = write["arguments"].get("reason")
    if reason:
        facts["reason"] = {"value": request.reason.rstrip(".").removeprefix("Because ")}
        if task.index % 3 == 0:
            persona = "changes_mind"
            facts["reason"]["first"] = OTHER_REASON[reason]
    arguments = write["arguments"]
    args = {key: arguments[key] for key in shared if key in arguments}
    if "zip" in args and tool != "cancel_order":
        args = {key: value for key, value in args.items() if key != "zip"}
    order_id = arguments.get("order_id")
    state: dict[str, Any] = {}
    if order_id:
        after = gold["orders"][order_id]
        state[f"/orders/{order_id.replace('#', '%23')}"] = {"status": after["status"]}
    else:
        state[f"/users/{task.user_id}"] = {"address": gold["user"]["address"]}
    wants = [f"Hi, {identity} {request.ask}", f"{request.ask} {identity}"]
    return {
        "name": f"tau task {task.index}: {write['name'].replace('_', ' ')}",
        "wants": wants, "facts": facts,
        "asked": {key: words for key, words in ASKED.items() if key in facts},
        "accepts": [order_id] if order_id else [],
        "persona": persona,
        "expect": {"writes": [{"tool": tool, "args": args}], "state": state,
                   "outcome": "resolved"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=Path, required=True)
    parser.add_argument("--count", type=int, default=30)
    parser.add_argument("--port", type=int, default=18120)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="tau-goals-"))
    backend = start_backend(data_dir, args.port)
    goals = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=30) as system:
            for task in load_tasks(args.tasks):
                if len(task.writes) != 1 or task.writes[0]["name"] not in TOOLS:
                    continue
                if policy_problem(system, task) is not None:
                    continue
                gold = gold_state(system, task)
                goals.append(goal_of(task, ScriptedCustomer.for_task(task, system), gold))
                if len(goals) == args.count:
                    break
    finally:
        stop_backend(backend)
    header = ("# Goals from τ-bench retail training tasks (github.com/sierra-research/tau-bench,\n"
              "# MIT licence): written by scripts/evals/tau_goals.py, played by the simulated\n"
              "# customer (appliance/evals/simulator.py). Edit the script, not this file.\n")
    text = header + yaml.safe_dump({"suite": "tau_goals", "goals": goals}, sort_keys=False,
                                   allow_unicode=True, width=100)
    parse_document(text, EvalSuite, args.out.name)  # what it writes validates
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {len(goals)} goals to {args.out}")


if __name__ == "__main__":
    main()
