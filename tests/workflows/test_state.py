"""The conversation's workflow state reads every shape saved so far and saves the same keys."""

from __future__ import annotations

import json
from typing import Any

import pytest

from appliance.workflows.state import Awaiting, LastAsked, WorkflowState


def _saved() -> dict[str, Any]:
    """A state as the engine saves it mid-run: a return waiting for its confirmation, the
    customer verified, one earlier run switched away from."""
    phase = {"slots": {}, "vars": {}, "confirmed": {}, "said": {}, "looked_up": {},
             "written": {}}
    return {
        "run": {
            "workflow": "return_items", "version": 7,
            "slots": {"order_id": "#W2611340", "item_ids": ["1008292230"]},
            "vars": {"order": {"status": "delivered", "items": [{"item_id": "1008292230"}]}},
            "confirmed": {}, "said": {"return_items:5": "9f2c1e0a3b4d5e6f"},
            "looked_up": {"return_items:1": "0a1b2c3d4e5f6071"}, "written": {},
            "identity": {**phase, "slots": {"email": "olivia.ito5204@example.com"}},
            "texts": ["hi", "I want to return my headphones"],
            "asks": {"order_id": 1},
            "prompt": "Shall I return the headphones?",
            "awaiting": {"step": "return_items:6", "digest": "1234567890abcdef"},
            "asked": ["order_id"],
            "last_asked": {"prompt": "Shall I return the headphones?", "count": 1},
        },
        "history": [{"workflow": "exchange_items", "status": "switched", "outcome": None,
                     "reason": "return_items", "slots": {"order_id": "#W2611340"}}],
        "customer_id": "olivia_ito_5204",
        "assurance": "knowledge",
        "profile": {"tool": "find_user", "args": {"email": "olivia.ito5204@example.com"}},
        "values": {"customer": {"email": "olivia.ito5204@example.com",
                                "name": {"first_name": "Olivia", "last_name": "Ito"}}},
        "stale_profile": True,
        "loose": [],
        "offered_workflow": "cancel_order",
    }


def test_it_round_trips_the_saved_shape() -> None:
    saved = _saved()

    state = WorkflowState.from_json(json.loads(json.dumps(saved)))

    assert state.to_json() == saved
    assert state.running == "return_items"
    assert state.run is not None and state.run.awaiting == Awaiting("return_items:6",
                                                                    "1234567890abcdef")
    assert state.run.last_asked == LastAsked("Shall I return the headphones?", 1)
    assert state.run.identity.slots == {"email": "olivia.ito5204@example.com"}
    assert state.customer is not None and state.customer.lookup is not None
    assert state.customer.lookup.tool == "find_user"
    assert (state.customer_id, state.customer.name, state.customer.email) == (
        "olivia_ito_5204", "Olivia Ito", "olivia.ito5204@example.com")
    assert state.values() == {"customer": saved["values"]["customer"]}
    assert state.customer.assurance == "knowledge"


def test_a_customer_saved_before_levels_were_kept_loads_at_the_contact_level() -> None:
    """Before `assurance` was saved, an email or name + zip was the only way to verify."""
    saved = _saved()
    del saved["assurance"]

    state = WorkflowState.from_json(saved)

    assert state.customer is not None and state.customer.assurance == "contact"
    assert state.to_json()["assurance"] == "contact"
    assert state.offered == "cancel_order" and state.stale_profile
    assert state.last is not None and state.last.ending == "switched"


def test_it_reads_older_rows_that_lack_keys() -> None:
    """A run saved before it confirmed, said or looked anything up, a finished run saved
    without a reason, and no customer."""
    older = {"run": {"workflow": "cancel_order", "version": None, "slots": {}, "vars": {},
                     "identity": {"slots": {}, "vars": {}}, "texts": ["cancel it"]},
             "history": [{"workflow": "order_status", "status": "done",
                          "outcome": "informed", "slots": {}}]}

    state = WorkflowState.from_json(older)

    assert state.running == "cancel_order" and state.customer is None
    assert state.run is not None and state.run.prompt is None and state.run.asked == []
    assert state.run.texts == ["cancel it"] and state.run.confirmed == {}
    assert state.last is not None and state.last.reason is None
    assert state.last.ending == "informed"
    assert WorkflowState.from_json(state.to_json()) == state
    saved = state.to_json()
    for key in ("prompt", "awaiting", "asked", "last_asked"):
        assert key not in saved["run"], "unset keys stay out of the saved run"
    assert not {"customer_id", "profile", "values", "stale_profile",
                "offered_workflow"} & set(saved)


@pytest.mark.parametrize("saved", [None, {}, [], "garbage", {"run": {}},
                                   {"run": {"slots": {"a": 1}}}, {"run": None}])
def test_it_reads_no_run_from_what_holds_none(saved: Any) -> None:
    state = WorkflowState.from_json(saved)

    assert state.run is None and state.running is None
    assert state.to_json() == {"history": [], "loose": []}


def test_it_skips_history_entries_that_are_not_runs() -> None:
    state = WorkflowState.from_json({"history": ["oops", {"workflow": "cancel_order",
                                                          "status": "hand_off"}]})

    assert [entry.workflow for entry in state.history] == ["cancel_order"]
    assert state.last is not None and state.last.ending == "hand_off"


def test_it_shares_nothing_with_the_saved_dict() -> None:
    saved = _saved()
    state = WorkflowState.from_json(saved)
    assert state.run is not None

    state.run.slots["item_ids"].append("changed")
    state.run.texts.append("another message")
    out = state.to_json()
    out["history"][0]["slots"]["order_id"] = "changed"

    assert saved == _saved()
    assert state.history[0].slots == {"order_id": "#W2611340"}


@pytest.mark.parametrize(("profile", "name"), [
    ({"name": {"first_name": "Olivia", "last_name": "Ito"}}, "Olivia Ito"),
    ({"name": {"first_name": "Olivia"}}, "Olivia"),
    ({"name": "Olivia Ito"}, "Olivia Ito"),
    ({"name": {}}, None),
    ({}, None),
])
def test_it_reads_the_customers_name_as_the_profile_gives_it(
        profile: dict[str, Any], name: str | None) -> None:
    state = WorkflowState.from_json({"customer_id": "c1", "values": {"customer": profile}})

    assert state.customer is not None and state.customer.name == name
    assert state.customer.email is None and state.customer.lookup is None
