"""Build the labelled PII set (scripts/bench/data/pii_labelled.jsonl) that scripts/bench/pii.py
measures detection on. Each line: {"text", "spans": [[start, end, kind], ...], "source"}.

Labels never come from the detector:
- `sgd`: user and system turns of the Schema-Guided Dialogue training subset (banks, payments,
  flights, hotels, rental cars; CC BY-SA 4.0), with the dataset's own phone_number slot spans
  as PHONE. Every other turn is a negative full of amounts, dates, times and counts.
- `tau_retail`: the τ-bench retail training tasks' instructions (MIT): names, zip codes, order
  ids (#W…), payment method ids; emails labelled where a user's email from the τ-bench
  database appears. Order and item ids must not read as PII.
- `tau2_bank`: τ²-bench banking's transaction descriptions (MIT), as negatives.
- `banking77`: every Banking77 training query with a digit in it (CC BY 4.0): customers'
  own words about cards, transfers and amounts, with no one's details, as negatives.
- `written`: sentences written for this set around values that no public dataset carries in
  customers' words: card numbers (random, Luhn-valid), SSNs, IBANs (valid check digits),
  account numbers, and τ²-bench banking customers' phone numbers, emails and dates of birth;
  with near misses (Luhn-invalid card-length numbers, order and tracking numbers, dates that
  are not birthdays).

    .venv/bin/python scripts/bench/pii_set.py   # reads APPLIANCE_BENCH_DATA (/work/shared/data)
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stdnum import iban, luhn

DATA = Path(os.environ.get("APPLIANCE_BENCH_DATA", "/work/shared/data"))
OUT = Path(__file__).parent / "data" / "pii_labelled.jsonl"
SGD_TURNS = 2500
SEED = 7

Record = dict[str, Any]


def _record(text: str, spans: list[tuple[int, int, str]], source: str) -> Record:
    return {"text": text, "spans": [list(s) for s in sorted(spans)], "source": source}


def sgd(rng: random.Random) -> list[Record]:
    dialogues = json.loads((DATA / "schema_guided_dialogue" / "train_dialogues_subset.json")
                           .read_text())["dialogues"]
    records = []
    for dialogue in dialogues:
        for turn in dialogue["turns"]:
            spans = {(s["start"], s["exclusive_end"], "PHONE") for frame in turn["frames"]
                     for s in frame.get("slots", []) if s["slot"] == "phone_number"}
            records.append(_record(turn["utterance"], list(spans), "sgd"))
    with_phone = [r for r in records if r["spans"]]
    without = [r for r in records if not r["spans"]]
    return with_phone + rng.sample(without, SGD_TURNS - len(with_phone))


def tau_retail() -> list[Record]:
    retail = DATA / "tau_bench" / "retail"
    emails = {u["email"] for u in json.loads((retail / "data" / "users.json").read_text())
              .values()}
    records = []
    for task in json.loads((retail / "tasks_train.json").read_text())["tasks"]:
        text = task["instruction"]
        spans = [(m.start(), m.end(), "EMAIL") for email in emails
                 for m in re.finditer(re.escape(email), text)]
        records.append(_record(text, spans, "tau_retail"))
    return records


def tau2_bank() -> list[Record]:
    db = json.loads((DATA / "tau2_bench" / "banking_knowledge" / "db.json").read_text())
    texts = {t["description"] for t in db["bank_account_transaction_history"]["data"].values()}
    return [_record(text, [], "tau2_bank") for text in sorted(texts)]


def banking77() -> list[Record]:
    with (DATA / "banking77" / "train.csv").open(newline="") as f:
        return [_record(row["text"], [], "banking77") for row in csv.DictReader(f)
                if any(c.isdigit() for c in row["text"])]


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("37", 15), ("6011", 16)])
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    digits = body + luhn.calc_check_digit(body)
    groups = [digits[i:i + 4] for i in range(0, len(digits), 4)]
    return rng.choice([" ".join(groups), "-".join(groups), digits])


def _not_card(rng: random.Random) -> str:
    while True:
        digits = "".join(rng.choice("0123456789") for _ in range(16))
        if not luhn.is_valid(digits):
            return digits


def _ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _iban(rng: random.Random) -> str:
    country, length = rng.choice([("DE", 18), ("GB", 18), ("FR", 23), ("NL", 14)])
    if country == "GB":
        bban = "WEST" + "".join(rng.choice("0123456789") for _ in range(14))
    elif country == "NL":
        bban = "ABNA" + "".join(rng.choice("0123456789") for _ in range(10))
    else:
        bban = "".join(rng.choice("0123456789") for _ in range(length))
    number = country + iban.calc_check_digits(country + "00" + bban) + bban
    return rng.choice([number, " ".join(number[i:i + 4] for i in range(0, len(number), 4))])


#: (template, kind of {value} or None for a negative, value maker)
_TEMPLATES: list[tuple[str, str | None, str]] = [
    ("My card number is {v} and it was charged twice.", "CARD", "card"),
    ("I lost my card, it's {v}", "CARD", "card"),
    ("please refund to the card ending... actually the full number is {v}", "CARD", "card"),
    ("{v} is the card I used for the order", "CARD", "card"),
    ("My tracking number is {v}, where is my package?", None, "not_card"),
    ("Reference {v} on my statement, what is it?", None, "not_card"),
    ("my SSN is {v}", "SSN", "ssn"),
    ("Social security number: {v}. Can you verify me now?", "SSN", "ssn"),
    ("I can give you my social security {v} if you need it", "SSN", "ssn"),
    ("Please send the refund to {v}", "IBAN", "iban"),
    ("My IBAN is {v}, the transfer didn't arrive", "IBAN", "iban"),
    ("account number {v}", "ACCOUNT", "account"),
    ("The money should go to acct # {v}", "ACCOUNT", "account"),
    ("my checking account is {v} and savings is separate", "ACCOUNT", "account"),
    ("order number {v}, it never came", None, "account"),
    ("I have {v} reward points, is that right?", None, "points"),
    ("You can reach me at {v}", "PHONE", "phone"),
    ("my cell is {v} if you need to call", "PHONE", "phone"),
    ("Call me back on {v} please", "PHONE", "phone"),
    ("I'd like to return item {v} from my order", None, "item"),
    ("The item id is {v}, can I exchange it?", None, "item"),
    ("My email is {v}", "EMAIL", "email"),
    ("send the receipt to {v} thanks", "EMAIL", "email"),
    ("I was born on {v}", "DOB", "dob"),
    ("DOB: {v}", "DOB", "dob"),
    ("my date of birth is {v} and my zip is 98101", "DOB", "dob"),
    ("It was delivered on {v} but the box was empty", None, "dob"),
    ("I ordered it on {v}, it's been weeks", None, "dob"),
    ("The charge from {v} is not mine", None, "dob"),
]


def written(rng: random.Random) -> list[Record]:
    db = json.loads((DATA / "tau2_bench" / "banking_knowledge" / "db.json").read_text())
    people = [p for p in db["users"]["data"].values() if p.get("phone_number")]
    retail_items = [item for product in json.loads(
        (DATA / "tau_bench" / "retail" / "data" / "products.json").read_text()).values()
        for item in product["variants"]]

    def value(maker: str) -> str:
        person = rng.choice(people)
        makers: dict[str, Callable[[], str]] = {
            "card": lambda: _card(rng), "not_card": lambda: _not_card(rng),
            "ssn": lambda: _ssn(rng), "iban": lambda: _iban(rng),
            "account": lambda: "".join(rng.choice("0123456789")
                                       for _ in range(rng.randint(8, 12))),
            "points": lambda: str(rng.randint(1000, 99999)),
            "phone": lambda: rng.choice([person["phone_number"],
                                         "(" + person["phone_number"].replace("-", ") ", 1),
                                         "+1 " + person["phone_number"]]),
            "item": lambda: rng.choice(retail_items),
            "email": lambda: person["email"],
            "dob": lambda: rng.choice([person["date_of_birth"],
                                       _long_date(person["date_of_birth"])]),
        }
        return makers[maker]()

    records = []
    for template, kind, maker in _TEMPLATES:
        for _ in range(8):
            v = value(maker)
            text = template.replace("{v}", v)
            start = template.index("{v}")
            records.append(_record(text, [(start, start + len(v), kind)] if kind else [],
                                   "written"))
    return records


def _long_date(mm_dd_yyyy: str) -> str:
    months = ["January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December"]
    month, day, year = (int(p) for p in mm_dd_yyyy.split("/"))
    return f"{months[month - 1]} {day}, {year}"


def main() -> None:
    rng = random.Random(SEED)
    records = sgd(rng) + tau_retail() + tau2_bank() + banking77() + written(rng)
    OUT.write_text("".join(json.dumps(r) + "\n" for r in records))
    by_source: dict[str, int] = {}
    for r in records:
        by_source[r["source"]] = by_source.get(r["source"], 0) + 1
    print(f"{len(records)} texts -> {OUT}: {by_source}")


if __name__ == "__main__":
    main()
