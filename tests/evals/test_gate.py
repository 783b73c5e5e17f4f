"""The release gate on Lumen Goods' real workflows, engine and order system: a draft whose
write sends the wrong reason is refused with its failing cases while the live version keeps
serving customers; a good draft publishes; only an it_admin may force, and forcing is
audited; a change no suite covers passes, recorded as such."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gate_support import (
    BROKEN_SOURCE,
    CASES,
    GOOD_SOURCE,
    knowledge_dropping_the_returns_page,
    short_cancel_suite,
    with_test_system,
)
from retail_support import RetailBackend

from appliance.agent.conversations import TurnResult
from appliance.brands import policy_of
from appliance.db.models import AuditLog
from appliance.errors import InvalidRequest, PermissionDenied
from appliance.evals.candidate import Candidate, trying
from appliance.evals.gate import Force, GateRefused, GateResult, ReleaseGate
from appliance.services import Services

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

UP_FRONT = ["Please cancel order W3657213, I ordered it by mistake. My email is "
            "olivia.ito5204@example.com", "yes please"]


@pytest.fixture
def lumen(lumen: Any, services: Services, retail_backend: RetailBackend) -> Any:
    """Lumen Goods with its order system as its evals' test system."""
    return with_test_system(services, lumen, retail_backend.url)


@pytest.fixture
def gate(services: Services, lumen: Any) -> ReleaseGate:
    short_cancel_suite(services, lumen)
    return ReleaseGate(services)


def customer_cancels(services: Services, brand: Any, backend: RetailBackend) -> list[Any]:
    """A customer on the web channel cancels an order they ordered by mistake; the reasons
    the order system was sent."""
    backend.reset()
    conversation, _ = services.conversations.start(brand, {}, "web")
    for text in UP_FRONT:
        for event in services.conversations.reply(brand, conversation.public_id, text):
            assert not isinstance(event, TurnResult) or event.message.text
    assert backend.order("#W3657213")["status"] == "cancelled"
    return [call.arguments["reason"]
            for call in services.workflows.tool_calls(brand, conversation.id)
            if call.tool == "cancel_order"]


def audits(action: str) -> list[AuditLog]:
    return list(AuditLog.select().where(AuditLog.action == action).order_by(AuditLog.id))


def test_it_refuses_a_draft_whose_write_is_wrong_and_the_live_version_keeps_serving(
        services: Services, lumen: Any, gate: ReleaseGate,
        retail_backend: RetailBackend) -> None:
    draft = services.workflows.save_draft(lumen, BROKEN_SOURCE, "editor")

    with pytest.raises(GateRefused) as refused:
        gate.publish_workflow(lumen, "cancel_order", "editor")

    result = refused.value.result
    assert (refused.value.status, refused.value.code) == (409, "eval_gate_refused")
    assert result.suites == ("cancel_order",)
    assert (result.live, round(result.draft or 0, 2)) == (1.0, 0.67)
    assert [failure.case for failure in result.failures] == ["everything up front"]
    assert "reason': 'no longer needed'" in result.failures[0].why
    assert "everything up front" in refused.value.message
    assert "below the brand's floor 0.90" in refused.value.message
    workflow = services.workflows.get(lumen, "cancel_order")
    assert workflow.published_version == draft.number - 1
    assert services.workflows.version(workflow).status == "draft"
    assert audits("workflow.release_gate.refuse")[-1].detail["failures"][0]["case"] == (
        "everything up front")
    assert customer_cancels(services, lumen, retail_backend) == ["ordered by mistake"]


def test_a_customer_served_while_the_gate_tries_a_draft_gets_what_is_published(
        services: Services, lumen: Any, retail_backend: RetailBackend) -> None:
    draft = services.workflows.save_draft(lumen, BROKEN_SOURCE, "editor")
    candidate = Candidate(lumen.id, workflows=services.workflows.with_draft(lumen, draft))

    with trying(candidate):
        reasons = customer_cancels(services, lumen, retail_backend)

    assert reasons == ["ordered by mistake"]


def test_it_publishes_a_good_draft_and_audits_the_pass(
        services: Services, lumen: Any, gate: ReleaseGate) -> None:
    draft = services.workflows.save_draft(lumen, GOOD_SOURCE, "editor")

    published, result = gate.publish_workflow(lumen, "cancel_order", "editor")

    assert published.number == draft.number and published.status == "published"
    assert (result.passed, result.draft, result.live, result.failures) == (True, 1.0, 1.0, ())
    entry = audits("workflow.release_gate.pass")[-1]
    assert (entry.actor, entry.target, entry.detail["draft"]) == (
        "editor", "lumen-goods/cancel_order", 1.0)


