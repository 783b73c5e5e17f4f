"""Rho-Bank's systems over HTTP: the JSON API the appliance's workflow tools call.

`create_app(db_path, clock)` serves the `BankStore` in that SQLite file (seeded on first use),
with the demo backends' error shape and idempotency keys (appliance/demo/http.py). The
endpoints are listed in docs/demo-bank.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, request
from flask.typing import ResponseReturnValue

from appliance.demo import http
from appliance.demo.bank import identity, operations
from appliance.demo.bank.store import BankStore, BankTx, Clock
from appliance.demo.docstore import Doc
from appliance.demo.errors import BadRequest

bp = Blueprint("bank", __name__)
RECENT_TRANSACTIONS = 20
MAX_TRANSACTIONS = 200


def create_app(db_path: str | Path, clock: Clock = time.time) -> Flask:
    """The bank backend's Flask app over the SQLite file at `db_path`; `clock` is the bank's
    time (tests move it to expire codes)."""
    return http.create_backend_app(__name__, BankStore(db_path, clock), bp)


def _store() -> BankStore:
    store = http.current_store()
    assert isinstance(store, BankStore)
    return store


def _write(operation: Callable[..., Doc], body: dict[str, Any], *args: Any,
           **kwargs: Any) -> Doc:
    """Run an operation that takes (tx, now, ...) in one transaction at the bank's time."""
    def action(tx: BankTx) -> Doc:
        return operation(tx, _store().now(), *args, **kwargs)

    return http.write(action, body)


# Reads


@bp.get("/health")
def health() -> ResponseReturnValue:
    return {"status": "ok"}


@bp.post("/users/match")
def match_user() -> ResponseReturnValue:
    """Identity by knowledge: {user_id | name, and 2+ of the four details} -> {user_id}."""
    body = http.json_body()
    details = {name: http.string(body, name) for name in body
               if name not in ("user_id", "name")}
    return _store().read(lambda tx: identity.match_by_knowledge(
        tx, _optional(body, "user_id"), _optional(body, "name"), details))


@bp.get("/users/<user_id>")
def get_user(user_id: str) -> ResponseReturnValue:
    return _store().user(user_id)


@bp.get("/users/<user_id>/accounts")
def get_accounts(user_id: str) -> ResponseReturnValue:
    user = _store().user(user_id)
    return {"user_id": user_id, "accounts": user["accounts"],
            "credit_card_accounts": user["credit_card_accounts"]}


@bp.get("/users/<user_id>/cards")
def get_cards(user_id: str) -> ResponseReturnValue:
    user = _store().user(user_id)
    return {"user_id": user_id, "debit_cards": user["debit_cards"],
            "credit_card_accounts": user["credit_card_accounts"]}


@bp.get("/users/<user_id>/transactions")
def get_transactions(user_id: str) -> ResponseReturnValue:
    """The most recent transactions, newest first: ?limit= (default 20, at most 200)."""
    limit = _limit()
    user = _store().user(user_id)
    return {"user_id": user_id,
            "bank_account_transactions": _newest(user["bank_account_transactions"], "date",
                                                 limit),
            "credit_card_transactions": _newest(user["credit_card_transactions"],
                                                "transaction_date", limit)}


# Writes


@bp.post("/users/<user_id>/disputes")
def file_dispute(user_id: str) -> ResponseReturnValue:
    body = http.json_body()
    return _write(
        operations.file_dispute, body, user_id, http.string(body, "transaction_id"),
        card_last_4_digits=http.string(body, "card_last_4_digits"),
        card_action=http.string(body, "card_action"),
        contacted_merchant=_boolean(body, "contacted_merchant"),
        issue_noticed_date=http.string(body, "issue_noticed_date"),
        dispute_reason=http.string(body, "dispute_reason"),
        resolution_requested=http.string(body, "resolution_requested"),
        partial_refund_amount=_number(body, "partial_refund_amount", required=False))


@bp.post("/users/<user_id>/credit-card-accounts/<account_id>/replacement")
def replace_credit_card(user_id: str, account_id: str) -> ResponseReturnValue:
    body = http.json_body()
    return _write(operations.replace_credit_card, body, user_id, account_id,
                  reason=http.string(body, "reason"),
                  shipping_speed=_optional(body, "shipping_speed") or "standard",
                  shipping_address=_optional(body, "shipping_address"))


@bp.post("/users/<user_id>/debit-cards/<card_id>/freeze")
def freeze_debit_card(user_id: str, card_id: str) -> ResponseReturnValue:
    return _write(operations.freeze_debit_card, _body_or_empty(), user_id, card_id)


