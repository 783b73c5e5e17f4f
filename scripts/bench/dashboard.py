"""The reports' query time at volume: the dashboard's figures over a million conversations.

Writes N conversations (default 1,000,000) of ten brands into a fresh database, in bulk: half
are the measured brand's, spread evenly over the last 365 days. Nine in ten have an outcome
(resolved confirmed, assumed or by a workflow; saved; upsold with a value; escalated with a
handoff; unresolved; abandoned, one in five of them greeting only), one in three ran one of
four workflows (its funnel stage set), one in five has a rating. Then, timed (each the median
of --repeat runs, after one to warm the caches): the reporting service's summary of that brand
over 30, 90 and 365 days, by day and by workflow, the whole box's over 90 days, and the
conversation list behind one figure. Billing is left out (the brand has no contract): it reads
the ledger, whose volume scripts/bench/outcomes.py measures. Prints a small table and writes
JSON.

    .venv/bin/python scripts/bench/dashboard.py                       # SQLite
    .venv/bin/python scripts/bench/dashboard.py --database-url postgresql://...   # an empty DB
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine import machine

from appliance.brands import Persona
from appliance.config import load_settings
from appliance.db.migrate import migrate
from appliance.db.models import Conversation, Feedback, Handoff, Outcome, utcnow
from appliance.reporting import DateRange, Selection
from appliance.services import Services, build_services

REPO = Path(__file__).resolve().parents[2]
BRANDS = 10
BATCH = 4000
WORKFLOWS = ("cancel_order", "return_item", "apply_card", "close_card")
#: (type, how, rule, share of every 20 ended conversations)
OUTCOMES = (("resolved", "assumed", "answered_then_left", 5),
            ("resolved", "confirmed", "confirmed_in_words", 3),
            ("resolved", "workflow", "workflow_resolved", 2),
            ("saved", None, "workflow_saved", 1), ("upsell", None, "workflow_upsold", 1),
            ("escalated", None, "handed_off", 3), ("unresolved", None, "not_answered", 2),
            ("abandoned", None, "left_mid_workflow", 2), ("abandoned", None, "greeting_only", 1))
PLAN = [entry for entry in OUTCOMES for _ in range(entry[3])]


def _rows(brand_ids: list[int], start: int, stop: int, now: dt.datetime,
          count: int) -> list[tuple[Any, ...]]:
    """Conversations [start, stop), with their ids (the database is fresh): even ones of the
    measured brand (the first), the others round the rest; created evenly over the last 365
    days, newest last."""
    conversations = []
    for i in range(start, stop):
        brand = brand_ids[0] if i % 2 == 0 else brand_ids[1 + (i // 2) % (len(brand_ids) - 1)]
        at = now - dt.timedelta(days=365) * (1 - i / count)
        conversations.append((i + 1, f"conv_{i:012d}", brand, "{}", "web", "closed", at, at))
    return conversations


def _seed(services: Services, count: int, now: dt.datetime) -> None:
    brand_ids = [services.brands.create(f"bench-{n}", f"Bench {n}", Persona(
        agent_name="Juniper", tone="Warm.", greeting="Hi!"), actor="bench").id
        for n in range(BRANDS)]
    fields = (Conversation.id, Conversation.public_id, Conversation.brand, Conversation.customer,
              Conversation.channel, Conversation.status, Conversation.created_at,
              Conversation.updated_at)
    for start in range(0, count, BATCH):
        rows = _rows(brand_ids, start, min(count, start + BATCH), now, count)
        with services.db.atomic():
            Conversation.insert_many(rows, fields=fields).execute()
            _children([(row[0], row[2], row[6]) for row in rows], start)


def _children(ids: list[tuple[int, int, dt.datetime]], start: int) -> None:
    """Outcomes, handoffs and ratings of a batch of conversations."""
    outcomes, handoffs, ratings = [], [], []
    for n, (conversation, brand, at) in enumerate(ids, start):
        if n % 10 == 9:
            continue  # still open
        kind, how, rule, _ = PLAN[n % len(PLAN)]
        workflow = WORKFLOWS[n % len(WORKFLOWS)] if n % 3 == 0 or rule.startswith(
            "workflow") else None
        stage = (4 if rule.startswith("workflow") else 1 + n % 3) if workflow else 0
        outcomes.append((conversation, brand, kind, how, "settled", "{}", "0" * 64, at, at,
                         rule, workflow, stage, 30000 if kind == "upsell" else 0))
        if kind == "escalated":
            handoffs.append((f"hof_{n:012d}", brand, conversation,
                             ("human_request", "frustration_high", "tool_failure")[n % 3],
                             "resolved", "{}", "", at))
        if n % 5 == 0:
            ratings.append((conversation, 1 + n % 5, at))
    Outcome.insert_many(outcomes, fields=(
        Outcome.conversation, Outcome.brand, Outcome.type, Outcome.how, Outcome.state,
        Outcome.evidence, Outcome.transcript_sha256, Outcome.attributed_at, Outcome.settles_at,
        Outcome.rule, Outcome.workflow, Outcome.stage, Outcome.value_cents)).execute()
    if handoffs:
        Handoff.insert_many(handoffs, fields=(
            Handoff.public_id, Handoff.brand, Handoff.conversation, Handoff.reason,
            Handoff.status, Handoff.packet, Handoff.summary, Handoff.created_at)).execute()
    Feedback.insert_many(ratings, fields=(Feedback.conversation, Feedback.csat,
                                          Feedback.created_at)).execute()


def _timed(run: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """The median seconds of `repeat` runs after a warm-up one, and the last result."""
    result = run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="An empty database (default: a new SQLite).")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "dashboard.json")
    args = parser.parse_args()

    overrides: dict[str, Any] = {"data_dir": Path(tempfile.mkdtemp(prefix="bench-dashboard-"))}
    if args.database_url:
        overrides["database_url"] = args.database_url
    settings = load_settings(overrides=overrides,
                             env={"APPLIANCE_CONFIG": str(REPO / "tests" / "empty-config.toml")})
    services = build_services(settings)
    migrate(services.db)
    now = utcnow()
    started = time.perf_counter()
    _seed(services, args.conversations, now)
    seed_s = time.perf_counter() - started
    brand = services.brands.get("bench-0")
    if args.database_url:
        services.db.execute_sql("ANALYZE")  # type: ignore[no-untyped-call]
    reports = services.reports

    def since(days: int) -> DateRange:
        return DateRange(now - dt.timedelta(days=days), now + dt.timedelta(seconds=1))

    cases: list[tuple[str, Callable[[], Any]]] = [
        ("brand, 30 days", lambda: reports.summary(brand, since(30))),
        ("brand, 90 days", lambda: reports.summary(brand, since(90))),
        ("brand, 90 days by day", lambda: reports.summary(brand, since(90), "day")),
        ("brand, 365 days", lambda: reports.summary(brand, since(365))),
        ("brand, 365 days by workflow", lambda: reports.summary(brand, since(365), "workflow")),
        ("box, 90 days", lambda: reports.summary(None, since(90))),
        ("list: escalated, 90 days", lambda: reports.conversations(
            [brand.id], since(90), Selection(outcome="escalated"))),
    ]
    rows = []
    for name, run in cases:
        seconds, result = _timed(run, args.repeat)
        counted = result.totals.conversations if hasattr(result, "totals") else result[0]
        rows.append((name, counted, seconds))
    backend = "postgresql" if args.database_url else "sqlite"
    print(f"{args.conversations:,} conversations on {backend}; seeded in {seed_s:.0f} s")
    print(f"{'query':<30}{'conversations':>15}{'seconds':>10}")
    for name, counted, seconds in rows:
        print(f"{name:<30}{counted:>15,}{seconds:>10.2f}")
    result = {
        "benchmark": "dashboard", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "backend": backend, "conversations": args.conversations, "seed_s": round(seed_s, 1),
        "repeat": args.repeat,
        "queries": {name: {"conversations": counted, "seconds": round(seconds, 3)}
                    for name, counted, seconds in rows},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    services.close()


if __name__ == "__main__":
    main()
