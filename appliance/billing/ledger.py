"""The ledger: per brand, append-only and hash-chained.

Every billing event is an entry: a provisional outcome, its settlement, a reversal, a dispute,
a credit, an invoice's close. Corrections are new entries; the database refuses UPDATE and
DELETE on the table (migration m0009). Each entry holds the previous entry's hash and its own,
computed over its canonical content (appliance/billing/chain.py), so that changing, removing or
reordering any entry breaks every hash after it, and `verify` finds the first that breaks.

Appending is serialised per brand so that two writers cannot fork the chain: on PostgreSQL by a
transaction-scoped advisory lock on the brand, on SQLite by the write lock its IMMEDIATE
transaction takes. The unique (brand, seq) index is the last guard: a writer that raced anyway
fails instead of forking.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from enum import StrEnum
from typing import Any

import peewee

from appliance.billing.chain import (
    CONTENT_KEYS,
    GENESIS,
    ChainCheck,
    amount_text,
    canonical_json,
    check_chain,
    entry_hash,
)
from appliance.billing.evidence import timestamp, transcript_sha256
from appliance.db.models import Brand, Conversation, LedgerEntry, PurgedConversation, utcnow
from appliance.errors import InvalidRequest

#: The columns of a CSV export, in order.
CSV_COLUMNS = (*CONTENT_KEYS, "prev_hash", "hash", "in_period")
#: The first key of PostgreSQL's two-key advisory locks taken here; the second is the brand id.
ADVISORY_LOCK_CLASS = 0x1ED6E4


class EntryType(StrEnum):
    """What a ledger entry records."""

    PROVISIONAL = "provisional"
    SETTLED = "settled"
    REVERSAL = "reversal"
    DISPUTE = "dispute"
    CREDIT = "credit"
    INVOICE_CLOSE = "invoice_close"

    @property
    def display(self) -> str:
        return ENTRY_DISPLAY[self]


ENTRY_DISPLAY = {
    EntryType.PROVISIONAL: "Outcome attributed, not yet billable",
    EntryType.SETTLED: "Outcome settled: billable",
    EntryType.REVERSAL: "Outcome reversed",
    EntryType.DISPUTE: "A line disputed by the brand",
    EntryType.CREDIT: "Credit to the brand",
    EntryType.INVOICE_CLOSE: "Invoice period closed",
}


def naive_utc(value: dt.datetime) -> dt.datetime:
    """The database's form of a time: naive, in UTC."""
    return value if value.tzinfo is None else value.astimezone(dt.UTC).replace(tzinfo=None)


def month_bounds(period: str) -> tuple[dt.datetime, dt.datetime]:
    """The first instant of a `YYYY-MM` month and of the next, naive UTC."""
    try:
        start = dt.datetime.strptime(period, "%Y-%m")
    except ValueError as exc:
        raise InvalidRequest(f"period: {period!r} is not YYYY-MM", param="period") from exc
    end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start, end


def entry_json(brand: Brand, entry: LedgerEntry) -> dict[str, Any]:
    """An entry as exported and hashed: its content keys plus prev_hash and hash."""
    return {
        "brand": brand.slug, "seq": entry.seq, "type": entry.type,
        "conversation": entry.conversation, "amount": entry.amount,
        "currency": entry.currency, "body": json.loads(entry.body),
        "evidence_sha256": entry.evidence_sha256, "created_at": timestamp(entry.created_at),
        "prev_hash": entry.prev_hash, "hash": entry.hash,
    }


