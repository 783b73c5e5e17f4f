"""Rho-Bank's database: one JSON document per user, account, card, transaction and record.

A `DocStore` (appliance/demo/docstore.py) seeded from τ²-bench's banking database
(`data/db.json`): every write is one transaction, with idempotency keys and a reset to the seed.
Two collections start empty and are not τ²'s: `otp_codes` (the hash, expiry and failed tries of
each customer's one-time code) and `otp_outbox` (the codes a real bank would text; only the
demo-only endpoint reads it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from appliance.demo.docstore import Doc, DocStore, SeedRows, Tx, json_seed_rows
from appliance.demo.errors import NotFound

SEED_FILE = Path(__file__).resolve().parent / "data" / "db.json"
#: τ²-bench's tables, each a collection of the same name.
SEED_COLLECTIONS = (
    "users", "accounts", "debit_cards", "credit_card_accounts",
    "credit_card_transaction_history", "bank_account_transaction_history",
    "transaction_disputes", "cash_back_disputes", "debit_card_orders", "credit_card_orders",
    "credit_card_closure_reasons", "credit_card_account_flags",
    "credit_limit_increase_requests", "referrals", "credit_card_applications",
    "verification_history", "payment_history",
)
OTP_COLLECTIONS = ("otp_codes", "otp_outbox")

#: Seconds since the epoch; tests pass a clock they move by hand.
Clock = Callable[[], float]

_BY_USER = "json_extract(doc, '$.user_id') = ?"


@cache
def _seed_rows() -> SeedRows:
    tables: dict[str, Any] = json.loads(SEED_FILE.read_text(encoding="utf-8"))
    return {name: json_seed_rows(tables[name]["data"]) for name in SEED_COLLECTIONS}


class BankTx(Tx):
    """The bank's documents as one transaction sees them. Lookups raise `NotFound`."""

    def user(self, user_id: str) -> Doc:
        return self._one("users", user_id, "user")

    def credit_card_account(self, account_id: str, user_id: str) -> Doc:
        """The user's credit card account; another customer's is not found, as a missing one."""
        return self._one("credit_card_accounts", account_id, "credit card account", user_id)

    def debit_card(self, card_id: str, user_id: str) -> Doc:
        """The user's debit card; another customer's is not found, as a missing one."""
        return self._one("debit_cards", card_id, "debit card", user_id)

    def account(self, account_id: str, user_id: str) -> Doc:
        return self._one("accounts", account_id, "account", user_id)

    def _one(self, collection: str, doc_id: str, what: str, user_id: str | None = None) -> Doc:
        doc = self.get(collection, doc_id)
        if doc is None or (user_id is not None and doc.get("user_id") != user_id):
            raise NotFound(f"{what} {doc_id} not found",
                           code=f"{what.replace(' ', '_')}_not_found")
        return doc

    def of_user(self, collection: str, user_id: str) -> list[Doc]:
        """The documents of a collection whose `user_id` is this user's."""
        return self.docs_where(collection, _BY_USER, (user_id,))

    def of_account(self, collection: str, account_id: str) -> list[Doc]:
        """The documents linked to a credit card account."""
        return self.docs_where(collection, "json_extract(doc, '$.credit_card_account_id') = ?",
                               (account_id,))


class BankStore(DocStore[BankTx]):
    """Rho-Bank's database in the SQLite file at `path`, seeded on first use.

    Reads return plain JSON-able dicts and raise `NotFound`; writes are the functions of
    `appliance.demo.bank.operations` and `appliance.demo.bank.otp`, run with `write`. `clock`
    is the bank's time: dates written, account ages and code expiry.
    """

    COLLECTIONS = (*SEED_COLLECTIONS, *OTP_COLLECTIONS)
    tx_class = BankTx

    def __init__(self, path: str | Path, clock: Clock = time.time) -> None:
        self.clock = clock
        super().__init__(path)

    def seed_rows(self) -> SeedRows:
        return _seed_rows()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def user(self, user_id: str) -> Doc:
        """The user with everything linked to them (see `linked_user`)."""
        with self.reading() as tx:
            return linked_user(tx, user_id)

    def read(self, view: Callable[[BankTx], Doc]) -> Doc:
        """A view computed over one read of the documents."""
        with self.reading() as tx:
            return view(tx)


def linked_user(tx: BankTx, user_id: str) -> Doc:
    """The user's details, then every record linked to them: bank accounts and their
    transactions, debit and credit cards and their transactions, disputes, card orders, closure
    reasons, account flags, limit-increase requests, payments, referrals they made, credit card
    applications (by user id, or for seeded ones by their name) and verification records."""
    user = tx.user(user_id)
    accounts = tx.of_user("accounts", user_id)
    account_ids = [account["account_id"] for account in accounts]
    placeholders = ",".join("?" * len(account_ids))
    bank_transactions = tx.docs_where(
        "bank_account_transaction_history",
        f"json_extract(doc, '$.account_id') IN ({placeholders})", tuple(account_ids),
    ) if account_ids else []
    applications = tx.docs_where(
        "credit_card_applications",
        "json_extract(doc, '$.user_id') = ? OR (json_extract(doc, '$.user_id') IS NULL"
        " AND json_extract(doc, '$.customer_name') = ?)", (user_id, user["name"]))
    return {
        **user,
        "accounts": accounts,
        "bank_account_transactions": bank_transactions,
        "debit_cards": tx.of_user("debit_cards", user_id),
        "credit_card_accounts": tx.of_user("credit_card_accounts", user_id),
        "credit_card_transactions": tx.of_user("credit_card_transaction_history", user_id),
        "transaction_disputes": tx.of_user("transaction_disputes", user_id),
        "cash_back_disputes": tx.of_user("cash_back_disputes", user_id),
        "debit_card_orders": tx.of_user("debit_card_orders", user_id),
        "credit_card_orders": tx.of_user("credit_card_orders", user_id),
        "credit_card_closure_reasons": tx.of_user("credit_card_closure_reasons", user_id),
        "credit_card_account_flags": tx.of_user("credit_card_account_flags", user_id),
        "credit_limit_increase_requests": tx.of_user("credit_limit_increase_requests", user_id),
        "payment_history": tx.of_user("payment_history", user_id),
        "referrals": tx.docs_where("referrals", "json_extract(doc, '$.referrer_id') = ?",
                                   (user_id,)),
        "credit_card_applications": applications,
        "verification_history": tx.of_user("verification_history", user_id),
    }
