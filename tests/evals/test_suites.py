"""Eval suites beyond one workflow: a suite named for itself (the knowledge's answers), facts
worded several ways, and the sources a reply must cite. Real engine, embedder, FAISS, tiny
model and Lumen Goods' order system."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.demo.seed import seed_knowledge
from appliance.evals.cases import EvalSuite, load_suites
from appliance.evals.runner import run_suites
from appliance.services import Services
from appliance.workflows.schema import DefinitionError, parse_document

KNOWLEDGE_SUITE = """\
suite: knowledge
cases:
  - name: the offer is said one way of two, and the returns policy is cited
    turns: ["how long do refunds take?"]
    expect:
      writes: []
      says: [[words nobody says, Just say yes]]
      cites: [returns]
      outcome: none
  - name: a fact never said and a source never cited
    turns: ["how long do refunds take?"]
    expect:
      says: [[words nobody says, nor these]]
      cites: [Card fees]
  - name: a question the knowledge does not cover is declined
    turns: ["Do you price match if I find it cheaper at another store?"]
    expect:
      writes: []
      declines: true
  - name: a question the knowledge answers is not a decline
    turns: ["how long do refunds take?"]
    expect:
      declines: true
"""


def _suite(text: str) -> EvalSuite:
    return parse_document(text, EvalSuite, "suite.yaml")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_suite_of_its_own_checks_facts_and_citations(services: Services, lumen: Any) -> None:
    seed_knowledge(services, only="lumen-goods")

    kept, missed, declined, answered = run_suites(services, lumen, [_suite(KNOWLEDGE_SUITE)])

    assert (kept.workflow, missed.workflow) == ("knowledge", "knowledge")
    assert kept.passed, kept.problems
    assert missed.problems[0] == "never said 'words nobody says' or 'nor these'"
    assert missed.problems[1].startswith("never cited 'Card fees' (cited: ['Returns")
    assert len(missed.problems) == 2
    # Declining: no source cited, and a colleague offered (the brand's no-answer message).
    assert declined.passed, (declined.problems, declined.transcript)
    assert answered.problems[0].startswith("answered from 'Returns")
    assert answered.problems[-1] == "offered no colleague"


def test_a_case_that_declines_cites_nothing() -> None:
    with pytest.raises(DefinitionError, match="a case that declines cites nothing"):
        _suite("suite: knowledge\ncases: [{name: x, turns: [hi], "
               "expect: {declines: true, cites: [Returns]}}]")


@pytest.mark.parametrize("names", [
    "cases: [{name: x, turns: [hi], expect: {}}]",
    "workflow: cancel_order\nsuite: knowledge\ncases: [{name: x, turns: [hi], expect: {}}]",
])
def test_a_suite_names_its_workflow_or_itself_exactly_once(names: str) -> None:
    with pytest.raises(DefinitionError, match="name either the workflow"):
        _suite(names)


def test_suites_are_chosen_by_workflow_or_by_their_own_name(tmp_path: Path) -> None:
    case = "cases: [{name: x, turns: [hi], expect: {}}]\n"
    (tmp_path / "cancel_order.yaml").write_text("workflow: cancel_order\n" + case)
    (tmp_path / "knowledge.yaml").write_text("suite: knowledge\n" + case)

    assert [s.name for s in load_suites(tmp_path)] == ["cancel_order", "knowledge"]
    assert [s.name for s in load_suites(tmp_path, "knowledge")] == ["knowledge"]
    assert [s.workflow for s in load_suites(tmp_path, "cancel_order")] == ["cancel_order"]
