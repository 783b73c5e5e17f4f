"""Rho-Bank's workflows on the same engine as Lumen Goods, against the bank's own service:
its scripted evals, and what static scripts cannot play (one-time codes, a signed identity)."""

from __future__ import annotations

from typing import Any

import pytest
from demo_backends import BankBackend

from appliance.brands import policy_of
from appliance.db.models import Brand, Conversation, ToolCall
from appliance.demo.seed import WORKFLOWS_DIR
from appliance.evals.cases import load_suites
from appliance.evals.runner import run_suites, say
from appliance.services import Services
from appliance.workflows.state import WorkflowState

EVALS = WORKFLOWS_DIR / "rho-bank" / "evals"


@pytest.fixture
def rho(services: Services, seeded: dict[str, Any], bank_backend: BankBackend) -> Brand:
    """Rho-Bank with its demo workflows published and its tools pointed at the bank's
    service, whose data is fresh."""
    bank_backend.reset()
    brand = services.brands.get("rho-bank")
    policy = policy_of(brand).model_copy(update={"tools_base_url": bank_backend.url})
    return services.brands.update("rho-bank", policy=policy, actor="test")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
# Dozens of conversations: the suite-wide guard against a hung test (300 s) is shorter than a
# run on busy cores, and how fast they are is not what this checks.
@pytest.mark.timeout(1800)
def test_it_passes_at_least_nine_in_ten_of_rho_banks_evals(services: Services, rho: Brand) -> None:
    """Every workflow's cases against the bank's service: exact writes, phrases said and
    never said, verification failures, declines, corrections, someone else's account."""
    # The knowledge suite needs the help center ingested (minutes): it is measured by
    # scripts/bench/workflows.py --knowledge, and its facts checked in tests/evals.
    suites = [suite for suite in load_suites(EVALS) if suite.name != "knowledge"]
    results = run_suites(services, rho, suites)
    workflows = {path.stem for path in (WORKFLOWS_DIR / "rho-bank" / "workflows").glob("*.yaml")}
    scripted = [suite for suite in suites if suite.workflow]
    assert {suite.workflow for suite in scripted} == workflows, "every workflow has evals"
    assert all(len(suite.cases) >= 4 for suite in scripted)
    goals = {goal.name for suite in suites for goal in suite.goals}
    assert len(goals) >= 20, "goals played by the simulated customer"
    for kind in ("case", "goal"):
        ran = [r for r in results if (r.name in goals) == (kind == "goal") and r.counts]
        failures = [(r.workflow, r.name, r.problems) for r in ran if not r.passed]
        assert ran and len(ran) - len(failures) >= 0.9 * len(ran), (kind, failures)


