#!/usr/bin/env python3
"""The ledger's hash chain, and a standalone verifier of a ledger export.

This file uses the Python standard library only, so that a buyer can copy it (it is also
`scripts/verify_ledger.py`) and check an export on any machine without trusting the appliance:

    python3 verify_ledger.py EXPORT.json

It recomputes every entry's hash from its content and the previous entry's hash, checks that the
sequence numbers follow each other, and prints the count and sum of the amounts per entry type.
When the export holds the period's closed invoice, it recomputes the invoice from the entries
(`invoice_lines`) and compares. It exits 0 when all holds and 1 naming what does not.

The chain: `hash = sha256(prev_hash + canonical_json(content))`, where `content` holds the
entry's CONTENT_KEYS and the first entry of a brand's ledger has `prev_hash` GENESIS. Amounts
are decimal strings (see `amount_text`), never floats, so that sums are exact.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

GENESIS = "0" * 64
#: What an entry's hash covers besides the previous entry's hash.
CONTENT_KEYS = ("brand", "seq", "type", "conversation", "amount", "currency", "body",
                "evidence_sha256", "created_at")


def canonical_json(value: Any) -> str:
    """The one serialisation that is hashed: sorted keys, no spaces, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def amount_text(amount: Decimal) -> str:
    """A finite Decimal as plain decimal text without exponent or trailing zeros ("12.5")."""
    if not amount.is_finite():
        raise ValueError(f"amount must be finite, not {amount}")
    text = format(amount.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def entry_hash(prev_hash: str, entry: Mapping[str, Any]) -> str:
    """The hash of an entry: sha256 of the previous hash followed by its canonical content."""
    content = {key: entry[key] for key in CONTENT_KEYS}
    return hashlib.sha256((prev_hash + canonical_json(content)).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    """The outcome of checking a run of entries: how many, the last hash, and the first
    entry that does not verify (its seq and why), if any."""

    count: int
    head: str
    failed_seq: int | None = None
    problem: str | None = None
    #: Entries whose conversation was deleted by retention or erasure: their chain verifies,
    #: their evidence cannot be recomputed.
    purged: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_chain(entries: Iterable[Mapping[str, Any]], anchor: str = GENESIS,
                first_seq: int = 1) -> ChainCheck:
    """Check entries in order: each links to the one before (the first to `anchor`), has the
    next sequence number (the first has `first_seq`) and hashes to its recorded hash."""
    head, expected_seq, count = anchor, first_seq, 0
    for entry in entries:
        seq = entry.get("seq")
        problem = None
        if seq != expected_seq:
            problem = f"sequence number {seq} where {expected_seq} was expected"
        elif entry.get("prev_hash") != head:
            problem = "its prev_hash is not the hash of the entry before it"
        elif entry_hash(head, entry) != entry.get("hash"):
            problem = "its hash does not match its content"
        if problem is not None:
            return ChainCheck(count, head, seq if isinstance(seq, int) else expected_seq, problem)
        head, expected_seq, count = entry["hash"], expected_seq + 1, count + 1
    return ChainCheck(count, head)


def totals(entries: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], tuple[int, Decimal]]:
    """Count and sum of amounts per (entry type, currency)."""
    sums: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for entry in entries:
        key = (entry["type"], entry["currency"])
        count, total = sums.get(key, (0, Decimal(0)))
        sums[key] = (count + 1, total + Decimal(entry["amount"]))
    return sums


def invoice_lines(entries: Iterable[Mapping[str, Any]], monthly_minimum: Decimal,
                  currency: str) -> dict[str, Any]:
    """A period's invoice from its entries: one line per (outcome type, unit price) of the
    `settled` entries, the `credit` entries (negative), the `reversal` entries (reported only:
    they take back provisional lines, which were never invoiced), and the monthly minimum
    topping up what falls short of it. Amounts as decimal strings."""
    lines: dict[tuple[str, str], tuple[int, Decimal]] = {}
    reversals, credits = (0, Decimal(0)), (0, Decimal(0))
    for entry in entries:
        amount = Decimal(entry["amount"])
        if entry["type"] == "settled":
            key = (str(entry["body"].get("outcome")), str(entry["body"].get("unit_price")))
            count, total = lines.get(key, (0, Decimal(0)))
            lines[key] = (count + 1, total + amount)
        elif entry["type"] == "credit":
            credits = (credits[0] + 1, credits[1] + amount)
        elif entry["type"] == "reversal":
            reversals = (reversals[0] + 1, reversals[1] + amount)
    subtotal = sum((total for _, total in lines.values()), Decimal(0)) + credits[1]
    minimum_applied = max(Decimal(0), monthly_minimum - subtotal)
    return {
        "lines": [{"type": kind, "count": count, "unit_price": unit,
                   "amount": amount_text(total)}
                  for (kind, unit), (count, total) in sorted(lines.items())],
        "reversals": {"count": reversals[0], "amount": amount_text(reversals[1])},
        "credits": {"count": credits[0], "amount": amount_text(credits[1])},
        "minimum_applied": amount_text(minimum_applied),
        "total": amount_text(subtotal + minimum_applied),
        "currency": currency,
    }


def check_export(export: Mapping[str, Any]) -> ChainCheck:
    """Check an export as `appliance ledger export --format json` writes it."""
    entries: Sequence[Mapping[str, Any]] = export["entries"]
    if not entries:
        return ChainCheck(0, export["anchor"])
    return check_chain(entries, anchor=export["anchor"], first_seq=entries[0]["seq"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a Switchboard ledger export.")
    parser.add_argument("export", help="the JSON file written by `appliance ledger export`")
    args = parser.parse_args(argv)
    try:
        with open(args.export, encoding="utf-8") as handle:
            export = json.load(handle)
        result = check_export(export)
        in_period = [e for e in export["entries"][:result.count] if e.get("in_period", True)]
        sums = totals(in_period)
    except (OSError, ValueError, KeyError, TypeError, InvalidOperation) as exc:
        print(f"cannot read {args.export}: {exc!r}", file=sys.stderr)
        return 1
    print(f"brand {export['brand']}, period {export['period']}, anchor {export['anchor']}")
    for (kind, currency), (count, total) in sorted(sums.items()):
        print(f"{kind:<14} {count:>8} {amount_text(total):>14} {currency}")
    if not result.ok:
        print(f"FAILED at entry {result.failed_seq}: {result.problem}")
        return 1
    problem = check_invoice(export)
    if problem is not None:
        print(f"FAILED: {problem}")
        return 1
    print(f"OK: {result.count} entries, head {result.head}")
    return 0


def check_invoice(export: Mapping[str, Any]) -> str | None:
    """Recompute the period's invoice, when the export holds its `invoice_close` entry, from
    the period's other entries, and compare; None when it matches (or there is none)."""
    period = export["period"]
    closes = [e for e in export["entries"]
              if e["type"] == "invoice_close" and e["body"].get("period") == period]
    if not closes:
        return None
    stated = closes[-1]["body"]
    billed = [e for e in export["entries"]
              if e.get("in_period", True) and e["seq"] < closes[-1]["seq"]]
    recomputed = invoice_lines(billed, Decimal(stated["monthly_minimum"]), stated["currency"])
    for key, value in recomputed.items():
        if stated.get(key) != value:
            return f"the invoice's {key} is {stated.get(key)!r}; the entries give {value!r}"
    print(f"invoice {period}: total {stated['total']} {stated['currency']} (recomputed)")
    return None


if __name__ == "__main__":
    sys.exit(main())