def test_an_it_admin_forces_a_refused_draft_with_a_reason_and_it_is_audited(
        services: Services, lumen: Any, gate: ReleaseGate) -> None:
    draft = services.workflows.save_draft(lumen, BROKEN_SOURCE, "editor")
    with pytest.raises(PermissionDenied):
        gate.publish_workflow(lumen, "cancel_order", "editor",
                              force=Force("trust me", "cx_editor"))
    with pytest.raises(InvalidRequest, match="needs a reason"):
        gate.publish_workflow(lumen, "cancel_order", "admin", force=Force("  ", "it_admin"))

    published, result = gate.publish_workflow(
        lumen, "cancel_order", "admin", force=Force("the order system ignores the reason",
                                                    "it_admin"))

    assert published.number == draft.number and not result.passed
    entry = audits("workflow.release_gate.force")[-1]
    assert entry.actor == "admin"
    assert entry.detail["reason"] == "the order system ignores the reason"
    assert entry.detail["failures"][0]["case"] == "everything up front"
    assert entry.detail["passed"] is False


def test_a_check_is_reused_only_while_the_draft_and_what_is_live_are_unchanged(
        services: Services, lumen: Any, gate: ReleaseGate) -> None:
    draft = services.workflows.save_draft(lumen, BROKEN_SOURCE, "editor")
    checked = gate.check_workflow(lumen, draft)
    stored = GateResult.from_dict(checked.as_dict())
    assert stored == checked and not checked.passed
    services.workflows.save_draft(lumen, GOOD_SOURCE, "editor")  # the draft changed since

    _, result = gate.publish_workflow(lumen, "cancel_order", "editor", checked=stored)

    assert result.passed and result.basis != checked.basis


def test_a_change_no_suite_covers_passes_with_a_note(
        services: Services, lumen: Any, gate: ReleaseGate) -> None:
    services.suites.delete(lumen, "cancel_order", "test")
    services.workflows.save_draft(lumen, BROKEN_SOURCE, "editor")

    _, result = gate.publish_workflow(lumen, "cancel_order", "editor")

    assert (result.passed, result.suites, result.note) == (True, (), "no suites")
    assert audits("workflow.release_gate.pass")[-1].detail["note"] == "no suites"



def test_it_refuses_a_knowledge_draft_that_drops_the_article_a_case_cites(
        services: Services, lumen: Any, tmp_path: Path) -> None:
    live, draft = knowledge_dropping_the_returns_page(services, lumen, tmp_path)
    gate = ReleaseGate(services)

    with pytest.raises(GateRefused) as refused:
        gate.publish_knowledge(lumen, draft.number, "editor")

    result = refused.value.result
    assert (result.suites, result.live, result.draft) == (("knowledge",), 1.0, 0.0)
    assert [(f.suite, f.case) for f in result.failures] == [("knowledge", "the return window")]
    assert "never cited 'Return policy'" in refused.value.message
    assert services.knowledge.published(lumen) == live
    assert services.knowledge.search(lumen, "return window")[1][0].title == "Return policy"
    assert audits("knowledge.release_gate.refuse")[-1].target == "lumen-goods"


def test_a_brand_without_a_test_system_is_never_evaluated_against_production(
        services: Services, lumen: Any) -> None:
    # Its tools are the order system at a URL that is neither a test system nor a demo one.
    brand = with_test_system(services, lumen, None)
    short_cancel_suite(services, brand)
    services.workflows.save_draft(brand, BROKEN_SOURCE, "editor")

    _, result = ReleaseGate(services).publish_workflow(brand, "cancel_order", "editor")

    assert (result.passed, result.suites, result.note) == (
        True, (), "no test system (set the brand's evals.test_base_url)")
    assert services.workflows.tool_calls(brand) == [], "no conversation called a tool"


def _only_the_short_cancel_suite(services: Services, brand: Any) -> None:
    """A threshold runs every suite of the brand: keep the three cancel_order cases only."""
    for record in services.suites.records(brand):
        if record.name != "cancel_order":
            services.suites.delete(brand, record.name, "test")


def test_a_threshold_that_hands_every_customer_off_is_refused_and_the_policy_kept(
        services: Services, lumen: Any, gate: ReleaseGate,
        retail_backend: RetailBackend) -> None:
    _only_the_short_cancel_suite(services, lumen)
    live = policy_of(lumen)
    draft = live.model_copy(update={"supervision": live.supervision.model_copy(
        update={"human_request_threshold": 0.0})})

    with pytest.raises(GateRefused) as refused:
        gate.publish_policy(lumen, draft, "admin")

    result = refused.value.result
    assert result.change == "policy supervision"
    assert (result.live, result.draft) == (1.0, 0.0)
    assert {failure.case for failure in result.failures} == set(CASES)
    assert policy_of(services.brands.get("lumen-goods")) == live
    assert audits("policy.release_gate.refuse")[-1].target == "lumen-goods"
    # The customers served meanwhile, and after, get the policy that is live.
    assert customer_cancels(services, lumen, retail_backend) == ["ordered by mistake"]


def test_a_threshold_that_keeps_the_suites_passing_is_applied(
        services: Services, lumen: Any, gate: ReleaseGate) -> None:
    _only_the_short_cancel_suite(services, lumen)
    live = policy_of(lumen)
    draft = live.model_copy(update={"knowledge_min_score": 0.55})

    updated, result = gate.publish_policy(lumen, draft, "admin")

    assert (result.passed, result.suites, result.draft) == (True, ("cancel_order",), 1.0)
    assert policy_of(updated).knowledge_min_score == 0.55
    assert audits("policy.release_gate.pass")[-1].detail["change"] == (
        "policy knowledge_min_score")


