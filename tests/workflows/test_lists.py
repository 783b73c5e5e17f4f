"""Slots that hold several of an order's items: every item named in one message is taken,
"everything except" and a correction at the confirmation change the list, and each item's
new option is read from the part of the message about it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from appliance.demo.seed import WORKFLOWS_DIR
from appliance.workflows.extract import extract
from appliance.workflows.schema import Workflow, parse_workflow

DATA = WORKFLOWS_DIR.parent / "retail" / "data"
#: Yusuf Rossi's delivered order: Headphones, Vacuum Cleaner, Mechanical Keyboard, Smart
#: Thermostat, Smart Watch.
ORDER = "#W2378156"
HEADPHONES, VACUUM, KEYBOARD, THERMOSTAT, WATCH = (
    "4202497723", "4602305039", "1151293680", "4983901480", "9408160950")


def workflow(name: str) -> Workflow:
    path = WORKFLOWS_DIR / "lumen-goods" / "workflows" / f"{name}.yaml"
    return parse_workflow(path.read_text(), path.name)


@pytest.fixture(scope="module")
def order() -> dict[str, Any]:
    return dict(json.loads((DATA / "orders.json").read_text())[ORDER])


@pytest.mark.parametrize(("text", "items"), [
    ("the headphones and the smart watch", [HEADPHONES, WATCH]),
    ("return the headphones and the watch from order #W2378156", [HEADPHONES, WATCH]),
    ("the robotic vacuum", [VACUUM]),
    ("all of them", [HEADPHONES, VACUUM, KEYBOARD, THERMOSTAT, WATCH]),
    ("everything except the vacuum", [HEADPHONES, KEYBOARD, THERMOSTAT, WATCH]),
    ("all but the vacuum and the keyboard", [HEADPHONES, THERMOSTAT, WATCH]),
    ("the headphones but not the smart watch", [HEADPHONES]),
    ("I'm not happy with the headphones", [HEADPHONES]),
    ("the headphones, water resistance not resistant, and the smart watch", [HEADPHONES, WATCH]),
])
def test_every_item_a_message_names_is_taken(
        order: dict[str, Any], text: str, items: list[str]) -> None:
    slot = workflow("return_items").slots["items"]
    assert extract(slot, text, {"order": order}, asked=True) == items


@pytest.mark.parametrize(("text", "current", "items"), [
    ("also the keyboard", [HEADPHONES], [HEADPHONES, KEYBOARD]),
    ("not the watch", [HEADPHONES, WATCH], [HEADPHONES]),
    ("no, take out the watch", [HEADPHONES, WATCH], [HEADPHONES]),
    ("actually, make it the thermostat instead", [HEADPHONES], [THERMOSTAT]),
])
def test_a_correction_at_the_confirmation_changes_the_list(
        order: dict[str, Any], text: str, current: list[str], items: list[str]) -> None:
    slot = workflow("return_items").slots["items"]
    assert extract(slot, text, {"order": order}, asked=False, current=current) == items


def test_one_of_two_identical_items_is_one_unless_the_customer_says_both() -> None:
    slot = workflow("return_items").slots["items"]
    bottle = {"item_id": "1", "name": "Water Bottle", "options": {"color": "green"}}
    order = {"items": [bottle, dict(bottle), {"item_id": "2", "name": "Pet Bed", "options": {}}]}
    assert extract(slot, "the water bottle", {"order": order}, asked=True) == ["1"]
    assert extract(slot, "both water bottles", {"order": order}, asked=True) == ["1", "1"]
    assert extract(slot, "the water bottles", {"order": order}, asked=True) == ["1", "1"]
    assert extract(slot, "pet hair everywhere", {"order": order}, asked=True) is None


def test_each_items_new_option_comes_from_the_part_of_the_message_about_it(
        order: dict[str, Any]) -> None:
    products = json.loads((DATA / "products.json").read_text())
    chosen = [item for item in order["items"] if item["item_id"] in (HEADPHONES, WATCH)]
    values = {"order": order, "items": [HEADPHONES, WATCH],
              "products": [products[item["product_id"]] for item in chosen]}
    slot = workflow("exchange_items").slots["new_items"]
    text = "the headphones for the black over-ear wireless ones and the watch for the silver one"
    assert extract(slot, text, values, asked=True) == ["7493556126", "9811090008"]
    # What the customer does not mention stays as it is: the same watch, in silver.
    assert extract(slot, "the watch in silver and the headphones in black, over-ear wireless",
                   values, asked=True) == ["7493556126", "9811090008"]


def test_two_items_of_one_name_are_told_apart_by_what_the_customer_has() -> None:
    slot = workflow("exchange_items").slots["items"]
    board = {"name": "Skateboard", "product_id": "1968349452"}
    order = {"items": [
        {**board, "item_id": "4545791457",
         "options": {"deck material": "plastic", "length": "28 inch", "design": "plain"}},
        {**board, "item_id": "3098764622",
         "options": {"deck material": "plastic", "length": "34 inch", "design": "plain"}}]}
    text = "the skateboard (plastic, 34 inch, plain) for one with deck material bamboo and " \
           "length 28 inch"
    assert extract(slot, text, {"order": order}, asked=True) == ["3098764622"]
    assert extract(slot, "the skateboard (plastic, 28 inch)", {"order": order},
                   asked=True) == ["4545791457"]


def test_two_items_of_one_name_each_get_the_option_said_after_their_description() -> None:
    orders = json.loads((DATA / "orders.json").read_text())
    products = json.loads((DATA / "products.json").read_text())
    order = orders["#W3002300"]  # two Bluetooth Speakers: green and black
    ids = ["9179378709", "7597543861"]
    chosen = [item for item in order["items"] if item["item_id"] in ids]
    values = {"order": order, "items": ids,
              "products": [products[item["product_id"]] for item in chosen]}
    slot = workflow("exchange_items").slots["new_items"]
    text = ("the bluetooth speaker (green, 10 hours, no) for one with color red, battery life "
            "20 hours and water resistance yes and the bluetooth speaker (black, 10 hours, no) "
            "for one with color blue and battery life 20 hours")
    assert extract(slot, text, values, asked=True) == ["7617930199", "2635605237"]