@bp.post("/users/<user_id>/debit-cards/<card_id>/replacement")
def replace_debit_card(user_id: str, card_id: str) -> ResponseReturnValue:
    body = http.json_body()
    return _write(operations.replace_debit_card, body, user_id, card_id,
                  reason=http.string(body, "reason"),
                  delivery_option=_optional(body, "delivery_option") or "STANDARD",
                  card_design=_optional(body, "card_design") or "CLASSIC",
                  shipping_address=_optional(body, "shipping_address"))


@bp.post("/users/<user_id>/credit-card-accounts/<account_id>/closure-reason")
def log_closure_reason(user_id: str, account_id: str) -> ResponseReturnValue:
    body = http.json_body()
    return _write(operations.log_closure_reason, body, user_id, account_id,
                  http.string(body, "closure_reason"))


@bp.post("/users/<user_id>/credit-card-accounts/<account_id>/annual-fee-waiver")
def waive_annual_fee(user_id: str, account_id: str) -> ResponseReturnValue:
    return _write(operations.waive_annual_fee, _body_or_empty(), user_id, account_id)


@bp.post("/users/<user_id>/credit-card-accounts/<account_id>/close")
def close_credit_card(user_id: str, account_id: str) -> ResponseReturnValue:
    return _write(operations.close_credit_card, _body_or_empty(), user_id, account_id)


@bp.post("/users/<user_id>/credit-card-accounts/<account_id>/limit-increase")
def request_limit_increase(user_id: str, account_id: str) -> ResponseReturnValue:
    body = http.json_body()
    amount = body.get("requested_increase_amount")
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise BadRequest("'requested_increase_amount' must be a whole number of dollars",
                         code="invalid_field")
    return _write(operations.request_limit_increase, body, user_id, account_id, amount)


@bp.post("/users/<user_id>/credit-card-applications")
def apply_for_credit_card(user_id: str) -> ResponseReturnValue:
    body = http.json_body()
    subscription = body.get("rho_bank_subscription", False)
    if not isinstance(subscription, bool):
        raise BadRequest("'rho_bank_subscription' must be true or false", code="invalid_field")
    annual_income = _number(body, "annual_income")
    assert annual_income is not None
    return _write(operations.apply_for_credit_card, body, user_id,
                  card_type=http.string(body, "card_type"), annual_income=annual_income,
                  rho_bank_subscription=subscription)


@bp.post("/users/<user_id>/referrals")
def submit_referral(user_id: str) -> ResponseReturnValue:
    body = http.json_body()
    return _write(operations.submit_referral, body, user_id, http.string(body, "account_type"))


@bp.post("/users/<user_id>/contact")
def change_contact(user_id: str) -> ResponseReturnValue:
    body = http.json_body()
    return _write(operations.change_contact, body, user_id,
                  email=_optional(body, "email"), phone_number=_optional(body, "phone_number"),
                  address=_optional(body, "address"))


@bp.post("/users/<user_id>/verifications")
def log_verification(user_id: str) -> ResponseReturnValue:
    body = _body_or_empty()
    return _write(operations.log_verification, body, user_id,
                  _optional(body, "method") or "knowledge")


# One-time codes


@bp.post("/users/<user_id>/otp")
def send_code(user_id: str) -> ResponseReturnValue:
    return _write(identity.send_code, _body_or_empty(), user_id)


@bp.post("/users/<user_id>/otp/check")
def check_code(user_id: str) -> ResponseReturnValue:
    body = http.json_body()
    return _write(identity.check_code, body, user_id, http.string(body, "code"))


@bp.get("/demo/otp/<user_id>")
def demo_sent_code(user_id: str) -> ResponseReturnValue:
    """Demo only: the code the customer's phone would have received (there is no SMS)."""
    return _store().read(lambda tx: identity.sent_code(tx, user_id))


@bp.post("/reset")
def reset() -> ResponseReturnValue:
    _store().reset()
    return {"status": "reset"}


# Request parsing


def _body_or_empty() -> dict[str, Any]:
    """Writes without arguments accept no body at all, or a JSON object."""
    return http.json_body() if request.get_data() else {}


def _optional(body: dict[str, Any], name: str) -> str | None:
    return None if body.get(name) is None else http.string(body, name)


def _boolean(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if not isinstance(value, bool):
        raise BadRequest(f"{name!r} must be true or false", code="invalid_field")
    return value


def _number(body: dict[str, Any], name: str, *, required: bool = True) -> float | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise BadRequest(f"{name!r} must be a number", code="invalid_field")
    return float(value)


def _limit() -> int:
    raw = request.args.get("limit", str(RECENT_TRANSACTIONS))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_TRANSACTIONS:
        raise BadRequest(f"limit must be 1 to {MAX_TRANSACTIONS}", code="invalid_parameter")
    return int(raw)


def _newest(records: list[Doc], date_field: str, limit: int) -> list[Doc]:
    return sorted(records, key=lambda r: operations.parse_date(r[date_field], date_field),
                  reverse=True)[:limit]

