"""The engine's identity levels, on small workflows against the bank's service: what a level
allows, what a walk short of it does, and what never switches the conversation's customer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from demo_backends import BankBackend

from appliance.brands import IdentityPolicy
from appliance.demo.seed import WORKFLOWS_DIR
from appliance.workflows.engine import DONE, HANDOFF, REFUSED, WAITING, Engine, TurnOutcome
from appliance.workflows.schema import ToolSpec, Workflow, parse_toolset, parse_workflow
from appliance.workflows.state import Customer, WorkflowState
from appliance.workflows.tools import ToolResult, ToolRunner

TOOLS = (WORKFLOWS_DIR / "rho-bank" / "tools.yaml").read_text()
KENJI, MARGOT = "6680a37184", "c7d8e9f0a1"
KENJI_DETAILS = "My name is Kenji Tanaka, 07/22/1985, kenji.tanaka@outlook.com"
KNOWLEDGE = IdentityPolicy(read="knowledge", write="knowledge")

#: Identity by knowledge only, or asserted: no one-time code.
IDENTITY = """\
name: verify
title: Verify
provides_identity: true
tools: [match_user_by_knowledge, get_user]
slots:
  first_name: {type: first_name, prompt: "Your full name?"}
  last_name: {type: last_name, prompt: "Your last name?"}
  date_of_birth: {type: date_of_birth, prompt: "Your date of birth?"}
  email: {type: email, prompt: "Your email?"}
steps:
  - identify: "{{ identity.asserted or claimed }}"
    when: identity.asserted or claimed is defined
    assurance: asserted
    profile: get_user
    args: {user_id: "{{ identity.asserted or claimed }}"}
  - ask: [first_name, last_name, date_of_birth, email]
    when: identity.level == 'none' or identity.level == 'contact'
  - lookup: match_user_by_knowledge
    when: identity.level == 'none' or identity.level == 'contact'
    args: {name: "{{ first_name }} {{ last_name }}", date_of_birth: "{{ date_of_birth }}",
           email: "{{ email }}"}
    save_as: found
    message: Those details don't verify.
    clear: [first_name, last_name, date_of_birth, email]
  - identify: "{{ found.user_id }}"
    when: found is defined
    assurance: knowledge
    profile: get_user
    args: {user_id: "{{ found.user_id }}"}
"""

BALANCE = """\
name: balance
title: Balance
requires_identity: true
identity: {read: %s, write: %s}
tools: [get_accounts]
steps:
  - lookup: get_accounts
    args: {user_id: "{{ customer.user_id }}"}
    save_as: holdings
  - say: "{{ holdings.credit_card_accounts | map(attribute='current_balance') | join(', ') }}"
