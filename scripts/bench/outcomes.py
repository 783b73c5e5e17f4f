"""Outcome attribution and settlement at volume: how long they take and how big the ledger gets.

Writes N conversations of one brand with a contract into a fresh SQLite database (WAL, as the
appliance runs it), shaped like real traffic: a third answered from the knowledge and left,
a sixth answered and thanked, a sixth handed off, a sixth greeting only, a sixth unanswered.
Then, timed: the idle-close job closes them all and attributes each outcome (writing the
provisional ledger lines), `settle` settles them after the window (the settled lines), and
`ledger verify` recomputes the chain and every line's evidence. Prints a small table and
writes JSON.

    .venv/bin/python scripts/bench/outcomes.py --conversations 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from machine import machine

from appliance.billing.contracts import parse_contract, set_contract
from appliance.billing.ledger import Ledger
from appliance.brands import Persona
from appliance.config import load_settings
from appliance.db.migrate import migrate
from appliance.db.models import Conversation, Handoff, LedgerEntry, Message, Outcome, utcnow
from appliance.services import build_services

REPO = Path(__file__).resolve().parents[2]
CITATION = [{"article": "refunds", "title": "Refunds", "location": "", "source_ids": []}]
#: Each kind of conversation: its name, how many of every six, and its turns after the greeting.
KINDS: tuple[tuple[str, int, list[str]], ...] = (
    ("answered", 2, ["how long do refunds take?", "Refunds take 5 to 7 business days."]),
    ("thanked", 1, ["how long do refunds take?", "Refunds take 5 to 7 business days.",
                    "great, thanks!", "You're welcome!"]),
    ("handed_off", 1, ["I want a person", "Connecting you with a colleague."]),
    ("greeting_only", 1, []),
    ("unanswered", 1, ["can I pay with crypto?", "I don't know that one."]),
)
BATCH = 2000


def _seed(services: Any, count: int, at: dt.datetime) -> Counter[str]:
    brand = services.brands.create("bench", "Bench", Persona(
        agent_name="Juniper", tone="Warm.", greeting="Hi!"), actor="bench")
    set_contract(services.db, brand, parse_contract(
        'currency = "EUR"\nprice_per_resolution = 0.99\n'
        f"effective_from = {(at - dt.timedelta(days=30)).date()}\n"), actor="bench")
    plan = [name for name, share, _ in KINDS for _ in range(share)]
    turns = {name: said for name, _, said in KINDS}
    kinds: Counter[str] = Counter()
    for start in range(0, count, BATCH):
        with services.db.atomic():
            rows = [{"public_id": f"conv_{i:012d}", "brand": brand.id, "customer": {},
                     "channel": "web", "status": "active", "created_at": at,
                     "updated_at": at} for i in range(start, min(count, start + BATCH))]
            Conversation.insert_many(rows).execute()
            ids = {c.public_id: c.id for c in Conversation.select(
                Conversation.id, Conversation.public_id).where(
                Conversation.public_id.in_([r["public_id"] for r in rows]))}
            messages, handoffs = [], []
            for i, row in enumerate(rows, start):
                kind = plan[i % len(plan)]
                kinds[kind] += 1
                conversation = ids[row["public_id"]]
                said = ["Hi!", *turns[kind]]
                for n, text in enumerate(said):
                    role = "agent" if n % 2 == 0 else "customer"
                    cited = role == "agent" and n > 0 and kind in ("answered", "thanked") \
                        and n == 2
                    messages.append({
                        "public_id": f"msg_{i:012d}_{n}", "conversation": conversation,
                        "role": role, "text": text, "created_at": at + dt.timedelta(seconds=n),
                        "citations": CITATION if cited else None})
                if kind == "handed_off":
                    handoffs.append({"public_id": f"hof_{i:012d}", "brand": brand.id,
                                     "conversation": conversation, "reason": "human_request",
                                     "status": "resolved", "packet": {}, "summary": "",
                                     "created_at": at})
            Message.insert_many(messages).execute()
            if handoffs:
                Handoff.insert_many(handoffs).execute()
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "outcomes.json")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-outcomes-"))
    settings = load_settings(overrides={"data_dir": data_dir},
                             env={"APPLIANCE_CONFIG": str(REPO / "tests" / "empty-config.toml")})
    services = build_services(settings)
    migrate(services.db)
    at = utcnow() - dt.timedelta(days=10)
    started = time.perf_counter()
    kinds = _seed(services, args.conversations, at)
    seeded_s = time.perf_counter() - started

    started = time.perf_counter()
    closed = services.conversations.close_idle(idle_minutes=60)
    attribute_s = time.perf_counter() - started
    started = time.perf_counter()
    settled = services.outcomes.settle(now=utcnow() + dt.timedelta(days=30))
    settle_s = time.perf_counter() - started
    brand = services.brands.get("bench")
    started = time.perf_counter()
    check = Ledger(services.db).verify(brand)
    verify_s = time.perf_counter() - started

    types = Counter(o.type for o in Outcome.select(Outcome.type))
    entries = LedgerEntry.select().count()
    db_bytes = sum(p.stat().st_size for p in data_dir.glob("appliance.db*"))
    rows = [("attribute (idle close)", closed, attribute_s),
            ("settle", settled, settle_s),
            ("ledger verify", check.count, verify_s)]
    print(f"{'step':<26}{'items':>10}{'seconds':>10}{'per 1,000':>12}")
    for name, items, seconds in rows:
        print(f"{name:<26}{items:>10}{seconds:>10.1f}{seconds / max(items, 1) * 1000:>11.2f}s")
    print(f"outcomes: {dict(types)}; ledger: {entries} entries, chain ok: {check.ok}; "
          f"database {db_bytes / 2**20:.0f} MiB")
    result = {
        "benchmark": "outcomes", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "conversations": args.conversations, "kinds": dict(kinds), "seed_s": round(seeded_s, 1),
        "steps": {name: {"items": items, "seconds": round(seconds, 2)}
                  for name, items, seconds in rows},
        "outcomes": dict(types), "ledger_entries": entries, "chain_ok": check.ok,
        "database_bytes": db_bytes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    services.close()
    os.environ.pop("APPLIANCE_CONFIG", None)


if __name__ == "__main__":
    main()