def test_a_change_of_words_runs_no_suite(services: Services, lumen: Any,
                                         gate: ReleaseGate) -> None:
    draft = policy_of(lumen).model_copy(update={"no_answer_message": "I can't say, sorry."})

    updated, result = gate.publish_policy(lumen, draft, "admin")

    assert (result.suites, result.note) == ((), "no threshold changed")
    assert policy_of(updated).no_answer_message == "I can't say, sorry."


def test_the_cli_sets_a_policy_and_a_refusal_exits_1(
        services: Services, lumen: Any, gate: ReleaseGate, tmp_path: Path,
        invoke: Any) -> None:
    _only_the_short_cancel_suite(services, lumen)
    (tmp_path / "words.yaml").write_text("no_answer_message: I can't say, sorry.\n")
    (tmp_path / "handoff.yaml").write_text("supervision: {human_request_threshold: 0.0}\n")
    (tmp_path / "typo.yaml").write_text("no_answer_mesage: hi\n")

    words = invoke("brands", "set-policy", "lumen-goods", "--file", str(tmp_path / "words.yaml"))
    handoff = invoke("brands", "set-policy", "lumen-goods", "--file",
                     str(tmp_path / "handoff.yaml"))
    typo = invoke("brands", "set-policy", "lumen-goods", "--file", str(tmp_path / "typo.yaml"))

    assert words.exit_code == 0, words.output
    assert "lumen-goods: policy updated (no_answer_message)" in words.output
    assert handoff.exit_code == 1
    assert "FAIL cancel_order / everything up front" in handoff.output
    assert isinstance(typo.exception, InvalidRequest) and "no_answer_mesage" in str(
        typo.exception)
    policy = policy_of(services.brands.get("lumen-goods"))
    assert policy.no_answer_message == "I can't say, sorry."
    assert policy.supervision.human_request_threshold == 0.5


def test_a_policy_file_changes_the_nested_fields_it_names_and_keeps_the_others(
        services: Services, lumen: Any, gate: ReleaseGate, tmp_path: Path,
        invoke: Any) -> None:
    _only_the_short_cancel_suite(services, lumen)
    (tmp_path / "words.yaml").write_text("supervision: {repeated_question_turns: 4}\n"
                                         "business_hours: {timezone: Europe/Paris}\n")
    before = policy_of(lumen)

    changed = invoke("brands", "set-policy", "lumen-goods", "--file",
                     str(tmp_path / "words.yaml"))

    assert changed.exit_code == 0, changed.output
    after = policy_of(services.brands.get("lumen-goods"))
    assert after.supervision == before.supervision.model_copy(
        update={"repeated_question_turns": 4})
    assert after.business_hours is not None and after.business_hours.timezone == "Europe/Paris"


HOURS = """\
name: store_hours
title: Store hours
triggers:
  examples: [when are you open, what are your opening hours]
requires_identity: false
outcome: informed
steps:
  - say: We're open 9am to 5pm.
"""
HOURS_SUITE = """\
workflow: store_hours
cases:
  - name: the hours
    turns: ["when are you open?"]
    expect: {writes: [], says: ["%s"]}
"""
#: Knowledge cases no version can pass here (nothing is published): standing failures. The
#: new triggers take the first question from the knowledge, not the second.
FAILING_KNOWLEDGE = """\
suite: knowledge
cases:
  - name: opening hours, now the workflow's
    turns: ["what are your opening hours?"]
    expect: {writes: [], cites: [Store hours]}
  - name: refunds, still the knowledge's
    turns: ["how long do refunds take?"]
    expect: {writes: [], cites: [Refunds]}
"""


@pytest.mark.parametrize(("expected", "passed"), [("9am to 5pm", True), ("10am", False)])
def test_a_new_workflow_is_held_to_the_floor_on_its_own_suite_only(
        services: Services, lumen: Any, expected: str, passed: bool) -> None:
    _only_the_short_cancel_suite(services, lumen)
    services.suites.save(lumen, FAILING_KNOWLEDGE, "test", "knowledge.yaml")
    services.suites.save(lumen, HOURS_SUITE % expected, "test", "store_hours.yaml")
    services.workflows.save_draft(lumen, HOURS, "editor")

    result = ReleaseGate(services).check_workflow(
        lumen, services.workflows.version(services.workflows.get(lumen, "store_hours")))

    # The knowledge case the new triggers take runs, and fails live and on the draft alike:
    # it holds the change to what is live, not to the floor. The other is not run.
    assert result.suites == ("knowledge", "store_hours")
    assert "refunds, still the knowledge's" not in {failure.case for failure in result.failures}
    assert "opening hours, now the workflow's" in {failure.case for failure in result.failures}
    assert (result.own, result.live) == (("store_hours",), 0.0)
    assert result.passed is passed
    assert result.floored == (1.0 if passed else 0.0)
    if not passed:
        assert result.reasons == [
            "pass^1 0.00 on store_hours is below the brand's floor 0.90"]