class Ledger:
    """Append to, read, verify and export brands' ledgers."""

    def __init__(self, db: peewee.Database) -> None:
        self._db = db

    def append(
        self, brand: Brand, type: EntryType, *, amount: Decimal, currency: str,
        body: dict[str, Any], conversation: Conversation | None = None,
        at: dt.datetime | None = None,
    ) -> LedgerEntry:
        """Append one entry at the head of the brand's chain and return it.

        `body` is plain JSON (amounts in it as strings; a float or Decimal is refused).
        With a `conversation`, the entry names its public id and carries as evidence the
        sha256 of its transcript as it stands at `at` (default now, naive UTC): messages
        created later do not count. Call inside the caller's transaction to make the entry
        part of the change it bills; the append then commits or rolls back with it.
        """
        at = naive_utc(at or utcnow())
        try:
            body_text = canonical_json(body)
        except TypeError as exc:
            raise InvalidRequest(f"body: not plain JSON ({exc})", param="body") from exc
        if conversation is not None and conversation.brand_id != brand.id:
            raise InvalidRequest("conversation: belongs to another brand", param="conversation")
        with self._write_lock(brand):
            head = self._head(brand)
            content = {
                "brand": brand.slug, "seq": 1 if head is None else head.seq + 1,
                "type": EntryType(type).value,
                "conversation": None if conversation is None else conversation.public_id,
                "amount": amount_text(amount), "currency": currency,
                "body": json.loads(body_text),
                "evidence_sha256": (None if conversation is None
                                    else transcript_sha256(conversation, through=at)),
                "created_at": timestamp(at),
            }
            prev_hash = GENESIS if head is None else head.hash
            return LedgerEntry.create(
                brand=brand, seq=content["seq"], type=content["type"],
                conversation=content["conversation"], amount=content["amount"],
                currency=currency, body=body_text, evidence_sha256=content["evidence_sha256"],
                prev_hash=prev_hash, hash=entry_hash(prev_hash, content), created_at=at)

    @contextmanager
    def _write_lock(self, brand: Brand) -> Iterator[None]:
        """A transaction in which no one else appends to the brand's ledger."""
        if isinstance(self._db, peewee.PostgresqlDatabase):
            with self._db.atomic():
                self._db.execute_sql(  # type: ignore[no-untyped-call]
                    "SELECT pg_advisory_xact_lock(%s, %s)", (ADVISORY_LOCK_CLASS, brand.id))
                yield
        else:
            # IMMEDIATE takes SQLite's write lock at BEGIN, before the head is read. (Inside
            # the caller's transaction this is a savepoint; a writer that read a stale head
            # then fails on the unique (brand, seq) index or SQLite's snapshot check.)
            with self._db.atomic("IMMEDIATE"):
                yield

    def _head(self, brand: Brand) -> LedgerEntry | None:
        entry: LedgerEntry | None = (LedgerEntry.select().where(LedgerEntry.brand == brand)
                                     .order_by(LedgerEntry.seq.desc()).first())
        return entry

    def entries(self, brand: Brand, since: dt.datetime | None = None,
                until: dt.datetime | None = None) -> Iterator[LedgerEntry]:
        """The brand's entries in chain order, those created in [since, until) when given."""
        query = LedgerEntry.select().where(LedgerEntry.brand == brand)
        if since is not None:
            query = query.where(LedgerEntry.created_at >= since)
        if until is not None:
            query = query.where(LedgerEntry.created_at < until)
        yield from query.order_by(LedgerEntry.seq).iterator()

    def billed(self, brand: Brand, since: dt.datetime, until: dt.datetime) -> Decimal:
        """What the outcomes attributed in [since, until) bill, net of those taken back: the
        sum of the provisional and reversal entries written then (settling bills a
        provisional line again, so settled lines are left out)."""
        amounts = (LedgerEntry.select(LedgerEntry.amount).where(
            (LedgerEntry.brand == brand) & (LedgerEntry.created_at >= since)
            & (LedgerEntry.created_at < until)
            & LedgerEntry.type.in_((EntryType.PROVISIONAL, EntryType.REVERSAL))).tuples())
        return sum((Decimal(amount) for (amount,) in amounts.iterator()), Decimal(0))

    def verify(self, brand: Brand) -> ChainCheck:
        """Recompute the brand's chain from its first entry, and each entry's evidence against
        the stored transcript; report the first entry that fails either check."""
        rows = list(self.entries(brand))
        chain = check_chain(entry_json(brand, row) for row in rows)
        purged = {row.public_id for row in PurgedConversation.select(
            PurgedConversation.public_id).where(PurgedConversation.brand == brand)}
        count = 0
        for row in rows[:chain.count]:
            if row.evidence_sha256 is not None and row.conversation in purged:
                count += 1
                continue
            problem = self._evidence_problem(brand, row)
            if problem is not None:
                return ChainCheck(chain.count, chain.head, row.seq, problem, count)
        return dataclasses.replace(chain, purged=count)

    def _evidence_problem(self, brand: Brand, entry: LedgerEntry) -> str | None:
        if entry.evidence_sha256 is None:
            return None
        conversation = Conversation.get_or_none(
            (Conversation.public_id == entry.conversation) & (Conversation.brand == brand))
        if conversation is None:
            # Deleted by retention or erasure is counted by verify(); this is not.
            return f"its conversation {entry.conversation} is missing"
        if transcript_sha256(conversation, through=entry.created_at) != entry.evidence_sha256:
            return f"the transcript of {entry.conversation} changed after it was billed"
        return None

    def export(self, brand: Brand, period: str) -> dict[str, Any]:
        """The entries written in a `YYYY-MM` month, as a self-verifying document.

        It holds the contiguous run of the chain from the period's first entry to its last (or
        to the entry that closed the period's invoice, written after it), each with
        `in_period` (false for the entries after the period, and for one written with a
        back-dated `at`), and `anchor`, the hash its first entry links to: the `head` of the
        export before it.
        appliance/billing/chain.py (scripts/verify_ledger.py) checks it with no appliance.
        """
        start, end = month_bounds(period)
        in_period = ((LedgerEntry.brand == brand) & (LedgerEntry.created_at >= start)
                     & (LedgerEntry.created_at < end))
        first, last = LedgerEntry.select(
            peewee.fn.MIN(LedgerEntry.seq), peewee.fn.MAX(LedgerEntry.seq)
        ).where(in_period).scalar(as_tuple=True)
        closed = self.invoice_close(brand, period)
        if closed is not None and first is not None:
            # The period's invoice is written after it ends: the run reaches it, so that the
            # export verifies the invoice against the entries it bills.
            last = max(last, closed.seq)
        rows = [] if first is None else list(
            LedgerEntry.select().where((LedgerEntry.brand == brand)
                                       & LedgerEntry.seq.between(first, last))
            .order_by(LedgerEntry.seq))
        entries = [entry_json(brand, row) | {"in_period": start <= row.created_at < end}
                   for row in rows]
        anchor = rows[0].prev_hash if rows else self.head_before(brand, end)
        return {"brand": brand.slug, "period": period,
                "exported_at": timestamp(utcnow()), "anchor": anchor,
                "head": entries[-1]["hash"] if entries else anchor, "entries": entries}

    def first_at(self, brand: Brand) -> dt.datetime | None:
        """When the brand's first entry was written (None: an empty ledger)."""
        first = (LedgerEntry.select(LedgerEntry.created_at).where(LedgerEntry.brand == brand)
                 .order_by(LedgerEntry.seq).first())
        return None if first is None else first.created_at

    def invoice_close(self, brand: Brand, period: str) -> LedgerEntry | None:
        """The entry that closed the brand's invoice for `period` (YYYY-MM), if any."""
        entry: LedgerEntry | None = (
            LedgerEntry.select()
            .where((LedgerEntry.brand == brand)
                   & (LedgerEntry.type == EntryType.INVOICE_CLOSE.value)
                   & LedgerEntry.body.contains(canonical_json({"period": period})[1:-1]))
            .order_by(LedgerEntry.seq).first())
        return entry

    def head_before(self, brand: Brand, end: dt.datetime) -> str:
        """The hash of the brand's last entry written before `end` (GENESIS if none)."""
        row = (LedgerEntry.select(LedgerEntry.hash)
               .where((LedgerEntry.brand == brand) & (LedgerEntry.created_at < end))
               .order_by(LedgerEntry.seq.desc()).first())
        return GENESIS if row is None else str(row.hash)


def export_csv(export: dict[str, Any]) -> str:
    """An export as CSV: one row per entry, CSV_COLUMNS, the body as canonical JSON."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for entry in export["entries"]:
        writer.writerow(entry | {"body": canonical_json(entry["body"])})
    return out.getvalue()
