"""The ledger: hash-chained per brand, refused UPDATE and DELETE by the database itself, and
verified against the transcripts it bills."""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import peewee
import pytest
from click.testing import Result

from appliance.billing.chain import GENESIS, check_chain, check_export, entry_hash
from appliance.billing.evidence import transcript_sha256
from appliance.billing.ledger import CSV_COLUMNS, EntryType, Ledger, month_bounds
from appliance.brands import persona_of
from appliance.db.models import Brand, Conversation, LedgerEntry, Message
from appliance.errors import InvalidRequest
from appliance.services import Services

Talk = Callable[..., Conversation]
NOV = dt.datetime(2026, 11, 20, 12)
DEC = dt.datetime(2026, 12, 3, 9)


def bill(ledger: Ledger, brand: Brand, conversation: Conversation | None = None,
         type: EntryType = EntryType.PROVISIONAL, amount: str = "0.99",
         at: dt.datetime | None = None) -> LedgerEntry:
    return ledger.append(brand, type, amount=Decimal(amount), currency="EUR",
                         body={"outcome": "resolved", "how": "confirmed"},
                         conversation=conversation, at=at)


def test_it_chains_each_entry_to_the_one_before(
    ledger: Ledger, brand: Brand, talk: Talk
) -> None:
    conversation = talk("customer: where is my order?", "agent: it ships today.")

    first = bill(ledger, brand, conversation)
    second = bill(ledger, brand, conversation, EntryType.SETTLED)
    third = bill(ledger, brand, type=EntryType.CREDIT, amount="-0.99")

    assert [e.seq for e in (first, second, third)] == [1, 2, 3]
    assert first.prev_hash == GENESIS
    assert (second.prev_hash, third.prev_hash) == (first.hash, second.hash)
    assert first.evidence_sha256 == transcript_sha256(conversation)
    assert third.evidence_sha256 is None and third.amount == "-0.99"
    result = ledger.verify(brand)
    assert (result.ok, result.count, result.head) == (True, 3, third.hash)


def test_it_keeps_one_chain_per_brand(services: Services, ledger: Ledger, brand: Brand) -> None:
    other = services.brands.create("other", "Other", persona_of(brand), actor="test")

    bill(ledger, brand)
    theirs = bill(ledger, other)

    assert (theirs.seq, theirs.prev_hash) == (1, GENESIS)
    assert ledger.verify(other).count == 1


@pytest.mark.parametrize("statement", [
    "UPDATE ledger_entry SET amount = '0'",
    "DELETE FROM ledger_entry",
])
def test_the_database_refuses_to_change_or_remove_an_entry(
    services: Services, ledger: Ledger, brand: Brand, statement: str
) -> None:
    entry = bill(ledger, brand)

    with pytest.raises(peewee.IntegrityError, match="append-only"), services.db.atomic():
        services.db.execute_sql(statement)  # type: ignore[no-untyped-call]

    assert LedgerEntry.get_by_id(entry.id).amount == "0.99"


def test_a_brand_with_a_ledger_cannot_be_deleted(
    services: Services, ledger: Ledger, brand: Brand
) -> None:
    bill(ledger, brand)

    with pytest.raises(peewee.IntegrityError), services.db.atomic():
        Brand.delete().where(Brand.id == brand.id).execute()

    assert Brand.get_or_none(Brand.id == brand.id) is not None


def test_verify_names_the_entry_whose_transcript_was_edited_after_billing(
    ledger: Ledger, brand: Brand, talk: Talk
) -> None:
    kept = talk("customer: hello", "agent: hi, how can I help?")
    billed = talk("customer: I want to cancel", "agent: done, you keep the discount.")
    bill(ledger, brand, kept)
    edited = bill(ledger, brand, billed)
    bill(ledger, brand, kept, EntryType.SETTLED)

    Message.update(text="agent: I could not help.").where(
        Message.public_id == f"{billed.public_id}_m1").execute()
    result = ledger.verify(brand)

    assert not result.ok
    assert result.failed_seq == edited.seq
    assert billed.public_id in (result.problem or "")


def test_messages_after_an_entry_do_not_change_its_evidence(
    ledger: Ledger, brand: Brand, talk: Talk
) -> None:
    conversation = talk("customer: thanks!", "agent: glad to help.")
    entry = bill(ledger, brand, conversation)

    Message.create(public_id="msg_later", conversation=conversation, role="customer",
                   text="one more thing", created_at=entry.created_at + dt.timedelta(seconds=1))

    assert ledger.verify(brand).ok
    assert transcript_sha256(conversation) != entry.evidence_sha256


def test_it_refuses_a_body_that_is_not_plain_json(ledger: Ledger, brand: Brand) -> None:
    with pytest.raises(InvalidRequest):
        ledger.append(brand, EntryType.CREDIT, amount=Decimal(1), currency="EUR",
                      body={"value": Decimal("1.5")})

    assert LedgerEntry.select().count() == 0


