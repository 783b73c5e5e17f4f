"""Trials and pass^k: the estimator against values worked out by hand, the phrasings a trial
says, and a real run of two trials through the live engine against Lumen Goods' order
system."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.evals.cases import EvalSuite
from appliance.evals.runner import run_suites, trial_seed
from appliance.evals.scores import CaseTrials, by_suite, pass_hat_k, tally
from appliance.services import Services
from appliance.workflows.schema import DefinitionError, parse_document


def test_pass_hat_k_is_c_choose_k_over_n_choose_k_averaged_over_cases() -> None:
    cases = [CaseTrials("cancel_order", "a", trials=4, passes=4),
             CaseTrials("cancel_order", "b", trials=4, passes=2),
             CaseTrials("return_items", "c", trials=4, passes=0)]
    # b: C(2,1)/C(4,1) = 1/2, C(2,2)/C(4,2) = 1/6, then 0.
    assert pass_hat_k(cases) == {"1": round((1 + 0.5 + 0) / 3, 4),
                                 "2": round((1 + 1 / 6) / 3, 4),
                                 "3": round(1 / 3, 4), "4": round(1 / 3, 4)}
    assert by_suite(cases) == {"cancel_order": {"1": 0.75, "2": round(7 / 12, 4),
                                                "3": 0.5, "4": 0.5},
                               "return_items": {"1": 0.0, "2": 0.0, "3": 0.0, "4": 0.0}}


def test_a_case_that_passes_sometimes_falls_with_k() -> None:
    flaky = CaseTrials("s", "flaky", trials=3, passes=2)
    assert [flaky.pass_hat(k) for k in (1, 2, 3)] == [2 / 3, 1 / 3, 0.0]
    with pytest.raises(ValueError):
        flaky.pass_hat(4)


def test_trials_are_tallied_per_case_in_the_order_cases_first_ran() -> None:
    ran = [("s", "a", True), ("s", "b", False), ("s", "a", False), ("s", "b", False)]
    assert tally(ran) == [CaseTrials("s", "a", 2, 1), CaseTrials("s", "b", 2, 0)]
    assert pass_hat_k([]) == {}


PHRASED = """\
workflow: cancel_order
cases:
  - name: reason given up front
    turns:
      - ["cancel order #W3657213, I ordered it by mistake",
         "I ordered #W3657213 by mistake, please cancel it",
         "please cancel #W3657213 - ordered it by mistake"]
      - olivia.ito5204@example.com
      - [yes, "yes please", "yes, go ahead"]
    expect:
      writes: [{tool: cancel_order, args: {order_id: "#W3657213", reason: ordered by mistake}}]
      state: {/orders/%23W3657213: {status: cancelled}}
      outcome: resolved
"""


def _suite(text: str) -> EvalSuite:
    return parse_document(text, EvalSuite, "cancel_order.yaml")


def test_the_first_trial_says_the_case_as_written_and_later_ones_draw_from_the_seed() -> None:
    case = _suite(PHRASED).cases[0]
    written = ["cancel order #W3657213, I ordered it by mistake",
               "olivia.ito5204@example.com", "yes"]

    assert case.said(0, seed=1) == case.said(0, seed=2) == written
    draws = [case.said(trial, seed=1) for trial in range(1, 9)]
    assert draws == [case.said(trial, seed=1) for trial in range(1, 9)]  # the seed repeats
    assert len({tuple(draw) for draw in draws}) > 1
    assert all(draw[1] == written[1] for draw in draws)
    assert trial_seed(1, "cancel_order", case.name, 1) != trial_seed(1, "cancel_order",
                                                                      case.name, 2)


def test_a_bare_yes_in_a_list_of_phrasings_is_the_word_and_an_empty_list_is_refused() -> None:
    case = _suite(PHRASED.replace('[yes, "yes please", "yes, go ahead"]', "[yes, no]")).cases[0]
    assert case.turns[2] == ("yes", "no")
    with pytest.raises(DefinitionError, match="must not be empty"):
        _suite(PHRASED.replace('[yes, "yes please", "yes, go ahead"]', "[]"))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_each_trial_runs_from_a_fresh_system_with_its_own_phrasing(
        services: Services, lumen: Any) -> None:
    results = run_suites(services, lumen, [_suite(PHRASED)], trials=3, seed=4)

    assert [result.trial for result in results] == [0, 1, 2]
    assert all(result.passed for result in results), [r.problems for r in results]
    said = [[text for role, text in result.transcript if role == "customer"]
            for result in results]
    assert said == [_suite(PHRASED).cases[0].said(trial, seed=4) for trial in range(3)]
    assert pass_hat_k(tally((r.workflow, r.name, r.passed) for r in results)) == {
        "1": 1.0, "2": 1.0, "3": 1.0}
