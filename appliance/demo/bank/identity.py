"""How Rho-Bank knows who it is talking to: details the customer knows, and one-time codes.

Knowledge: a customer named by user id or full name is matched when at least 2 of date of
birth, email, phone number and address agree with the file (the help center's rule); a name
or an id alone never matches. A failed match says nothing about which detail was wrong or
whether the customer exists.

One-time codes: `send_code` makes a 6-digit code valid for `CODE_TTL_S`, keeps only its salted
hash, and puts the code in the demo outbox (a real bank would text it). `check_code` answers
verified / wrong / expired; a code is used once; `MAX_FAILED_CHECKS` wrong codes in a row lock
the customer out of sending and checking for `LOCKOUT_S`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from datetime import datetime

from appliance.demo.bank.store import BankTx
from appliance.demo.docstore import Doc
from appliance.demo.errors import BadRequest, Conflict, NotFound, TooManyAttempts

KNOWLEDGE_FIELDS = ("date_of_birth", "email", "phone_number", "address")
MIN_MATCHING_FIELDS = 2
CODE_DIGITS = 6
CODE_TTL_S = 300
MAX_FAILED_CHECKS = 3
LOCKOUT_S = 900


# Knowledge


def match_by_knowledge(tx: BankTx, user_id: str | None, name: str | None,
                       details: Mapping[str, str]) -> Doc:
    """{"user_id"} of the one customer with this id or name whose file agrees with at least
    two of the details given; otherwise `NotFound` with one message for every failure."""
    unknown = set(details) - set(KNOWLEDGE_FIELDS)
    if unknown:
        raise BadRequest(f"unknown details: {', '.join(sorted(unknown))}",
                         code="invalid_field")
    if (user_id is None) == (name is None):
        raise BadRequest("give either user_id or name", code="invalid_field")
    if user_id is not None:
        found = tx.get("users", user_id)
        candidates = [found] if found is not None else []
    else:
        assert name is not None
        candidates = tx.docs_where("users", "casefold(json_extract(doc, '$.name')) = ?",
                                   (" ".join(name.split()).casefold(),))
    matching = [user for user in candidates
                if sum(_same(field, user[field], value) for field, value in details.items()
                       if field in user) >= MIN_MATCHING_FIELDS]
    if len(matching) != 1:
        raise NotFound("no customer matches these details", code="no_match")
    return {"user_id": matching[0]["user_id"]}


def _same(field: str, on_file: str, given: str) -> bool:
    return _canonical(field, on_file) == _canonical(field, given) != ""


def _canonical(field: str, value: str) -> str:
    """Spellings of one value made equal: case and spaces; a phone number's digits; a date of
    birth as MM/DD/YYYY whether given so or as YYYY-MM-DD."""
    value = " ".join(value.split()).casefold()
    if field == "phone_number":
        return re.sub(r"\D", "", value)[-10:]
    if field == "date_of_birth":
        iso = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", value)
        parts = (iso.group(2), iso.group(3), iso.group(1)) if iso else value.split("/")
        return "/".join(part.zfill(2) for part in parts)
    if field == "address":
        return value.replace(",", "").replace(".", "")
    return value


# One-time codes


def send_code(tx: BankTx, now: datetime, user_id: str) -> Doc:
    """A new code for the customer (replacing any earlier one), sent to the phone on file."""
    user = tx.user(user_id)
    state = _state(tx, user_id, now)
    code = "".join(secrets.choice("0123456789") for _ in range(CODE_DIGITS))
    salt = secrets.token_hex(8)
    state.update({"salt": salt, "code_sha256": _hash(salt, code),
                  "expires_at": now.timestamp() + CODE_TTL_S})
    tx.put("otp_codes", user_id, state)
    tx.put("otp_outbox", user_id, {"user_id": user_id, "code": code,
                                   "phone_number": user["phone_number"]})
    return {"user_id": user_id, "sent_to": _masked(user["phone_number"]),
            "expires_in_s": CODE_TTL_S}


def check_code(tx: BankTx, now: datetime, user_id: str, code: str) -> Doc:
    """{"verified": true}, or {"verified": false, "reason": "wrong" | "expired",
    "attempts_left"}. The failed try is saved (so this is a write, not an error)."""
    tx.user(user_id)
    state = _state(tx, user_id, now)
    if "code_sha256" not in state:
        raise Conflict("no code was sent, or it was already used", code="no_code_sent")
    if now.timestamp() >= state["expires_at"]:
        _forget_code(tx, user_id, state)
        return {"user_id": user_id, "verified": False, "reason": "expired",
                "attempts_left": MAX_FAILED_CHECKS - state["failed"]}
    if hmac.compare_digest(state["code_sha256"], _hash(state["salt"], code.strip())):
        tx.delete("otp_codes", user_id)
        tx.delete("otp_outbox", user_id)
        return {"user_id": user_id, "verified": True}
    state["failed"] += 1
    if state["failed"] >= MAX_FAILED_CHECKS:
        state["locked_until"] = now.timestamp() + LOCKOUT_S
        _forget_code(tx, user_id, state)
    else:
        tx.put("otp_codes", user_id, state)
    return {"user_id": user_id, "verified": False, "reason": "wrong",
            "attempts_left": MAX_FAILED_CHECKS - state["failed"]}


def sent_code(tx: BankTx, user_id: str) -> Doc:
    """The last code sent and not yet used: what the customer's phone would show."""
    message = tx.get("otp_outbox", user_id)
    if message is None:
        raise NotFound("no code waiting for this customer", code="no_code_sent")
    return message


def _state(tx: BankTx, user_id: str, now: datetime) -> Doc:
    """The customer's code state; `TooManyAttempts` while locked out. A lockout that has run
    out starts the count again."""
    state = tx.get("otp_codes", user_id) or {"failed": 0}
    locked_until = state.get("locked_until")
    if locked_until is not None:
        if now.timestamp() < locked_until:
            raise TooManyAttempts("too many wrong codes; try again later")
        state = {"failed": 0}
    return state


def _forget_code(tx: BankTx, user_id: str, state: Doc) -> None:
    for key in ("salt", "code_sha256", "expires_at"):
        state.pop(key, None)
    tx.put("otp_codes", user_id, state)
    tx.delete("otp_outbox", user_id)


def _hash(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def _masked(phone_number: str) -> str:
    return "***-***-" + re.sub(r"\D", "", phone_number)[-4:]
