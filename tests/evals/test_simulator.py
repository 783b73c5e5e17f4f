"""Simulated customers: a goal played against the agent. The deterministic customer answers
from its facts in its persona's words and corrects what it first said; the simulator owns its
own mistakes; goals run through the live engine against Lumen Goods' order system; where a
model is routed to `simulate`, the LLM customer plays (here the tiny model: its contract,
not its skill)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from appliance.evals.cases import EvalSuite, Goal
from appliance.evals.runner import customer_for, run_suites
from appliance.evals.simulator import LlmCustomer, SimulatedCustomer, contradictions
from appliance.llm.router import ModelRouter
from appliance.services import Services
from appliance.workflows.schema import DefinitionError, parse_document

CANCEL = """\
suite: goals
goals:
  - name: cancel by mistake
    wants: ["I want to cancel order {order}", "Please cancel {order}"]
    facts:
      email: olivia.ito5204@example.com
      order: "#W3657213"
      reason: {value: I ordered it by mistake, first: I no longer need it}
    accepts: ["#W3657213", ordered by mistake]
    persona: %s
    expect:
      writes: [{tool: cancel_order, args: {order_id: "#W3657213", reason: ordered by mistake}}]
      state: {/orders/%%23W3657213: {status: cancelled}}
      outcome: resolved
"""
CONFIRM = ("To confirm: cancel order #W3657213 because it is ordered by mistake? "
           "Shall I go ahead (yes/no)?")


def _suite(persona: str = "plain") -> EvalSuite:
    return parse_document(CANCEL % persona, EvalSuite, "goals.yaml")


def _goal(persona: str = "plain") -> Goal:
    return _suite(persona).goals[0]


def test_it_answers_each_question_from_its_facts_and_judges_the_confirmation() -> None:
    customer = SimulatedCustomer(_goal())
    assert customer.opening() in ("I want to cancel order #W3657213", "Please cancel #W3657213")
    assert "olivia.ito5204@example.com" in str(customer.answer("What's your email address?"))
    assert "I ordered it by mistake" in str(customer.answer("Why are you cancelling?"))
    assert customer.answer(CONFIRM) in ("Yes, please go ahead.", "Yes.", "Yes, that's right.")
    assert customer.answer(CONFIRM.replace("ordered by mistake", "no longer needed")) in (
        "No, that's not right.", "No, that isn't what I asked for.")
    assert customer.answer("Done. Is there anything else I can help with?") in (
        "No, that's all. Thank you!", "That's everything, thanks.")
    assert customer.answer("Have a nice day!") is None


def test_the_same_seed_says_the_same_and_other_seeds_vary() -> None:
    def conversation(seed: str) -> list[str | None]:
        customer = SimulatedCustomer(_goal("chatty"), seed=seed)
        return [customer.opening(), customer.answer("What's your email?"),
                customer.answer("What's the reason?")]

    assert conversation("7") == conversation("7")
    assert len({tuple(conversation(str(seed))) for seed in range(8)}) > 1
    terse = SimulatedCustomer(_goal("terse"))
    terse.opening()
    assert terse.answer("Which order, and your email?") == (
        "olivia.ito5204@example.com, #W3657213")


def test_a_customer_who_changes_their_mind_corrects_the_first_confirmation() -> None:
    customer = SimulatedCustomer(_goal("changes_mind"))
    customer.opening()
    assert "I no longer need it" in str(customer.answer("Why are you cancelling?"))
    assert contradictions(_goal("changes_mind"), customer) == [
        "never corrected reason to 'I ordered it by mistake'"]

    correction = customer.answer(CONFIRM.replace("ordered by mistake", "no longer needed"))

    assert correction == "Actually, sorry, I meant: I ordered it by mistake."
    assert contradictions(_goal("changes_mind"), customer) == []


def test_the_simulator_owns_a_value_its_goal_does_not_hold() -> None:
    customer = SimulatedCustomer(_goal())
    customer.said += ["It's #W3657214", "olivia@example.com", "#W3657213 and 07/22/1985"]
    assert contradictions(_goal(), customer) == [
        "said 'olivia@example.com' for email ('olivia.ito5204@example.com' in the goal)",
        "said '#W3657214' for order ('#W3657213' in the goal)"]


@pytest.mark.parametrize(("change", "problem"), [
    (("Please cancel {order}", "Please cancel {parcel}"), "not a fact"),
    (("first: I no longer need it", "first: null"), "needs a fact with `first`"),
])
def test_a_goal_that_cannot_be_played_is_refused(change: tuple[str, str], problem: str) -> None:
    with pytest.raises(DefinitionError, match=problem):
        parse_document((CANCEL % "changes_mind").replace(*change), EvalSuite, "goals.yaml")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_goals_are_played_through_the_engine_and_judged_by_the_end_state(
        services: Services, lumen: Any) -> None:
    """Every persona reaches the same write; a goal missing what the agent asks for fails as
    the simulator's fault, not the agent's."""
    personas = ("plain", "terse", "chatty", "angry", "changes_mind")
    suites = [_suite(persona) for persona in personas]
    lacking = parse_document((CANCEL % "plain").replace(
        '      email: olivia.ito5204@example.com\n', '').replace(
        "cancel by mistake", "cancel without an email"), EvalSuite, "goals.yaml")

    results = run_suites(services, lumen, [*suites, lacking], trials=2)

    played = [r for r in results if r.name == "cancel by mistake"]
    assert len(played) == 10 and all(r.passed for r in played), [
        (r.problems, r.transcript) for r in played if not r.passed]
    failed = [r for r in results if r.name == "cancel without an email"]
    assert failed and all(not r.passed and not r.counts for r in failed)
    assert all("had no answer to" in str(r.simulator_error) for r in failed)


def test_a_model_routed_to_simulate_plays_the_goal(services: Services) -> None:
    models = services.router.models
    reply = services.router.route("reply")
    router = ModelRouter(models, {"reply": reply, "simulate": reply})
    with_model = dataclasses.replace(services, router=router)
    goal = _goal()

    assert isinstance(customer_for(services, goal, "goals", 0, 0), SimulatedCustomer)
    customer = customer_for(with_model, goal, "goals", 0, 0)
    assert isinstance(customer, LlmCustomer)
    assert customer.opening() == "I want to cancel order #W3657213"
    said = customer.answer("What's the email address on your account?")
    assert said is None or (said.strip() and said == customer.said[-1])
