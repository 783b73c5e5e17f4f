"""What each of Rho-Bank's writes does, by the rules of its help center (τ²-bench banking).

Each function takes the transaction's `BankTx` and the bank's time `now`, checks everything
before it changes anything, saves what it changed and returns the record it made or changed.
Run them with `BankStore.write`. Dates are stored as τ² stores them (MM/DD/YYYY), money as
"$1,234.56". Ids of new records are a prefix and random hex, as τ²'s are.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import date, datetime, timedelta

from appliance.demo.bank.store import BankTx
from appliance.demo.docstore import Doc
from appliance.demo.errors import BadRequest, Conflict, NotFound

#: Credit card products by tier ("Provisional Credit Eligibility Guidelines"); τ²'s data
#: spells the crypto card both ways.
CARD_TIERS: Mapping[str, str] = {
    "Bronze Rewards Card": "entry", "EcoCard": "entry", "Business Bronze Rewards Card": "entry",
    "Crypto-Cash Back Card": "entry", "Crypto-Cash Back": "entry",
    "Silver Rewards Card": "mid", "Business Silver Rewards Card": "mid",
    "Green Rewards Card": "mid", "Silver Zoom Card": "mid",
    "Gold Rewards Card": "premium", "Business Gold Rewards Card": "premium",
    "Platinum Rewards Card": "elite", "Business Platinum Rewards Card": "elite",
    "Diamond Elite Card": "invitation",
}
PROVISIONAL_CREDIT_MAX = {"entry": 2500.0, "mid": 5000.0, "premium": 10000.0,
                          "elite": 15000.0, "invitation": 25000.0}
PROVISIONAL_CREDIT_MIN = 25.0
PROVISIONAL_CREDIT_REASONS = ("unauthorized_fraudulent_charge", "duplicate_charge",
                              "goods_services_not_received")
FRAUD_REASON = "unauthorized_fraudulent_charge"
DISPUTE_REASONS = (*PROVISIONAL_CREDIT_REASONS, "incorrect_amount",
                   "goods_services_not_as_described", "canceled_subscription_still_charging",
                   "refund_never_processed")
RESOLUTIONS = ("full_refund", "partial_refund", "reversal_of_charge")
CARD_ACTIONS = ("keep_active", "cancel_and_reissue")
#: A dispute or replacement in one of these states is still open.
OPEN_DISPUTE = ("SUBMITTED", "UNDER_REVIEW", "PENDING")
OPEN_CARD_ORDER = ("ORDERED", "PENDING", "PROCESSING", "SHIPPED")

REPLACEMENT_REASONS = ("fraud_suspected", "lost", "stolen", "damaged", "expired", "other")
#: Business days to deliver a replacement credit card at each speed (the longest promised).
CREDIT_CARD_DELIVERY_DAYS = {"standard": 10, "expedited": 3}
#: A debit card's delivery: (fee, business days); its design: fee ("Ordering a Debit Card").
DEBIT_CARD_DELIVERY = {"STANDARD": (0.0, 10), "EXPEDITED": (15.0, 5), "RUSH": (35.0, 2)}
DEBIT_CARD_DESIGN_FEES = {"CLASSIC": 0.0, "PREMIUM": 10.0, "CUSTOM": 25.0}
#: Reasons that end the old debit card at once; a damaged or expired one works until the new
#: one is activated.
DEBIT_CARD_CLOSED_AT_ONCE = ("lost", "stolen", "fraud_suspected")

CLOSURE_REASONS = ("annual_fee", "not_using_card", "found_better_card", "unhappy_with_rewards",
                   "simplifying_finances", "negative_experience", "other")
MIN_AGE_TO_CLOSE_DAYS = 60
MIN_AGE_FOR_PROVISIONAL_CREDIT_DAYS = 60
GOODS_NOT_RECEIVED_WAIT_DAYS = 30
MAX_DISPUTES_PER_YEAR = 2
LOYALTY_WAIVER_MIN_DAYS = 2 * 365

#: Credit-limit increases ("CLI Eligibility Requirements by Card Tier", "CLI Payment History
#: and Approval Criteria"): the largest increase as a share of the limit, and the cooldown
#: after an approved request. Elite and invitation cards follow the premium rules.
CLI_MAX_SHARE = {"entry": 0.25, "mid": 0.5, "premium": 0.5, "elite": 0.5, "invitation": 0.5}
CLI_COOLDOWN_DAYS = {"entry": 120, "mid": 90, "premium": 60, "elite": 60, "invitation": 60}

#: At most two referrals in a rolling window: 7 days for credit cards, 9 for bank accounts.
REFERRALS_PER_WINDOW = 2
CARD_REFERRAL_WINDOW_DAYS = 7
ACCOUNT_REFERRAL_WINDOW_DAYS = 9

VERIFICATION_METHODS = ("knowledge", "one_time_code", "asserted")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


# Disputes


def file_dispute(tx: BankTx, now: datetime, user_id: str, transaction_id: str, *,
                 card_last_4_digits: str, card_action: str, contacted_merchant: bool,
                 issue_noticed_date: str, dispute_reason: str, resolution_requested: str,
                 partial_refund_amount: float | None) -> Doc:
    """Dispute one of the user's credit card transactions.

    The bank decides provisional credit by its guidelines (account open 60+ days; fraud,
    duplicate, or goods not received on a purchase over 30 days old; $25 up to the tier's
    maximum; no more than 2 disputes in 12 months; the merchant contacted first unless it is
    fraud) and, when eligible, credits the amount to the card's balance at once.
    """
    user = tx.user(user_id)
    transaction = tx.get("credit_card_transaction_history", transaction_id)
    if transaction is None or transaction["user_id"] != user_id:
        raise NotFound(f"transaction {transaction_id} not found", code="transaction_not_found")
    _one_of("card_action", card_action, CARD_ACTIONS)
    _one_of("dispute_reason", dispute_reason, DISPUTE_REASONS)
    _one_of("resolution_requested", resolution_requested, RESOLUTIONS)
    if not re.fullmatch(r"\d{4}", card_last_4_digits):
        raise BadRequest("card_last_4_digits must be 4 digits", code="invalid_field")
    noticed = parse_date(issue_noticed_date, "issue_noticed_date")
    amount = parse_money(transaction["transaction_amount"])
    if resolution_requested == "partial_refund":
        if partial_refund_amount is None or not 0 < partial_refund_amount < amount:
            raise BadRequest("a partial refund needs partial_refund_amount between 0 and the"
                             " transaction's amount", code="invalid_partial_refund")
    elif partial_refund_amount is not None:
        raise BadRequest("partial_refund_amount goes only with a partial refund",
                         code="invalid_partial_refund")
    disputes = tx.of_user("transaction_disputes", user_id)
    if any(d["transaction_id"] == transaction_id for d in disputes):
        raise Conflict("this transaction is already disputed", code="already_disputed")
    account = _card_account_of(tx, transaction)
    purchased = parse_date(transaction["transaction_date"], "transaction_date")
    if noticed < purchased or noticed > now.date():
        raise BadRequest("issue_noticed_date must be between the purchase and today",
                         code="invalid_date")
    recent = [d for d in disputes
              if now.date() - parse_date(d["submitted_at"], "submitted_at") <= timedelta(365)]
    eligible = (
        _age_days(account, now) >= MIN_AGE_FOR_PROVISIONAL_CREDIT_DAYS
        and dispute_reason in PROVISIONAL_CREDIT_REASONS
        and (dispute_reason != "goods_services_not_received"
             or (now.date() - purchased).days > GOODS_NOT_RECEIVED_WAIT_DAYS)
        and PROVISIONAL_CREDIT_MIN <= amount <= PROVISIONAL_CREDIT_MAX[_tier(account)]
        and len(recent) <= MAX_DISPUTES_PER_YEAR
        and (contacted_merchant or dispute_reason == FRAUD_REASON)
    )
    if eligible:
        account["current_balance"] = format_money(
            parse_money(account["current_balance"]) - amount)
        tx.put("credit_card_accounts", account["account_id"], account)
    dispute = {
        "dispute_id": new_id("dsp"), "transaction_id": transaction_id, "user_id": user_id,
        "credit_card_account_id": account["account_id"], "card_action": card_action,
        "card_last_4_digits": card_last_4_digits, "full_name": user["name"],
        "phone": user["phone_number"], "email": user["email"], "address": user["address"],
        "contacted_merchant": contacted_merchant,
        "purchase_date": transaction["transaction_date"],
        "issue_noticed_date": format_date(noticed), "dispute_reason": dispute_reason,
        "resolution_requested": resolution_requested,
        "partial_refund_amount": partial_refund_amount,
        "eligible_for_provisional_credit": eligible, "provisional_credit_given": eligible,
        "submitted_at": format_date(now.date()), "status": "UNDER_REVIEW",
    }
    tx.put("transaction_disputes", dispute["dispute_id"], dispute)
    return dispute


# Cards


def replace_credit_card(tx: BankTx, now: datetime, user_id: str, account_id: str, *, reason: str,
                        shipping_speed: str, shipping_address: str | None) -> Doc:
    """Order a new card for a credit card account; the old card stops working at once. One
    replacement at a time; ships to the address on file unless another is given."""
    account = _open_card_account(tx, account_id, user_id)
    _one_of("reason", reason, REPLACEMENT_REASONS)
    _one_of("shipping_speed", shipping_speed, tuple(CREDIT_CARD_DELIVERY_DAYS))
    if _open_card_orders(tx, account_id):
        raise Conflict("a replacement card is already on its way for this account",
                       code="replacement_pending")
    user = tx.user(user_id)
    order = {
        "order_id": new_id("ccord"), "credit_card_account_id": account_id,
        "user_id": account["user_id"], "shipping_address": shipping_address or user["address"],
        "reason": reason, "expedited_shipping": shipping_speed == "expedited",
        "order_date": format_date(now.date()),
        "expected_delivery": format_date(
            add_business_days(now.date(), CREDIT_CARD_DELIVERY_DAYS[shipping_speed])),
        "status": "ORDERED", "previous_card_cancelled": True,
    }
    tx.put("credit_card_orders", order["order_id"], order)
    return order


def freeze_debit_card(tx: BankTx, now: datetime, user_id: str, card_id: str) -> Doc:
    """Freeze an active debit card: new transactions are declined until it is unfrozen."""
    card = tx.debit_card(card_id, user_id)
    if card["status"] != "ACTIVE":
        raise Conflict(f"only an active card can be frozen (this one is {card['status']})",
                       code="card_not_active")
    card["status"] = "FROZEN"
    card["frozen_at"] = format_date(now.date())
    tx.put("debit_cards", card_id, card)
    return card


def replace_debit_card(tx: BankTx, now: datetime, user_id: str, card_id: str, *, reason: str,
                       delivery_option: str, card_design: str,
                       shipping_address: str | None) -> Doc:
    """Order a new debit card for the same checking account. A lost, stolen or compromised
    card is closed at once; delivery and design fees are taken from the checking account,
    and the order fails when it cannot pay them."""
    card = tx.debit_card(card_id, user_id)
    _one_of("reason", reason, REPLACEMENT_REASONS)
    _one_of("delivery_option", delivery_option, tuple(DEBIT_CARD_DELIVERY))
    _one_of("card_design", card_design, tuple(DEBIT_CARD_DESIGN_FEES))
    if card["status"] == "CLOSED" and reason not in DEBIT_CARD_CLOSED_AT_ONCE:
        raise Conflict("this card is closed", code="card_closed")
    account = tx.account(card["account_id"], user_id)
    if account["status"] != "OPEN":
        raise Conflict("the linked checking account is not open", code="account_not_open")
    delivery_fee, days = DEBIT_CARD_DELIVERY[delivery_option]
    total = delivery_fee + DEBIT_CARD_DESIGN_FEES[card_design]
    holdings = float(account["current_holdings"])
    if holdings < total:
        raise Conflict("the checking account cannot pay the card's fees",
                       code="insufficient_funds")
    if total:
        account["current_holdings"] = f"{holdings - total:.2f}"
        tx.put("accounts", account["account_id"], account)
    if reason in DEBIT_CARD_CLOSED_AT_ONCE:
        card["status"] = "CLOSED"
        card["closure_reason"] = reason
        tx.put("debit_cards", card_id, card)
    user = tx.user(user_id)
    order = {
        "order_id": new_id("dcord"), "account_id": card["account_id"],
        "user_id": card["user_id"], "replaces_card_id": card_id, "reason": reason,
        "delivery_option": delivery_option, "card_design": card_design,
        "shipping_address": shipping_address or user["address"],
        "delivery_fee": delivery_fee, "design_fee": DEBIT_CARD_DESIGN_FEES[card_design],
        "total_fee": total, "order_date": format_date(now.date()),
        "expected_delivery": format_date(add_business_days(now.date(), days)),
        "status": "PENDING",
    }
    tx.put("debit_card_orders", order["order_id"], order)
    return order


# Closing a credit card and keeping the customer


def log_closure_reason(tx: BankTx, now: datetime, user_id: str, account_id: str,
                       closure_reason: str) -> Doc:
    """Record why the customer wants to close the card (the retention protocol's step 3)."""
    account = _open_card_account(tx, account_id, user_id)
    _one_of("closure_reason", closure_reason, CLOSURE_REASONS)
    record = {"record_id": new_id("clsr"), "credit_card_account_id": account_id,
              "user_id": account["user_id"], "closure_reason": closure_reason,
              "logged_at": format_date(now.date()), "status": "LOGGED"}
    tx.put("credit_card_closure_reasons", record["record_id"], record)
    return record


def waive_annual_fee(tx: BankTx, now: datetime, user_id: str, account_id: str) -> Doc:
    """The retention offer for a customer of 2+ years: the annual fee waived for a year. A
    newer account is refused (the help center offers a no-fee downgrade instead)."""
    account = _open_card_account(tx, account_id, user_id)
    if _age_days(account, now) < LOYALTY_WAIVER_MIN_DAYS:
        raise Conflict("an annual fee waiver needs an account open for 2 years or more",
                       code="not_eligible_for_waiver")
    if any(flag["flag_type"] == "annual_fee_waived" and flag["status"] == "ACTIVE"
           for flag in tx.of_account("credit_card_account_flags", account_id)):
        raise Conflict("the annual fee is already waived", code="already_waived")
    today = now.date()
    flag = {"flag_id": new_id("ccflag"), "credit_card_account_id": account_id,
            "user_id": account["user_id"], "flag_type": "annual_fee_waived",
            "effective_date": format_date(today),
            "expiration_date": format_date(today.replace(year=today.year + 1)
                                           if (today.month, today.day) != (2, 29)
                                           else today + timedelta(365)),
            "reason": "loyalty_benefit", "applied_at": format_date(today), "status": "ACTIVE"}
    tx.put("credit_card_account_flags", flag["flag_id"], flag)
    return flag


def close_credit_card(tx: BankTx, now: datetime, user_id: str, account_id: str) -> Doc:
    """Close a credit card account: only with a $0.00 balance, no open dispute, open 60+
    days, and no replacement card on its way."""
    account = _open_card_account(tx, account_id, user_id)
    if parse_money(account["current_balance"]) != 0:
        raise Conflict("the balance must be $0.00 to close the account",
                       code="balance_not_zero")
    if _open_disputes(tx, account):
        raise Conflict("the account has a dispute still open", code="pending_disputes")
    if _age_days(account, now) < MIN_AGE_TO_CLOSE_DAYS:
        raise Conflict(f"the account must be open for {MIN_AGE_TO_CLOSE_DAYS} days",
                       code="account_too_new")
    if _open_card_orders(tx, account_id):
        raise Conflict("a replacement card is on its way", code="replacement_pending")
    account["status"] = "CLOSED"
    account["closed_date"] = format_date(now.date())
    tx.put("credit_card_accounts", account_id, account)
    return account


# Limits, applications, referrals


def request_limit_increase(tx: BankTx, now: datetime, user_id: str, account_id: str,
                           amount: int) -> Doc:
    """Submit a credit-limit increase request. Refused above the tier's largest increase (a
    share of the current limit, where the limit is on file) and within the cooldown after an
    approved request; the bank's review decides it later."""
    account = _open_card_account(tx, account_id, user_id)
    if amount <= 0:
        raise BadRequest("requested_increase_amount must be a positive whole number",
                         code="invalid_field")
    tier = _tier(account)
    if "credit_limit" in account:
        largest = int(parse_money(account["credit_limit"]) * CLI_MAX_SHARE[tier])
        if amount > largest:
            raise BadRequest(f"the largest increase for this card is ${largest:,}",
                             code="exceeds_tier_maximum")
    for earlier in tx.of_account("credit_limit_increase_requests", account_id):
        submitted = parse_date(earlier["submitted_date"], "submitted_date")
        if earlier["status"] == "APPROVED" and \
                (now.date() - submitted).days < CLI_COOLDOWN_DAYS[tier]:
            raise Conflict("a request was approved too recently; the cooldown is"
                           f" {CLI_COOLDOWN_DAYS[tier]} days", code="cooldown_period_active")
        if earlier["status"] == "SUBMITTED":
            raise Conflict("a request for this account is already being reviewed",
                           code="request_pending")
    request = {"request_id": new_id("cli"), "credit_card_account_id": account_id,
               "user_id": account["user_id"], "requested_increase_amount": amount,
               "submitted_date": format_date(now.date()), "status": "SUBMITTED"}
    tx.put("credit_limit_increase_requests", request["request_id"], request)
    return request


def apply_for_credit_card(tx: BankTx, now: datetime, user_id: str, *, card_type: str,
                          annual_income: float, rho_bank_subscription: bool) -> Doc:
    """Apply for one of the bank's credit cards in the customer's own name; one application
    per card type at a time."""
    user = tx.user(user_id)
    _one_of("card_type", card_type, tuple(CARD_TIERS))
    if annual_income < 0:
        raise BadRequest("annual_income must not be negative", code="invalid_field")
    if any(a["card_type"] == card_type and a["status"] == "PENDING"
           for a in tx.of_user("credit_card_applications", user_id)):
        raise Conflict("an application for this card is already pending",
                       code="application_pending")
    application = {"application_id": secrets.token_hex(8), "user_id": user_id,
                   "card_type": card_type, "customer_name": user["name"],
                   "annual_income": annual_income,
                   "rho_bank_subscription": rho_bank_subscription, "status": "PENDING",
                   "date": format_date(now.date())}
    tx.put("credit_card_applications", application["application_id"], application)
    return application


def submit_referral(tx: BankTx, now: datetime, user_id: str, account_type: str) -> Doc:
    """Refer someone to a card or account. A third referral within the rolling window (7 days
    for cards, 9 for bank accounts) is recorded as REJECTED, as the program rules say."""
    tx.user(user_id)
    if not account_type.strip():
        raise BadRequest("account_type must be a non-empty string", code="invalid_field")
    window = (CARD_REFERRAL_WINDOW_DAYS if account_type in CARD_TIERS
              else ACCOUNT_REFERRAL_WINDOW_DAYS)
    recent = [r for r in tx.docs_where("referrals", "json_extract(doc, '$.referrer_id') = ?",
                                       (user_id,))
              if r["referral_status"] != "REJECTED"
              and (now.date() - parse_date(r["date"], "date")).days < window]
    referral = {"referral_id": secrets.token_hex(8), "referrer_id": user_id,
                "referred_account_type": account_type,
                "referral_status": ("REJECTED" if len(recent) >= REFERRALS_PER_WINDOW
                                    else "NO_PROGRESS"),
                "date": format_date(now.date())}
    tx.put("referrals", referral["referral_id"], referral)
    return referral


# The customer's details


def change_contact(tx: BankTx, now: datetime, user_id: str, *, email: str | None,
                   phone_number: str | None, address: str | None) -> Doc:
    """Change any of the email, phone number (stored as 555-555-0100) and address."""
    user = tx.user(user_id)
    if email is None and phone_number is None and address is None:
        raise BadRequest("give email, phone_number or address", code="nothing_to_change")
    if email is not None:
        if not EMAIL_RE.fullmatch(email.strip()):
            raise BadRequest("email is not an email address", code="invalid_email")
        user["email"] = email.strip()
    if phone_number is not None:
        digits = re.sub(r"\D", "", phone_number)
        if len(digits) != 10:
            raise BadRequest("phone_number must have 10 digits", code="invalid_phone_number")
        user["phone_number"] = f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
    if address is not None:
        if not address.strip():
            raise BadRequest("address must not be empty", code="invalid_field")
        user["address"] = address.strip()
    tx.put("users", user_id, user)
    return user


def log_verification(tx: BankTx, now: datetime, user_id: str, method: str) -> Doc:
    """The audit record the bank's policy asks for once a customer is verified: their details
    as on file, how they were verified and when."""
    user = tx.user(user_id)
    _one_of("method", method, VERIFICATION_METHODS)
    record = {"name": user["name"], "user_id": user_id, "address": user["address"],
              "email": user["email"], "phone_number": user["phone_number"],
              "date_of_birth": user["date_of_birth"], "method": method,
              "time_verified": now.strftime("%Y-%m-%d %H:%M:%S UTC")}
    # Ids sort in the order records were made, even two within one second.
    sequence = len(tx.of_user("verification_history", user_id))
    tx.put("verification_history", f"{user_id}_{now:%Y%m%d%H%M%S}_{sequence:04d}", record)
    return record


# Helpers


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def parse_date(value: str, name: str) -> date:
    """An MM/DD/YYYY date; a malformed one is the caller's error."""
    try:
        return datetime.strptime(value, "%m/%d/%Y").date()
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a date as MM/DD/YYYY", code="invalid_date") from None


def format_date(value: date) -> str:
    return value.strftime("%m/%d/%Y")


def parse_money(value: str | float) -> float:
    """'$1,038.52' (as τ² stores amounts) or a number."""
    return value if isinstance(value, float | int) else float(value.replace("$", "")
                                                               .replace(",", ""))


def format_money(value: float) -> str:
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def add_business_days(start: date, days: int) -> date:
    current = start
    while days:
        current += timedelta(1)
        if current.weekday() < 5:
            days -= 1
    return current


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise BadRequest(f"{name} must be one of {', '.join(map(repr, allowed))}",
                         code=f"invalid_{name}")


def _tier(account: Doc) -> str:
    return CARD_TIERS.get(account["card_type"], "entry")


def _age_days(account: Doc, now: datetime) -> int:
    return (now.date() - parse_date(account["date_of_account_open"],
                                    "date_of_account_open")).days


def _open_card_account(tx: BankTx, account_id: str, user_id: str) -> Doc:
    account = tx.credit_card_account(account_id, user_id)
    if account.get("status") == "CLOSED":
        raise Conflict("this credit card account is closed", code="account_closed")
    return account


def _open_card_orders(tx: BankTx, account_id: str) -> list[Doc]:
    return [order for order in tx.of_account("credit_card_orders", account_id)
            if order["status"] in OPEN_CARD_ORDER]


def _open_disputes(tx: BankTx, account: Doc) -> list[Doc]:
    """The account's disputes still open (τ²'s seeded disputes name only the transaction)."""
    disputes = []
    for dispute in tx.of_user("transaction_disputes", account["user_id"]):
        account_id = dispute.get("credit_card_account_id")
        if account_id is None:
            transaction = tx.get("credit_card_transaction_history", dispute["transaction_id"])
            account_id = None if transaction is None else \
                _card_account_of(tx, transaction)["account_id"]
        if account_id == account["account_id"] and dispute["status"] in OPEN_DISPUTE:
            disputes.append(dispute)
    return disputes


def _card_account_of(tx: BankTx, transaction: Doc) -> Doc:
    """The card account a transaction was made on: named in the transaction, or the user's
    account of the transaction's card type."""
    if "credit_card_account_id" in transaction:
        return tx.credit_card_account(transaction["credit_card_account_id"],
                                      transaction["user_id"])
    for account in tx.of_user("credit_card_accounts", transaction["user_id"]):
        if account["card_type"] == transaction["credit_card_type"]:
            return account
    raise Conflict("the card this transaction was made on has no account here",
                   code="card_account_not_found")
