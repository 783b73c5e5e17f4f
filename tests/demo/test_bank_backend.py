"""Rho-Bank's backend: its help center's rules over HTTP, identity by knowledge and by one-time
code, one transaction per write, reset. Through the Flask test client at a fixed bank time
(14 Nov 2025, τ²'s "now", a Friday) that tests move by hand, and once over real HTTP under
gunicorn.

Sample data (from the seed, τ²-bench's banking database):
- Kenji Tanaka 6680a37184 (kenji.tanaka@outlook.com, 206-555-0293, born 07/22/1985): Silver
  card cc_6680a37184_silver (opened 03/22/2024, $1,038.52); an open dispute on
  txn_913d14a20dc5; Sushi Kashiba txn_cfabb609133d $87.25 on 11/10/2025.
- Liang Jinhai lj82d4f1a9: debit card dbc_lj82d4f1a9_bluest (ACTIVE) on checking
  chk_lj82d4f1a9 ($127,450.00).
- Margot Bellamy c7d8e9f0a1: Silver Zoom cc_c7d8e9f0a1_szoom, $0.00, opened 03/15/2024.
- Sofia Papadopoulos 584f9c5d00: Gold cc_584f9c5d00_gold, $0.00, limit $5,000, opened 2023.
- Wei Chen 76ad9cc60e: four referrals, the last on 11/05; one application, by name.
- e3f4a5b6c7: EcoCard cc_e3f4a5b6c7_eco with a replacement shipped; Gold with $175.00.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from demo_backends import BankBackend, assert_error, fresh_copy
from flask.testing import FlaskClient

from appliance.brands import policy_of
from appliance.demo.bank import identity
from appliance.demo.bank.app import create_app
from appliance.demo.bank.store import SEED_FILE, BankStore
from appliance.services import Services

NOW = datetime(2025, 11, 14, 12, 0, tzinfo=UTC).timestamp()
KENJI = "6680a37184"
KENJI_CARD = "cc_6680a37184_silver"
SUSHI = "txn_cfabb609133d"
LIANG = "lj82d4f1a9"
LIANG_DEBIT = "dbc_lj82d4f1a9_bluest"
MARGOT, MARGOT_CARD = "c7d8e9f0a1", "cc_c7d8e9f0a1_szoom"
SOFIA, SOFIA_CARD = "584f9c5d00", "cc_584f9c5d00_gold"
WEI = "76ad9cc60e"
DISPUTE = {"transaction_id": SUSHI, "card_last_4_digits": "4821", "card_action": "keep_active",
           "contacted_merchant": True, "issue_noticed_date": "11/12/2025",
           "dispute_reason": "duplicate_charge", "resolution_requested": "full_refund"}


class Clock:
    """The bank's time, moved by the test."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def seeded_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One seeded database, copied for each test."""
    path = tmp_path_factory.mktemp("bank-seed") / "bank.db"
    BankStore(path)
    return path


