"""scripts/verify_ledger.py, as a buyer runs it: a copy of the one file, in an isolated Python
with nothing of the appliance importable, on a real export and on a tampered one."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from appliance.billing.ledger import EntryType, Ledger
from appliance.db.models import Brand, Conversation

#: The `verifier` fixture (tests/billing/conftest.py): runs the script on an export.
Verifier = Callable[[dict[str, object], Path], subprocess.CompletedProcess[str]]

AT = dt.datetime(2026, 12, 2, 10)


def december(ledger: Ledger, brand: Brand, talk: Callable[..., Conversation]) -> dict[str, object]:
    for n, (kind, amount) in enumerate([
        (EntryType.PROVISIONAL, "0.99"), (EntryType.PROVISIONAL, "12.50"),
        (EntryType.SETTLED, "0.99"), (EntryType.SETTLED, "12.50"),
        (EntryType.REVERSAL, "-0.99"), (EntryType.CREDIT, "-2.25"),
    ]):
        conversation = talk("customer: thanks, that fixed it", "agent: glad to help!")
        ledger.append(brand, kind, amount=Decimal(amount), currency="EUR",
                      body={"line": n}, conversation=conversation,
                      at=AT + dt.timedelta(hours=n))
    return ledger.export(brand, "2026-12")


def test_it_verifies_a_real_export_and_prints_totals_per_type(
    ledger: Ledger, brand: Brand, talk: Callable[..., Conversation], tmp_path: Path,
    verifier: Verifier,
) -> None:
    export = december(ledger, brand, talk)

    result = verifier(export, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert ["provisional", "2", "13.49", "EUR"] in lines
    assert ["settled", "2", "13.49", "EUR"] in lines
    assert ["reversal", "1", "-0.99", "EUR"] in lines
    assert ["credit", "1", "-2.25", "EUR"] in lines
    assert lines[-1] == ["OK:", "6", "entries,", "head", str(export["head"])]


def test_it_exits_1_naming_the_first_entry_of_a_tampered_export(
    ledger: Ledger, brand: Brand, talk: Callable[..., Conversation], tmp_path: Path,
    verifier: Verifier,
) -> None:
    export = december(ledger, brand, talk)
    entries = export["entries"]
    assert isinstance(entries, list)
    entries[3]["amount"] = "1.50"

    result = verifier(export, tmp_path)

    assert result.returncode == 1
    assert "FAILED at entry 4: its hash does not match its content" in result.stdout
