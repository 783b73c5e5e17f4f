"""Disputes: a brand contests a billed line, and the appliance's administrator decides.

Everything is a ledger entry, so a dispute and its decision are as tamper-evident as the line:

- A brand user (a cx_editor or it_admin of that brand, or an it_admin of the box) disputes a
  `settled` line with a reason: a `dispute` entry, amount 0, body
  `{"line_seq", "reason", "by"}`. A line has at most one dispute.
- An it_admin accepts it, which appends a `credit` of minus the line's amount (body
  `{"dispute_seq", "line_seq", "reason", "by"}`, the next invoice subtracts it), or rejects it
  with a reason: a `dispute` entry, amount 0, body `{"decision": "rejected", "dispute_seq",
  "reason", "by"}`. A dispute is decided once.

Each step is also in the audit log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import peewee

from appliance import audit
from appliance.billing.ledger import EntryType, Ledger
from appliance.db.models import AdminUser, Brand, Conversation, LedgerEntry
from appliance.errors import Conflict, InvalidRequest, NotFound, PermissionDenied

IT_ADMIN = "it_admin"
#: Roles that may dispute their brand's lines.
DISPUTERS = frozenset({"cx_editor", IT_ADMIN})


@dataclass(frozen=True)
class Dispute:
    seq: int
    line_seq: int
    reason: str
    by: str
    #: open | accepted | rejected
    state: str
    decision: dict[str, Any] | None = None


class DisputeService:
    def __init__(self, db: peewee.Database, ledger: Ledger) -> None:
        self._db = db
        self._ledger = ledger

    def open(self, brand: Brand, line_seq: int, reason: str, user: AdminUser) -> Dispute:
        """Dispute the brand's settled line `line_seq`."""
        if user.role not in DISPUTERS or (user.brand_id not in (None, brand.id)):
            raise PermissionDenied("only a cx_editor or it_admin of the brand may dispute its "
                                   "lines", code="forbidden")
        reason = _reason(reason)
        with self._db.atomic():
            line = self._entry(brand, line_seq)
            if line.type != EntryType.SETTLED.value:
                raise InvalidRequest(f"line {line_seq} is a {line.type} entry; only settled "
                                     "lines are billed and can be disputed", param="line")
            if any(d.line_seq == line_seq for d in self.list(brand)):
                raise Conflict(f"line {line_seq} is already disputed", code="already_disputed")
            entry = self._ledger.append(
                brand, EntryType.DISPUTE, amount=Decimal(0), currency=line.currency,
                body={"line_seq": line_seq, "reason": reason, "by": user.username})
            audit.record(user.username, "ledger.dispute", brand.slug,
                         {"line_seq": line_seq, "dispute_seq": entry.seq, "reason": reason})
        return Dispute(entry.seq, line_seq, reason, user.username, "open")

    def decide(self, brand: Brand, dispute_seq: int, *, accept: bool, reason: str,
               user: AdminUser) -> Dispute:
        """Accept (a credit of the line's amount) or reject an open dispute; it_admin only."""
        if user.role != IT_ADMIN or user.brand_id not in (None, brand.id):
            raise PermissionDenied("only an it_admin decides disputes", code="forbidden")
        reason = _reason(reason)
        with self._db.atomic():
            dispute = next((d for d in self.list(brand) if d.seq == dispute_seq), None)
            if dispute is None:
                raise NotFound(f"no dispute {dispute_seq} for brand {brand.slug!r}",
                               code="dispute_not_found")
            if dispute.state != "open":
                raise Conflict(f"dispute {dispute_seq} is already {dispute.state}",
                               code="dispute_decided")
            line = self._entry(brand, dispute.line_seq)
            body = {"dispute_seq": dispute_seq, "line_seq": dispute.line_seq,
                    "reason": reason, "by": user.username}
            if accept:
                self._ledger.append(brand, EntryType.CREDIT, amount=-Decimal(line.amount),
                                    currency=line.currency, body=body,
                                    conversation=self._conversation(line))
            else:
                self._ledger.append(brand, EntryType.DISPUTE, amount=Decimal(0),
                                    currency=line.currency,
                                    body={"decision": "rejected", **body})
            audit.record(user.username, "ledger.dispute." + ("accept" if accept else "reject"),
                         brand.slug, body)
        return next(d for d in self.list(brand) if d.seq == dispute_seq)

    def list(self, brand: Brand) -> list[Dispute]:
        """The brand's disputes, oldest first, each with its state read from the ledger."""
        rows = [(e.seq, e.type, json.loads(e.body)) for e in LedgerEntry.select().where(
            (LedgerEntry.brand == brand) & LedgerEntry.type.in_(
                [EntryType.DISPUTE.value, EntryType.CREDIT.value])).order_by(LedgerEntry.seq)]
        decisions = {body["dispute_seq"]: (kind, body) for _, kind, body in rows
                     if "dispute_seq" in body}
        disputes = []
        for seq, kind, body in rows:
            if kind != EntryType.DISPUTE.value or "line_seq" not in body or "decision" in body:
                continue
            decided = decisions.get(seq)
            state = ("open" if decided is None
                     else "accepted" if decided[0] == EntryType.CREDIT.value else "rejected")
            disputes.append(Dispute(seq, body["line_seq"], body["reason"], body["by"], state,
                                    None if decided is None else decided[1]))
        return disputes

    def _entry(self, brand: Brand, seq: int) -> LedgerEntry:
        entry = LedgerEntry.get_or_none((LedgerEntry.brand == brand) & (LedgerEntry.seq == seq))
        if entry is None:
            raise NotFound(f"no ledger line {seq} for brand {brand.slug!r}",
                           code="line_not_found")
        return entry

    @staticmethod
    def _conversation(line: LedgerEntry) -> Conversation | None:
        if line.conversation is None:
            return None
        found: Conversation | None = Conversation.get_or_none(
            Conversation.public_id == line.conversation)
        return found


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason or len(reason) > 1000:
        raise InvalidRequest("reason: 1 to 1000 characters", param="reason")
    return reason
