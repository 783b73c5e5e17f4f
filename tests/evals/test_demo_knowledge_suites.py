"""The demo brands' knowledge suites hold facts their sources state: a case that expects a fact
and a citation names an article of the help center that says it, and a case that must decline
asks what no article covers. Checked on the shipped files, so a wrong expectation is caught
here rather than read as the agent's failure."""

from __future__ import annotations

import json
import re

import pytest

from appliance.demo.seed import KNOWLEDGE_DIR, WORKFLOWS_DIR
from appliance.evals.cases import EvalCase, load_suites

HELP_CENTER = KNOWLEDGE_DIR / "rho-bank" / "help-center.jsonl"
SUITE = load_suites(WORKFLOWS_DIR / "rho-bank" / "evals", "knowledge")
CASES = [case for suite in SUITE for case in suite.cases]


def _articles() -> list[dict[str, str]]:
    with HELP_CENTER.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def _normal(text: str) -> str:
    # An en dash as a hyphen ("7-10"), and any run of spaces as one.
    return re.sub(r"\s+", " ", text.replace("\u2013", "-")).lower()


def test_rho_bank_has_a_knowledge_suite_with_answers_and_declines() -> None:
    assert len([case for case in CASES if case.expect.says]) >= 10
    assert len([case for case in CASES if case.expect.declines]) >= 5
    assert all(case.expect.writes == () for case in CASES)


@pytest.mark.parametrize("case", [case for case in CASES if case.expect.cites],
                         ids=lambda case: case.name)
def test_a_cited_article_states_the_fact_the_answer_must_hold(case: EvalCase) -> None:
    expect = case.expect
    for cited in expect.cites:
        articles = [a for a in _articles() if cited.lower() in a["title"].lower()]
        assert articles, f"no help-center title holds {cited!r}"
        for fact in expect.says:
            alternatives = (fact,) if isinstance(fact, str) else fact
            assert any(_normal(one) in _normal(article["content"] + " " + article["title"])
                       for article in articles for one in alternatives), (cited, fact)


@pytest.mark.parametrize("case", [case for case in CASES if case.expect.declines],
                         ids=lambda case: case.name)
def test_what_a_case_must_decline_is_in_no_article(case: EvalCase) -> None:
    # The subject of the question (its rarest words) appears in no title: the help center
    # does not cover it, so any answer would come from an article about something else.
    question = case.said()[0].lower()
    subjects = {"mortgage", "auto loan", "12-month cd", "roth ira", "life insurance",
                "coin counting"}
    asked = [subject for subject in subjects if subject in question]
    assert asked, f"no known subject in {question!r}"
    titles = " ".join(article["title"].lower() for article in _articles())
    assert not any(subject in titles for subject in asked), asked
