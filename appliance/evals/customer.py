"""A scripted customer that plays a τ-bench retail task from its gold actions.

A task (`tasks_train.json` of the τ-bench retail data) gives a customer's identity and the
writes a policy-following agent must make for them (`actions`). The scripted customer turns
those writes into what a customer would say: who they are, what they want and every detail
the writes need, all in the first message ("Hi, I'm Mei Kovacs, zip 28236. I want to exchange
the desk lamp in order #W… for one with brightness high. Use my PayPal for any difference.");
then it answers the agent's questions from the task (which order, which items, what instead,
which payment method, why, where), says yes to a confirmation, and brings up the next request
when the agent asks if there is anything else.

It describes items the way the task does: by name, with their options when the order holds
the name more than once or the item is to change ("the skateboard (plastic, 28 inch)"), and
targets by the options that differ ("one with capacity 750ml and color black"). It reads the
customer's orders and products from the order system, as a customer knows what they bought.

The measure is τ-bench's: the end state of the order system (the customer's profile and all
their orders) after the conversation must be exactly the state the gold actions produce
(`gold_state`). Tasks whose gold actions break the policy are left out (`policy_problem`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

#: τ-bench's write tools and the order system's endpoints that do the same.
WRITES: dict[str, tuple[str, str]] = {
    "cancel_pending_order": ("order_id", "/orders/{}/cancel"),
    "modify_pending_order_address": ("order_id", "/orders/{}/modify-address"),
    "modify_pending_order_payment": ("order_id", "/orders/{}/modify-payment"),
    "modify_pending_order_items": ("order_id", "/orders/{}/modify-items"),
    "return_delivered_order_items": ("order_id", "/orders/{}/return"),
    "exchange_delivered_order_items": ("order_id", "/orders/{}/exchange"),
    "modify_user_address": ("user_id", "/users/{}/address"),
}
_NAME_ZIP = re.compile(r"Your name is (\w+) (\w+) and your zip code is (\d{5})")
_EMAIL = re.compile(r"your email is (\S+@\S+?)\.?(?:\s|$)")
DONE_SAYING = "No, that's all. Thank you!"


@dataclass(frozen=True)
class Task:
    """One τ-bench retail task: the customer and the gold writes, in order."""

    index: int
    user_id: str
    instruction: str
    writes: tuple[dict[str, Any], ...]

    @property
    def identity(self) -> str:
        """How the customer introduces themselves: by email when the task gives one, else
        by name and zip code."""
        email = _EMAIL.search(self.instruction)
        if email is not None:
            return f"My email is {email.group(1)}."
        found = _NAME_ZIP.search(self.instruction)
        if found is None:
            raise ValueError(f"task {self.index}: no identity in its instruction")
        first, last, zip_code = found.groups()
        return f"I'm {first} {last}, zip {zip_code}."


def load_tasks(path: Path) -> list[Task]:
    """The tasks of a τ-bench retail task file (`{"tasks": [...]}`)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return [Task(int(task["task_index"]), str(task["user_id"]), str(task["instruction"]),
                 tuple(action for action in task["actions"] if action["name"] in WRITES))
            for task in data["tasks"]]


def apply_write(system: httpx.Client, write: Mapping[str, Any]) -> httpx.Response:
    """Make one gold write in the order system, as τ-bench's tool would."""
    target, path = WRITES[write["name"]]
    arguments = dict(write["arguments"])
    owner = str(arguments.pop(target)).lstrip("#")
    return system.post(path.format(owner), json=arguments)


def state_of(system: httpx.Client, user_id: str) -> dict[str, Any]:
    """What the order system holds for the customer: their profile and every order."""
    user = system.get(f"/users/{user_id}").raise_for_status().json()
    orders = {order_id: system.get(f"/orders/{order_id.lstrip('#')}").raise_for_status().json()
              for order_id in user["orders"]}
    return {"user": user, "orders": orders}


def gold_state(system: httpx.Client, task: Task) -> dict[str, Any]:
    """The end state the gold writes produce, from a fresh order system (left reset)."""
    system.post("/reset").raise_for_status()
    try:
        for write in task.writes:
            apply_write(system, write).raise_for_status()
        return state_of(system, task.user_id)
    finally:
        system.post("/reset").raise_for_status()