"""


class Bank:
    """The engine's tool caller over the bank's real service."""

    def __init__(self, url: str) -> None:
        self._runner = ToolRunner(parse_toolset(TOOLS), base_url=url)

    def spec(self, name: str) -> ToolSpec | None:
        return self._runner.toolset.get(name)

    def call(self, spec: ToolSpec, arguments: Mapping[str, Any],
             idempotency_key: str | None) -> ToolResult:
        return self._runner.call(spec, arguments, idempotency_key=idempotency_key)


def _turn(bank: BankBackend, state: WorkflowState, workflow: Workflow, identity: Workflow,
          text: str, asserted: str | None = None,
          policy: IdentityPolicy = KNOWLEDGE) -> TurnOutcome:
    engine = Engine(state, Bank(bank.url), conversation_id="c1", identity=identity,
                    formats=parse_toolset(TOOLS).formats, asserted=asserted,
                    identity_policy=policy)
    if engine.running is None:
        engine.start(workflow, None)
    engine.remember(text)
    return engine.turn(workflow, text)


def _balance(read: str = "knowledge", write: str = "knowledge") -> Workflow:
    return parse_workflow(BALANCE % (read, write))


def test_nothing_is_looked_up_before_the_level_and_knowledge_satisfies_knowledge(
        bank_backend: BankBackend) -> None:
    state, identity = WorkflowState(), parse_workflow(IDENTITY)

    asked = _turn(bank_backend, state, _balance(), identity, "what's my balance")
    done = _turn(bank_backend, state, _balance(), identity, KENJI_DETAILS)

    assert asked.status == WAITING and asked.tools == []
    assert done.status == DONE and "$1,038.52" in done.text
    assert state.customer is not None and state.customer.assurance == "knowledge"


def test_a_customer_at_a_lower_level_is_asked_for_more(bank_backend: BankBackend) -> None:
    """A customer verified by contact details (Lumen Goods' level) is asked for what the
    workflow needs before anything is read."""
    state, identity = WorkflowState(), parse_workflow(IDENTITY)
    state.customer = Customer(KENJI, {"user_id": KENJI}, assurance="contact")

    asked = _turn(bank_backend, state, _balance(), identity, "what's my balance")

    assert asked.status == WAITING and asked.tools == []
    assert asked.text == "Your full name?"


def test_a_walk_that_ends_short_of_the_level_hands_off(bank_backend: BankBackend) -> None:
    state, identity = WorkflowState(), parse_workflow(IDENTITY)
    workflow = _balance(read="one_time_code", write="one_time_code")

    _turn(bank_backend, state, workflow, identity, "what's my balance")
    outcome = _turn(bank_backend, state, workflow, identity, KENJI_DETAILS)

    assert (outcome.status, outcome.reason) == (HANDOFF, "identity_insufficient")
    assert [call["tool"] for call in outcome.tools] == ["match_user_by_knowledge", "get_user"]


def test_asserted_is_only_the_id_the_brands_site_signed(bank_backend: BankBackend) -> None:
    identity = parse_workflow(IDENTITY)
    signed = WorkflowState()
    done = _turn(bank_backend, signed, _balance(), identity, "what's my balance",
                 asserted=KENJI)
    assert done.status == DONE and "$1,038.52" in done.text
    assert signed.customer is not None and signed.customer.assurance == "asserted"

    # An identify step that claims `asserted` for any other id hands off.
    claimed = WorkflowState()
    _turn(bank_backend, claimed, _balance(), identity, "what's my balance")
    assert claimed.run is not None
    claimed.run.identity.vars["claimed"] = KENJI
    outcome = _turn(bank_backend, claimed, _balance(), identity, "hello?")
    assert (outcome.status, outcome.reason) == (HANDOFF, "identity_not_asserted")
    assert claimed.customer is None


def test_another_customers_details_never_switch_the_customer(bank_backend: BankBackend) -> None:
    state, identity = WorkflowState(), parse_workflow(IDENTITY)
    state.customer = Customer(MARGOT, {"user_id": MARGOT}, assurance="contact")

    _turn(bank_backend, state, _balance(), identity, "what's my balance")
    outcome = _turn(bank_backend, state, _balance(), identity, KENJI_DETAILS)

    assert (outcome.status, outcome.reason) == (REFUSED, "other_customer")
    assert "$1,038.52" not in outcome.text
    assert state.customer is not None and state.customer.id == MARGOT


def test_a_request_about_someone_elses_account_ends_the_run(bank_backend: BankBackend) -> None:
    state, identity = WorkflowState(), parse_workflow(IDENTITY)
    engine = Engine(state, Bank(bank_backend.url), conversation_id="c1", identity=identity)
    engine.start(_balance(), None)

    refused = engine.refuse_third_party("actually it's about my wife's card")

    assert refused is not None and refused.status == REFUSED
    assert "account holder" in refused.text
    assert state.run is None and state.last is not None
    assert (state.last.status, state.last.outcome) == (REFUSED, "informed")
    assert engine.refuse_third_party("an order my husband placed") is None


WRONG_DETAILS = "My name is Kenji Tanaka, 01/01/1990, kenji.tanaka@outlook.com"


def test_the_brands_limit_of_failed_checks_locks_the_customer_out(
        bank_backend: BankBackend) -> None:
    """Two failed checks under a limit of two: the second says nothing about which detail
    was wrong, hands off as `identity_locked`, and the right details cannot verify after it
    in this conversation."""
    policy = IdentityPolicy(read="knowledge", write="knowledge", max_failed_checks=2)
    state, identity = WorkflowState(), parse_workflow(IDENTITY)

    replies = [_turn(bank_backend, state, _balance(), identity, text, policy=policy)
               for text in ("what's my balance", WRONG_DETAILS, WRONG_DETAILS)]

    assert replies[1].status == WAITING and "Those details don't verify." in replies[1].text
    assert (replies[2].status, replies[2].reason) == (HANDOFF, "identity_locked")
    assert replies[2].messages == [
        "For your security I can't take more attempts to verify you in this conversation."]
    assert "1990" not in replies[2].text and state.failed_checks == 2
    again = _turn(bank_backend, WorkflowState.from_json(state.to_json()), _balance(), identity,
                  KENJI_DETAILS, policy=policy)
    assert (again.status, again.reason) == (HANDOFF, "identity_locked")
    assert again.tools == []  # nothing is looked up for a locked-out customer


def test_a_brand_may_end_the_request_instead_of_handing_off(bank_backend: BankBackend) -> None:
    policy = IdentityPolicy(read="knowledge", write="knowledge", max_failed_checks=1,
                            when_locked="end")
    state, identity = WorkflowState(), parse_workflow(IDENTITY)

    _turn(bank_backend, state, _balance(), identity, "what's my balance", policy=policy)
    locked = _turn(bank_backend, state, _balance(), identity, WRONG_DETAILS, policy=policy)

    assert (locked.status, locked.reason, locked.outcome) == (
        REFUSED, "identity_locked", "informed")
    assert state.run is None and state.customer is None


def test_failed_checks_under_the_limit_still_verify(bank_backend: BankBackend) -> None:
    state, identity = WorkflowState(), parse_workflow(IDENTITY)
    replies = [_turn(bank_backend, state, _balance(), identity, text)
               for text in ("what's my balance", WRONG_DETAILS, WRONG_DETAILS, KENJI_DETAILS)]
    assert replies[-1].status == DONE and "$1,038.52" in replies[-1].text
    assert state.failed_checks == 2