@pytest.fixture
def db_path(seeded_file: Path, tmp_path: Path) -> Path:
    return fresh_copy(seeded_file, tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bank(db_path: Path, clock: Clock) -> FlaskClient:
    app = create_app(db_path, clock)
    app.testing = True
    return app.test_client()


def seed(table: str) -> dict[str, Any]:
    docs: dict[str, Any] = json.loads(SEED_FILE.read_text())[table]["data"]
    return docs


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.json
    return response.json


def user(bank: FlaskClient, user_id: str) -> Any:
    return ok(bank.get(f"/users/{user_id}"))


def card_path(user_id: str, account_id: str, action: str) -> str:
    return f"/users/{user_id}/credit-card-accounts/{account_id}/{action}"


# Reads


def test_it_returns_the_user_with_everything_linked(bank: FlaskClient) -> None:
    kenji = user(bank, KENJI)
    assert {k: kenji[k] for k in seed("users")[KENJI]} == seed("users")[KENJI]
    assert [a["account_id"] for a in kenji["credit_card_accounts"]] == [KENJI_CARD]
    assert len(kenji["credit_card_transactions"]) == 5
    assert [d["dispute_id"] for d in kenji["transaction_disputes"]] == ["dsp_7a3e91b4c2d8"]
    assert [v["time_verified"] for v in kenji["verification_history"]] == \
        ["2025-11-10 14:22:00 EST"]
    wei = user(bank, WEI)
    assert len(wei["referrals"]) == 4
    assert [a["card_type"] for a in wei["credit_card_applications"]] == ["Gold Rewards Card"]
    liang = user(bank, LIANG)
    assert LIANG_DEBIT in [c["card_id"] for c in liang["debit_cards"]]
    assert {t["account_id"] for t in liang["bank_account_transactions"]} <= \
        {a["account_id"] for a in liang["accounts"]}
    assert liang["bank_account_transactions"]
    assert_error(bank.get("/users/nobody"), 404, "user_not_found")


def test_it_lists_accounts_cards_and_the_newest_transactions(bank: FlaskClient) -> None:
    accounts = ok(bank.get(f"/users/{LIANG}/accounts"))
    assert "chk_lj82d4f1a9" in [a["account_id"] for a in accounts["accounts"]]
    cards = ok(bank.get(f"/users/{LIANG}/cards"))
    assert LIANG_DEBIT in [c["card_id"] for c in cards["debit_cards"]]
    recent = ok(bank.get(f"/users/{KENJI}/transactions", query_string={"limit": "2"}))
    assert [t["transaction_id"] for t in recent["credit_card_transactions"]] == \
        ["txn_cedd88ce1f65", SUSHI]
    assert_error(bank.get(f"/users/{KENJI}/transactions", query_string={"limit": "0"}),
                 400, "invalid_parameter")


# Identity by knowledge


def test_it_matches_a_customer_on_two_of_four_details_in_any_spelling(
        bank: FlaskClient) -> None:
    by_name = {"name": "kenji  TANAKA", "email": "Kenji.Tanaka@Outlook.com",
               "phone_number": "(206) 555 0293"}
    assert ok(bank.post("/users/match", json=by_name)) == {"user_id": KENJI}
    by_id = {"user_id": KENJI, "date_of_birth": "1985-07-22",
             "address": "1847 cherry blossom lane seattle WA 98101"}
    assert ok(bank.post("/users/match", json=by_id)) == {"user_id": KENJI}


def test_it_refuses_one_detail_a_wrong_one_or_a_stranger_with_the_same_answer(
        bank: FlaskClient) -> None:
    refusals = [
        {"name": "Kenji Tanaka", "email": "kenji.tanaka@outlook.com"},
        {"name": "Kenji Tanaka", "email": "kenji.tanaka@outlook.com",
         "date_of_birth": "07/23/1985"},
        {"name": "Nobody Here", "email": "kenji.tanaka@outlook.com",
         "phone_number": "206-555-0293"},
        {"user_id": "nobody", "email": "kenji.tanaka@outlook.com",
         "phone_number": "206-555-0293"},
    ]
    bodies = [bank.post("/users/match", json=body) for body in refusals]
    for response in bodies:
        assert_error(response, 404, "no_match")
    assert len({json.dumps(response.json) for response in bodies}) == 1
    assert_error(bank.post("/users/match", json={"email": "kenji.tanaka@outlook.com",
                                                 "phone_number": "206-555-0293"}),
                 400, "invalid_field")
    assert_error(bank.post("/users/match", json={"name": "Kenji Tanaka", "ssn": "1"}),
                 400, "invalid_field")


def test_it_logs_a_verification_with_the_details_on_file(bank: FlaskClient) -> None:
    record = ok(bank.post(f"/users/{KENJI}/verifications", json={"method": "one_time_code"}))
    assert record["time_verified"] == "2025-11-14 12:00:00 UTC"
    assert (record["method"], record["email"]) == ("one_time_code", "kenji.tanaka@outlook.com")
    assert record in user(bank, KENJI)["verification_history"]
    assert_error(bank.post(f"/users/{KENJI}/verifications", json={"method": "guess"}),
                 400, "invalid_method")


# One-time codes


def send(bank: FlaskClient, user_id: str = KENJI) -> str:
    sent = ok(bank.post(f"/users/{user_id}/otp"))
    assert sent == {"user_id": user_id, "sent_to": "***-***-0293",
                    "expires_in_s": identity.CODE_TTL_S}
    code: str = ok(bank.get(f"/demo/otp/{user_id}"))["code"]
    return code


def check(bank: FlaskClient, code: str, user_id: str = KENJI) -> Any:
    return bank.post(f"/users/{user_id}/otp/check", json={"code": code})


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def test_it_verifies_a_sent_code_once_and_stores_only_its_hash(
        bank: FlaskClient, db_path: Path) -> None:
    code = send(bank)
    assert len(code) == 6 and code.isdigit()
    with sqlite3.connect(db_path) as conn:
        stored = conn.execute("SELECT doc FROM otp_codes WHERE id = ?", (KENJI,)).fetchone()[0]
    assert code not in stored
    assert ok(check(bank, code)) == {"user_id": KENJI, "verified": True}
    assert_error(check(bank, code), 409, "no_code_sent")
    assert_error(bank.get(f"/demo/otp/{KENJI}"), 404, "no_code_sent")


def test_it_counts_wrong_codes_and_locks_out_after_the_last_try(
        bank: FlaskClient, clock: Clock) -> None:
    code = send(bank)
    for left in range(identity.MAX_FAILED_CHECKS - 1, -1, -1):
        assert ok(check(bank, wrong(code))) == {"user_id": KENJI, "verified": False,
                                                "reason": "wrong", "attempts_left": left}
    # Locked: even the right code, and a new code, are refused until the lockout ends.
    assert_error(check(bank, code), 429, "too_many_attempts")
    assert_error(bank.post(f"/users/{KENJI}/otp"), 429, "too_many_attempts")
    clock.now += identity.LOCKOUT_S
    assert ok(check(bank, send(bank)))["verified"] is True


def test_it_expires_a_code_and_a_new_code_does_not_reset_the_count(
        bank: FlaskClient, clock: Clock) -> None:
    code = send(bank)
    ok(check(bank, wrong(code)))
    clock.now += identity.CODE_TTL_S
    assert ok(check(bank, code)) == {"user_id": KENJI, "verified": False, "reason": "expired",
                                     "attempts_left": identity.MAX_FAILED_CHECKS - 1}
    assert_error(check(bank, code), 409, "no_code_sent")
    fresh = send(bank)
    assert ok(check(bank, wrong(fresh)))["attempts_left"] == identity.MAX_FAILED_CHECKS - 2
    assert_error(bank.post("/users/nobody/otp"), 404, "user_not_found")
    assert_error(bank.post(f"/users/{KENJI}/otp/check", json={}), 400, "invalid_field")


# Disputes


def test_it_files_a_dispute_and_gives_provisional_credit_when_eligible(
        bank: FlaskClient) -> None:
    dispute = ok(bank.post(f"/users/{KENJI}/disputes", json=DISPUTE))
    assert dispute["credit_card_account_id"] == KENJI_CARD
    assert (dispute["eligible_for_provisional_credit"], dispute["provisional_credit_given"],
            dispute["status"], dispute["purchase_date"], dispute["submitted_at"]) == \
        (True, True, "UNDER_REVIEW", "11/10/2025", "11/14/2025")
    assert dispute["full_name"] == "Kenji Tanaka"
    kenji = user(bank, KENJI)
    assert kenji["credit_card_accounts"][0]["current_balance"] == "$951.27"
    assert dispute in kenji["transaction_disputes"]
    assert_error(bank.post(f"/users/{KENJI}/disputes", json=DISPUTE), 409, "already_disputed")


@pytest.mark.parametrize(("user_id", "change"), [
    (KENJI, {"contacted_merchant": False}),
    (KENJI, {"dispute_reason": "incorrect_amount"}),
    # Goods not received: the purchase was 4 days ago, the merchant may still deliver.
    (KENJI, {"dispute_reason": "goods_services_not_received"}),
    # $24.00, under the $25.00 floor.
    ("01f21c9970", {"transaction_id": "txn_a1b2c3d4e519", "issue_noticed_date": "11/13/2025"}),
])
def test_it_files_a_dispute_without_provisional_credit_when_the_rules_say_no(
        bank: FlaskClient, user_id: str, change: dict[str, Any]) -> None:
    before = user(bank, user_id)["credit_card_accounts"]
    dispute = ok(bank.post(f"/users/{user_id}/disputes", json={**DISPUTE, **change}))
    assert dispute["provisional_credit_given"] is False
    assert user(bank, user_id)["credit_card_accounts"] == before


def test_it_refuses_a_malformed_dispute_or_another_customers_transaction(
        bank: FlaskClient) -> None:
    path = f"/users/{KENJI}/disputes"
    assert_error(bank.post(path, json={**DISPUTE, "dispute_reason": "bored"}),
                 400, "invalid_dispute_reason")
    assert_error(bank.post(path, json={**DISPUTE, "resolution_requested": "partial_refund"}),
                 400, "invalid_partial_refund")
    assert_error(bank.post(path, json={**DISPUTE, "issue_noticed_date": "2025-11-12"}),
                 400, "invalid_date")
    assert_error(bank.post(path, json={**DISPUTE, "issue_noticed_date": "11/01/2025"}),
                 400, "invalid_date")
    assert_error(bank.post(path, json={**DISPUTE, "contacted_merchant": "yes"}),
                 400, "invalid_field")
    assert_error(bank.post(path, json={**DISPUTE, "card_last_4_digits": "48"}),
                 400, "invalid_field")
    assert_error(bank.post(f"/users/{LIANG}/disputes", json=DISPUTE),
                 404, "transaction_not_found")
    partial = ok(bank.post(path, json={**DISPUTE, "resolution_requested": "partial_refund",
                                       "partial_refund_amount": 40}))
    assert partial["partial_refund_amount"] == 40


# Cards


def test_it_replaces_a_lost_credit_card_once_at_a_time(bank: FlaskClient) -> None:
    path = card_path(KENJI, KENJI_CARD, "replacement")
    order = ok(bank.post(path, json={"reason": "lost", "shipping_speed": "expedited"}))
    assert (order["status"], order["expedited_shipping"], order["expected_delivery"],
            order["shipping_address"], order["previous_card_cancelled"]) == \
        ("ORDERED", True, "11/19/2025", "1847 Cherry Blossom Lane, Seattle, WA 98101", True)
    assert order in user(bank, KENJI)["credit_card_orders"]
    assert_error(bank.post(path, json={"reason": "lost"}), 409, "replacement_pending")
    assert_error(bank.post(card_path(KENJI, MARGOT_CARD, "replacement"), json={"reason": "lost"}),
                 404, "credit_card_account_not_found")
    assert_error(bank.post(card_path(MARGOT, MARGOT_CARD, "replacement"),
                           json={"reason": "bent"}), 400, "invalid_reason")


def test_it_freezes_an_active_debit_card(bank: FlaskClient) -> None:
    path = f"/users/{LIANG}/debit-cards/{LIANG_DEBIT}/freeze"
    card = ok(bank.post(path))
    assert (card["status"], card["frozen_at"]) == ("FROZEN", "11/14/2025")
    assert_error(bank.post(path), 409, "card_not_active")
    assert_error(bank.post(f"/users/{KENJI}/debit-cards/{LIANG_DEBIT}/freeze"),
                 404, "debit_card_not_found")


def test_it_closes_a_stolen_debit_card_and_charges_the_replacements_fees(
        bank: FlaskClient) -> None:
    order = ok(bank.post(f"/users/{LIANG}/debit-cards/{LIANG_DEBIT}/replacement",
                         json={"reason": "stolen", "delivery_option": "EXPEDITED",
                               "card_design": "PREMIUM"}))
    assert (order["total_fee"], order["expected_delivery"], order["status"]) == \
        (25.0, "11/21/2025", "PENDING")
    liang = user(bank, LIANG)
    card = next(c for c in liang["debit_cards"] if c["card_id"] == LIANG_DEBIT)
    assert (card["status"], card["closure_reason"]) == ("CLOSED", "stolen")
    checking = next(a for a in liang["accounts"] if a["account_id"] == "chk_lj82d4f1a9")
    assert checking["current_holdings"] == "127425.00"
    assert order in liang["debit_card_orders"]
    assert_error(bank.post(f"/users/{LIANG}/debit-cards/{LIANG_DEBIT}/replacement",
                           json={"reason": "damaged"}), 409, "card_closed")
    assert_error(bank.post(f"/users/{LIANG}/debit-cards/{LIANG_DEBIT}/replacement",
                           json={"reason": "lost", "delivery_option": "DRONE"}),
                 400, "invalid_delivery_option")


# Closing a card, and the offer to keep it


def test_it_logs_a_closure_reason_and_closes_an_eligible_card(bank: FlaskClient) -> None:
    reason = ok(bank.post(card_path(MARGOT, MARGOT_CARD, "closure-reason"),
                          json={"closure_reason": "annual_fee"}))
    assert (reason["status"], reason["logged_at"]) == ("LOGGED", "11/14/2025")
    closed = ok(bank.post(card_path(MARGOT, MARGOT_CARD, "close")))
    assert (closed["status"], closed["closed_date"]) == ("CLOSED", "11/14/2025")
    margot = user(bank, MARGOT)
    assert reason in margot["credit_card_closure_reasons"]
    assert_error(bank.post(card_path(MARGOT, MARGOT_CARD, "close")), 409, "account_closed")
    assert_error(bank.post(card_path(MARGOT, "cc_c7d8e9f0a1_plat", "closure-reason"),
                           json={"closure_reason": "bored"}), 400, "invalid_closure_reason")


@pytest.mark.parametrize(("user_id", "account_id", "code"), [
    ("e3f4a5b6c7", "cc_e3f4a5b6c7_gold", "balance_not_zero"),
    ("e3f4a5b6c7", "cc_e3f4a5b6c7_eco", "replacement_pending"),
])
def test_it_refuses_to_close_a_card_the_help_center_says_cannot_be(
        bank: FlaskClient, user_id: str, account_id: str, code: str) -> None:
    assert_error(bank.post(card_path(user_id, account_id, "close")), 409, code)


def test_it_refuses_to_close_a_card_with_an_open_dispute_a_replacement_or_too_new(
        bank: FlaskClient, clock: Clock) -> None:
    close = card_path(MARGOT, MARGOT_CARD, "close")
    # Without provisional credit the balance stays at $0.00.
    ok(bank.post(f"/users/{MARGOT}/disputes",
                 json={**DISPUTE, "transaction_id": "txn_e943eadf1c83",
                       "dispute_reason": "incorrect_amount"}))
    assert_error(bank.post(close), 409, "pending_disputes")
    # Sofia's card, opened 03/20/2023, seen on 04/15/2023.
    clock.now = datetime(2023, 4, 15, tzinfo=UTC).timestamp()
    assert_error(bank.post(card_path(SOFIA, SOFIA_CARD, "close")), 409, "account_too_new")
    clock.now = NOW
    ok(bank.post(card_path(SOFIA, SOFIA_CARD, "replacement"), json={"reason": "damaged"}))
    assert_error(bank.post(card_path(SOFIA, SOFIA_CARD, "close")), 409, "replacement_pending")


def test_it_waives_the_annual_fee_only_for_a_customer_of_two_years(bank: FlaskClient) -> None:
    flag = ok(bank.post(card_path(SOFIA, SOFIA_CARD, "annual-fee-waiver")))
    assert (flag["flag_type"], flag["reason"], flag["expiration_date"], flag["status"]) == \
        ("annual_fee_waived", "loyalty_benefit", "11/14/2026", "ACTIVE")
    assert flag in user(bank, SOFIA)["credit_card_account_flags"]
    assert_error(bank.post(card_path(SOFIA, SOFIA_CARD, "annual-fee-waiver")),
                 409, "already_waived")
    assert_error(bank.post(card_path(MARGOT, MARGOT_CARD, "annual-fee-waiver")),
                 409, "not_eligible_for_waiver")


# Limits, applications, referrals, contact details


def test_it_submits_a_limit_increase_within_the_tiers_largest(bank: FlaskClient) -> None:
    path = card_path(SOFIA, SOFIA_CARD, "limit-increase")
    assert_error(bank.post(path, json={"requested_increase_amount": 2501}),
                 400, "exceeds_tier_maximum")
    assert_error(bank.post(path, json={"requested_increase_amount": "2000"}),
                 400, "invalid_field")
    request = ok(bank.post(path, json={"requested_increase_amount": 2500}))
    assert (request["status"], request["submitted_date"]) == ("SUBMITTED", "11/14/2025")
    assert request in user(bank, SOFIA)["credit_limit_increase_requests"]
    assert_error(bank.post(path, json={"requested_increase_amount": 100}),
                 409, "request_pending")


def test_it_takes_a_credit_card_application_in_the_customers_name(bank: FlaskClient) -> None:
    path = f"/users/{KENJI}/credit-card-applications"
    body = {"card_type": "Gold Rewards Card", "annual_income": 98000}
    application = ok(bank.post(path, json=body))
    assert (application["customer_name"], application["status"], application["annual_income"],
            application["rho_bank_subscription"]) == ("Kenji Tanaka", "PENDING", 98000.0, False)
    assert application in user(bank, KENJI)["credit_card_applications"]
    assert_error(bank.post(path, json=body), 409, "application_pending")
    assert_error(bank.post(path, json={**body, "card_type": "Titanium Card"}),
                 400, "invalid_card_type")
    assert_error(bank.post(path, json={"card_type": "EcoCard"}), 400, "invalid_field")


def test_it_rejects_a_third_referral_within_the_rolling_window(
        bank: FlaskClient, clock: Clock) -> None:
    path = f"/users/{WEI}/referrals"
    statuses = [ok(bank.post(path, json={"account_type": "Gold Rewards Card"}))
                ["referral_status"] for _ in range(3)]
    assert statuses == ["NO_PROGRESS", "NO_PROGRESS", "REJECTED"]
    clock.now += 7 * 86400
    assert ok(bank.post(path, json={"account_type": "Gold Rewards Card"}))[
        "referral_status"] == "NO_PROGRESS"
    assert len(user(bank, WEI)["referrals"]) == 8
    assert_error(bank.post(path, json={"account_type": " "}), 400, "invalid_field")


def test_it_changes_contact_details(bank: FlaskClient) -> None:
    path = f"/users/{KENJI}/contact"
    changed = ok(bank.post(path, json={"phone_number": "(206) 555 0100",
                                       "email": " kenji@example.com "}))
    assert (changed["phone_number"], changed["email"], changed["address"]) == \
        ("206-555-0100", "kenji@example.com", "1847 Cherry Blossom Lane, Seattle, WA 98101")
    assert user(bank, KENJI)["phone_number"] == "206-555-0100"
    assert_error(bank.post(path, json={"email": "kenji-at-example"}), 400, "invalid_email")
    assert_error(bank.post(path, json={"phone_number": "555-0100"}), 400,
                 "invalid_phone_number")
    assert_error(bank.post(path, json={}), 400, "nothing_to_change")
    assert_error(bank.post(path, data=b"[1]"), 400, "invalid_json")


# The store


def test_it_replays_a_write_under_its_idempotency_key(bank: FlaskClient) -> None:
    headers = {"Idempotency-Key": "dispute-1"}
    first = ok(bank.post(f"/users/{KENJI}/disputes", json=DISPUTE, headers=headers))
    again = ok(bank.post(f"/users/{KENJI}/disputes", json=DISPUTE, headers=headers))
    assert again == first
    assert len(user(bank, KENJI)["transaction_disputes"]) == 2


def test_it_leaves_the_data_as_it_was_when_a_write_fails_half_way(db_path: Path) -> None:
    store = BankStore(db_path)

    def crashes(tx: Any) -> dict[str, Any]:
        account = tx.credit_card_account(KENJI_CARD, KENJI)
        account["current_balance"] = "$0.00"
        tx.put("credit_card_accounts", KENJI_CARD, account)
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        store.write(crashes)
    assert store.user(KENJI)["credit_card_accounts"][0]["current_balance"] == "$1,038.52"


def test_it_resets_to_the_seed_and_forgets_codes(bank: FlaskClient) -> None:
    seeded = user(bank, KENJI)
    ok(bank.post(f"/users/{KENJI}/disputes", json=DISPUTE))
    ok(bank.post(f"/users/{KENJI}/contact", json={"email": "new@example.com"}))
    send(bank)
    assert ok(bank.post("/reset")) == {"status": "reset"}
    assert user(bank, KENJI) == seeded
    assert_error(bank.get(f"/demo/otp/{KENJI}"), 404, "no_code_sent")


def test_it_keeps_the_seed_data_as_shipped() -> None:
    """The packaged file is τ²-bench's banking database, unchanged."""
    counts = {table: len(seed(table)) for table in ("users", "accounts", "credit_card_accounts",
                                                    "credit_card_transaction_history")}
    assert counts == {"users": 39, "accounts": 33, "credit_card_accounts": 38,
                      "credit_card_transaction_history": 338}
    assert (SEED_FILE.parent / "LICENSE.tau2-bench").read_text().startswith("MIT License")


# Over real HTTP, under gunicorn, and where `appliance demo seed` points Rho-Bank's tools


def test_it_serves_the_api_over_http_under_gunicorn(bank_backend: BankBackend) -> None:
    """`appliance demo-backend bank` as the session's bank (tests/conftest.py)."""
    bank_backend.reset()
    match = bank_backend.post("/users/match", {"user_id": KENJI, "date_of_birth": "07/22/1985",
                                               "email": "kenji.tanaka@outlook.com"})
    assert match.json() == {"user_id": KENJI}
    assert bank_backend.post(f"/users/{KENJI}/otp").status_code == 200
    checked = bank_backend.post(f"/users/{KENJI}/otp/check",
                                {"code": bank_backend.sent_code(KENJI)})
    assert checked.json() == {"user_id": KENJI, "verified": True}
    first = bank_backend.post(f"/users/{KENJI}/disputes", DISPUTE, **{"Idempotency-Key": "k"})
    again = bank_backend.post(f"/users/{KENJI}/disputes", DISPUTE, **{"Idempotency-Key": "k"})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    bad = httpx.post(f"{bank_backend.url}/users/{KENJI}/disputes", content=b"{oops",
                     headers={"Content-Type": "application/json"})
    assert bad.status_code == 400
    assert bad.json() == {"error": {"code": "invalid_json",
                                    "message": "the request body must be a JSON object"}}
    assert len(bank_backend.get(f"/users/{KENJI}")["transaction_disputes"]) == 2
    bank_backend.reset()
    assert len(bank_backend.get(f"/users/{KENJI}")["transaction_disputes"]) == 1


def test_the_demo_seed_points_rho_banks_tools_at_the_bank(
        services: Services, seeded: dict[str, Any]) -> None:
    brand = services.brands.get("rho-bank")
    assert policy_of(brand).tools_base_url == services.settings.demo_bank_url
    toolset = services.workflows.toolset(brand)
    assert toolset is not None
    assert toolset.get("file_transaction_dispute") is not None
    assert len(toolset.tools) == 19