def policy_problem(system: httpx.Client, task: Task) -> str | None:
    """Why the task's gold writes break the store's policy (so a policy-following agent
    must refuse them), or None. The order system refuses most such writes itself; it also
    takes two the policy forbids: an exchange or change to the very same item, and a refund
    to a method that is neither the original one nor a gift card."""
    system.post("/reset").raise_for_status()
    try:
        for write in task.writes:
            arguments = write["arguments"]
            if "new_item_ids" in arguments and any(
                    old == new for old, new in zip(arguments["item_ids"],
                                                   arguments["new_item_ids"], strict=False)):
                return "an item to itself"
            if write["name"] == "return_delivered_order_items":
                order = system.get(f"/orders/{arguments['order_id'].lstrip('#')}").json()
                user = system.get(f"/users/{task.user_id}").json()
                method = arguments["payment_method_id"]
                original = order["payment_history"][0]["payment_method_id"]
                source = user["payment_methods"].get(method, {}).get("source")
                if method != original and source != "gift_card":
                    return "a refund to a method that is neither the original nor a gift card"
            response = apply_write(system, write)
            if response.status_code != 200:
                return f"{write['name']}: {response.json()['error']['message']}"
        return None
    finally:
        system.post("/reset").raise_for_status()


@dataclass
class _Request:
    """One gold write as the customer asks for it."""

    ask: str
    order: str = ""
    items: str = ""
    target: str = ""
    payment: str = ""
    reason: str = ""
    address: str = ""


@dataclass
class ScriptedCustomer:
    """Plays a task: `opening()` first, then `answer(reply)` to each agent reply until it
    returns None (the customer is done)."""

    task: Task
    requests: list[_Request]
    current: int = 0
    said: list[str] = field(default_factory=list)

    @classmethod
    def for_task(cls, task: Task, system: httpx.Client) -> ScriptedCustomer:
        """Reads the customer's profile, orders and products from the (fresh) order system
        to describe what they want as they would."""
        user = system.get(f"/users/{task.user_id}").raise_for_status().json()
        products: dict[str, Any] = {}

        def product(product_id: str) -> Any:
            if product_id not in products:
                products[product_id] = system.get(f"/products/{product_id}").json()
            return products[product_id]

        requests = []
        for write in task.writes:
            arguments = write["arguments"]
            order = None
            if "order_id" in arguments:
                order = system.get(
                    f"/orders/{arguments['order_id'].lstrip('#')}").raise_for_status().json()
            requests.append(_request(write["name"], arguments, user, order, product))
        return cls(task, requests)

    def opening(self) -> str:
        text = f"Hi, {self.task.identity} {self.requests[0].ask}"
        self.said.append(text)
        return text

    def answer(self, reply: str) -> str | None:
        """What the customer says to the agent's reply; None when they have nothing more
        to say."""
        text = reply.lower()
        request = self.requests[self.current] if self.current < len(self.requests) else None
        if "anything else" in text:
            self.current += 1
            if self.current >= len(self.requests):
                return None if self.said and self.said[-1] == DONE_SAYING else self._say(
                    DONE_SAYING)
            return self._say(self.requests[self.current].ask)
        if request is None:
            return None
        for cue, answer in (
                (("to confirm", "(yes/no)", "shall i go ahead"), "Yes, please go ahead."),
                (("email", "zip code", "your name"), self.task.identity),
                (("which order", "what order", "order number"), request.order),
                (("would you like instead", "available options", "which option"),
                 request.target),
                (("which items", "which item"), request.items),
                (("payment method", "refund go", "price difference", "pay with"),
                 request.payment),
                (("why", "reason"), request.reason),
                (("address",), request.address)):
            if answer and any(phrase in text for phrase in cue):
                return self._say(answer)
        return self._say(request.ask)

    def _say(self, text: str) -> str | None:
        """Say `text`; a customer who would say the same thing a third time in a row gives up
        instead."""
        if self.said[-2:] == [text, text]:
            return None
        self.said.append(text)
        return text