def test_two_writers_at_once_extend_one_chain(
    services: Services, ledger: Ledger, brand: Brand
) -> None:
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(15):
                bill(ledger, brand)
        except BaseException as exc:  # reported below: a thread's exception is otherwise lost
            errors.append(exc)
        finally:
            services.db.close()

    threads = [threading.Thread(target=writer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    result = ledger.verify(brand)
    assert (result.ok, result.count) == (True, 30)


def exported(ledger: Ledger, brand: Brand, talk: Talk) -> dict[str, Any]:
    """A December export after a November entry: three entries anchored on November's."""
    bill(ledger, brand, at=NOV)
    conversation = talk("customer: my card is lost", "agent: a new one is on its way.")
    bill(ledger, brand, conversation, at=DEC)
    bill(ledger, brand, conversation, EntryType.SETTLED, at=DEC + dt.timedelta(days=3))
    bill(ledger, brand, type=EntryType.CREDIT, amount="-0.99", at=DEC + dt.timedelta(days=4))
    return ledger.export(brand, "2026-12")


def test_an_export_holds_the_period_anchored_on_the_entry_before_it(
    ledger: Ledger, brand: Brand, talk: Talk
) -> None:
    export = exported(ledger, brand, talk)

    november = ledger.export(brand, "2026-11")
    assert [e["seq"] for e in export["entries"]] == [2, 3, 4]
    assert export["anchor"] == november["head"] == november["entries"][0]["hash"]
    assert check_export(export).ok
    assert ledger.export(brand, "2027-01")["entries"] == []
    assert ledger.export(brand, "2027-01")["anchor"] == export["head"]


@pytest.mark.parametrize(("tamper", "seq"), [
    (lambda entries: entries[1].update(amount="9.99"), 3),
    (lambda entries: entries[0]["body"].update(how="assumed"), 2),
    (lambda entries: entries.pop(1), 4),
    (lambda entries: entries.reverse(), 4),
])
def test_recomputing_a_tampered_export_names_the_first_bad_entry(
    ledger: Ledger, brand: Brand, talk: Talk, tamper: Callable[[list[Any]], Any], seq: int
) -> None:
    export = copy.deepcopy(exported(ledger, brand, talk))

    tamper(export["entries"])
    result = check_export(export)

    assert (result.ok, result.failed_seq) == (False, seq)


def test_a_rehashed_forgery_does_not_link_to_the_real_head(
    ledger: Ledger, brand: Brand, talk: Talk
) -> None:
    export = exported(ledger, brand, talk)
    forged = copy.deepcopy(export["entries"])
    forged[0]["amount"] = "0.01"
    head = export["anchor"]
    for entry in forged:
        entry["prev_hash"], entry["hash"] = head, entry_hash(head, entry)
        head = entry["hash"]

    assert check_chain(forged, anchor=export["anchor"], first_seq=2).ok
    assert ledger.verify(brand).head == export["head"] != head


def test_a_period_is_a_calendar_month() -> None:
    assert month_bounds("2026-12") == (dt.datetime(2026, 12, 1), dt.datetime(2027, 1, 1))
    with pytest.raises(InvalidRequest):
        month_bounds("2026-13")


def test_ledger_verify_exits_0_with_the_count_and_head_then_1_after_an_edit(
    invoke: Callable[..., Result], ledger: Ledger, brand: Brand, talk: Talk
) -> None:
    conversation = talk("customer: is it refundable?", "agent: yes, within 30 days.")
    entry = bill(ledger, brand, conversation)

    good = invoke("ledger", "verify", "--brand", "acme")
    Message.update(text="no").where(Message.public_id == f"{conversation.public_id}_m1").execute()
    bad = invoke("ledger", "verify", "--brand", "acme")

    assert good.exit_code == 0, good.output
    assert good.stdout.strip() == f"acme: 1 entries verified, head {entry.hash}"
    assert bad.exit_code == 1
    assert "entry 1 does not verify" in bad.stderr and conversation.public_id in bad.stderr


def test_ledger_export_writes_json_and_csv(
    invoke: Callable[..., Result], ledger: Ledger, brand: Brand, talk: Talk, tmp_path: Path
) -> None:
    exported(ledger, brand, talk)
    out = tmp_path / "dec.json"

    as_json = invoke("ledger", "export", "--brand", "acme", "--period", "2026-12",
                     "--format", "json", "--out", str(out))
    as_csv = invoke("ledger", "export", "--brand", "acme", "--period", "2026-12",
                    "--format", "csv")

    assert as_json.exit_code == 0, as_json.output
    document = json.loads(out.read_text())
    assert check_export(document).ok and len(document["entries"]) == 3
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["seq"], r["type"], r["amount"]) for r in rows] == [
        ("2", "provisional", "0.99"), ("3", "settled", "0.99"), ("4", "credit", "-0.99")]
    assert json.loads(rows[0]["body"]) == {"how": "confirmed", "outcome": "resolved"}


def test_an_entry_appended_in_the_callers_transaction_rolls_back_with_it(
    services: Services, ledger: Ledger, brand: Brand
) -> None:
    class Abandoned(Exception):
        pass

    with pytest.raises(Abandoned), services.db.atomic():
        bill(ledger, brand)
        raise Abandoned

    kept = bill(ledger, brand)
    assert (kept.seq, kept.prev_hash) == (1, GENESIS)
    assert ledger.verify(brand).count == 1