def _chat(services: Services, brand: Brand, turns: list[str],
          customer: dict[str, Any] | None = None) -> tuple[list[str], Conversation]:
    conversation, _ = services.conversations.start(brand, customer or {}, "api")
    replies = []
    for text in turns:
        reply, conversation = say(services, brand, conversation, text)
        replies.append(reply)
    return replies, conversation


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_change_of_contact_details_needs_a_one_time_code_on_top_of_knowledge(
        services: Services, rho: Brand, bank_backend: BankBackend) -> None:
    replies, conversation = _chat(services, rho, [
        "I want to change my email address",
        "Kenji Tanaka, 07/22/1985, 206-555-0293",
        "kenji.new@example.com"])
    assert "you're verified" in replies[1]
    assert "texted a 6-digit code" in replies[2]
    assert "To confirm" not in replies[2]  # no confirmation before the code
    code = bank_backend.sent_code("6680a37184")
    wrong = "000000" if code != "000000" else "111111"

    replies, conversation = _continue(services, rho, conversation, [wrong, code, "yes"])

    assert "isn't valid" in replies[0]
    assert "change the email on your file to kenji.new@example.com" in replies[1]
    assert "email is updated" in replies[2]
    assert bank_backend.get("/users/6680a37184")["email"] == "kenji.new@example.com"
    methods = [record.get("method") for record in
               bank_backend.get("/users/6680a37184")["verification_history"]]
    assert methods[-2:] == ["knowledge", "one_time_code"]
    customer = WorkflowState.from_json(conversation.state).customer
    assert customer is not None and customer.assurance == "one_time_code"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_without_the_code_nothing_changes(
        services: Services, rho: Brand, bank_backend: BankBackend) -> None:
    replies, _ = _chat(services, rho, [
        "I want to change my email address",
        "Kenji Tanaka, 07/22/1985, 206-555-0293",
        "kenji.new@example.com", "yes", "yes"])

    assert not any("email is updated" in reply for reply in replies)
    assert bank_backend.get("/users/6680a37184")["email"] == "kenji.tanaka@outlook.com"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_customer_the_banks_site_signed_in_is_not_asked_to_verify(
        services: Services, rho: Brand, bank_backend: BankBackend) -> None:
    replies, conversation = _chat(services, rho, ["What's my balance?"],
                                  {"id": "6680a37184", "assurance": "asserted"})

    assert "$1,038.52" in replies[0]
    assert "verify" not in replies[0]
    state = WorkflowState.from_json(conversation.state)
    assert state.customer is not None and state.customer.assurance == "asserted"
    methods = [record.get("method") for record in
               bank_backend.get("/users/6680a37184")["verification_history"]]
    assert methods[-1] == "asserted"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_id_without_the_signature_is_not_asserted(
        services: Services, rho: Brand) -> None:
    """The API records `assurance` only for a good signature; a customer id alone is what
    anyone can type."""
    replies, _ = _chat(services, rho, ["What's my balance?"], {"id": "6680a37184"})

    assert "$1,038.52" not in replies[0]
    assert "verify your identity" in replies[0]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_card_application_is_an_upsell_carrying_the_cards_annual_fee(
        services: Services, rho: Brand) -> None:
    _, conversation = _chat(services, rho, [
        "I'd like to apply for the platinum card",
        "Kenji Tanaka, 07/22/1985, kenji.tanaka@outlook.com", "$120,000", "yes"])

    last = WorkflowState.from_json(conversation.state).last
    assert last is not None
    assert (last.workflow, last.outcome) == ("apply_for_credit_card", "upsold")
    assert last.slots["upsell_value"] == 200
    assert last.slots["card_type"] == "Platinum Rewards Card"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_referrals_are_in_the_bank_and_a_third_within_the_window_is_rejected(
        services: Services, rho: Brand, bank_backend: BankBackend) -> None:
    """What the scripted evals cannot state: the bank's records, whose ids it makes up."""
    replies, _ = _chat(services, rho, [
        "I want to refer a friend for the EcoCard",
        "Sofia Papadopoulos, 01/25/1986, 347-555-0387", "yes",
        "I'd like to refer another friend, for the Platinum card", "yes",
        "and refer one more friend, for the Silver Rewards Card", "yes"])

    referrals = {r["referred_account_type"]: r
                 for r in bank_backend.get("/users/584f9c5d00")["referrals"]}
    assert {card: r["referral_status"] for card, r in referrals.items()} == {
        "EcoCard": "NO_PROGRESS", "Platinum Rewards Card": "NO_PROGRESS",
        "Silver Rewards Card": "REJECTED"}
    assert f"reference {referrals['EcoCard']['referral_id']}" in replies[2]
    assert "at most 2 referral bonuses in any rolling 7-day window" in replies[-1]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_same_write_asked_again_in_a_later_request_is_made_again(
        services: Services, rho: Brand, bank_backend: BankBackend) -> None:
    """Two referrals for the same card in one conversation are two referrals, not one
    replayed under the first's idempotency key."""
    replies, _ = _chat(services, rho, [
        "I want to refer a friend for the EcoCard",
        "Sofia Papadopoulos, 01/25/1986, 347-555-0387", "yes",
        "I'd like to refer another friend for the EcoCard", "yes"])

    made = [r for r in bank_backend.get("/users/584f9c5d00")["referrals"]
            if r["referred_account_type"] == "EcoCard"]
    assert len(made) == 2
    told = [next(r["referral_id"] for r in made if f"reference {r['referral_id']}" in reply)
            for reply in (replies[2], replies[-1])]
    assert told[0] != told[1], "each request is told its own referral"


def _continue(services: Services, brand: Brand, conversation: Conversation,
              turns: list[str]) -> tuple[list[str], Conversation]:
    replies = []
    for text in turns:
        reply, conversation = say(services, brand, conversation, text)
        replies.append(reply)
    return replies, conversation


DISPUTE = ["I want to dispute a charge", "Kenji Tanaka, 07/22/1985, 206-555-0293",
           "the Sushi Kashiba one", "I was charged twice", "yes, I contacted them",
           "11/12/2025", "the last four are 4821"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_yes_with_a_condition_files_nothing_until_a_plain_yes(
        services: Services, rho: Brand) -> None:
    """"yes, and send the refund to someone else's account instead" does not agree to what
    was listed: the confirmation is asked again and only a plain yes files the dispute."""
    replies, conversation = _chat(services, rho, [
        *DISPUTE,
        "yes, and send the refund to Sofia Papadopoulos's checking account instead of mine"])
    assert "(yes/no)" in replies[-2] and "(yes/no)" in replies[-1], replies[-2:]
    assert not ToolCall.select().where(ToolCall.tool == "file_transaction_dispute").exists()

    _continue(services, rho, conversation, ["yes"])
    assert ToolCall.select().where(ToolCall.tool == "file_transaction_dispute").count() == 1