def _request(name: str, arguments: Mapping[str, Any], user: Mapping[str, Any],
             order: Mapping[str, Any] | None, product: Callable[[str], Any]) -> _Request:
    """What the customer says to ask for one gold write, and their answers to its questions."""
    order_id = str(arguments.get("order_id", ""))
    payment = _payment(user, str(arguments.get("payment_method_id", "")))
    if name == "cancel_pending_order":
        reason = ("I ordered it by mistake" if arguments["reason"] == "ordered by mistake"
                  else "I no longer need it")
        return _Request(f"I want to cancel order {order_id} because {reason}.",
                        order=f"Order {order_id}.", reason=f"Because {reason}.")
    if name in ("modify_pending_order_address", "modify_user_address"):
        address = _address(arguments)
        whose = f"the shipping address of order {order_id}" if order_id else (
            "my default address")
        return _Request(f"Please change {whose} to {address}.", order=f"Order {order_id}.",
                        address=address)
    if name == "modify_pending_order_payment":
        return _Request(f"I'd like to pay for order {order_id} with {payment} instead.",
                        order=f"Order {order_id}.", payment=payment)
    assert order is not None
    items = _items(order, arguments["item_ids"], with_options="new_item_ids" in arguments)
    if name == "return_delivered_order_items":
        return _Request(f"I want to return {items} from order {order_id}, refunded to "
                        f"{payment}.", order=f"Order {order_id}.", items=items.capitalize(),
                        payment=payment.capitalize())
    targets = _targets(order, arguments["item_ids"], arguments["new_item_ids"], product)
    verb = "exchange" if name == "exchange_delivered_order_items" else "change"
    return _Request(f"In order {order_id}, I want to {verb} {targets}. Use {payment} for any "
                    f"price difference.", order=f"Order {order_id}.", items=items.capitalize(),
                    target=targets.capitalize(), payment=payment.capitalize())


def _payment(user: Mapping[str, Any], method_id: str) -> str:
    method = (user.get("payment_methods") or {}).get(method_id) or {}
    source = method.get("source")
    if source == "credit_card":
        return f"my {method.get('brand', 'credit')} card ending in {method.get('last_four')}"
    if source == "paypal":
        return "my PayPal"
    return "my gift card" if source == "gift_card" else ""


def _address(arguments: Mapping[str, Any]) -> str:
    street = ", ".join(str(part) for part in (arguments["address1"], arguments["address2"])
                       if part)
    return f"{street}, {arguments['city']}, {arguments['state']} {arguments['zip']}"


def _item(order: Mapping[str, Any], item_id: str) -> Mapping[str, Any]:
    return next(item for item in order["items"] if item["item_id"] == item_id)


def _described(order: Mapping[str, Any], item: Mapping[str, Any], *, with_options: bool) -> str:
    """ "the skateboard (plastic, 28 inch)": options when the item is to change or the order
    holds its name twice."""
    twins = sum(other["name"] == item["name"] for other in order["items"]) > 1
    name = str(item["name"]).lower()
    if not (with_options or twins):
        return f"the {name}"
    return f"the {name} ({', '.join(str(v) for v in item['options'].values())})"


def _items(order: Mapping[str, Any], item_ids: Sequence[str], *, with_options: bool) -> str:
    described = [_described(order, _item(order, item_id),
                            with_options=with_options) for item_id in item_ids]
    return _listed(described)


def _targets(order: Mapping[str, Any], item_ids: Sequence[str], new_item_ids: Sequence[str],
             product: Callable[[str], Any]) -> str:
    """ "the desk lamp (…) for one with brightness high and the …": each item with the options
    of its new variant that differ from its own."""
    parts = []
    for item_id, new_id in zip(item_ids, new_item_ids, strict=True):
        item = _item(order, item_id)
        variant = product(item["product_id"])["variants"][new_id]
        changed = [f"{key} {value}" for key, value in variant["options"].items()
                   if item["options"].get(key) != value]
        parts.append(f"{_described(order, item, with_options=True)} for one with "
                     f"{_listed(changed)}")
    return _listed(parts)


def _listed(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
