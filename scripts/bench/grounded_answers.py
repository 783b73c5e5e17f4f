"""Grounded answers on the CPU default: prompt size, time to first token and whole answer, with
the answers' correctness beside them, so speed is never bought with accuracy.

Seeds Rho-Bank (its 698 help-center articles, through the real ingestion) in a fresh data dir,
warms the services as a web worker does, then asks each question of
scripts/bench/data/rho_bank_questions.jsonl (customers' phrasings, each with the articles that
answer it) and rho_bank_unanswerable.jsonl in a conversation of its own, through the real turn
pipeline (signals, supervisor, retrieval, the embedded model, the sentence gate). Reports p50/p95
of the prompt tokens, the time to the first text the customer sees and the whole turn, and:
- cited_correct: answerable questions whose reply cites one of the articles that answer them;
- declined_correct: unanswerable questions answered with "I don't know" (no citation);
- wrong_citation: answerable questions answered from another article (a confident wrong answer);
- how each reply was made: the model's draft passing the checks, a quote, a template.

    .venv/bin/python scripts/bench/grounded_answers.py --out bench-results/grounded_answers.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from machine import machine
from stats import summary

from appliance.config import load_settings
from appliance.db.migrate import migrate
from appliance.demo.seed import seed, seed_knowledge
from appliance.llm.base import TextDelta
from appliance.services import build_services

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
BRAND = "rho-bank"


def _load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=REPO / "bench-results" / "grounded_answers.json")
    parser.add_argument("--limit", type=int, default=0, help="Ask only the first N of each set.")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-grounded-"))
    services = build_services(load_settings(
        overrides={"data_dir": str(data_dir)},
        env={"APPLIANCE_CONFIG": str(REPO / "tests" / "empty-config.toml")}))
    services.db.connect()
    migrate(services.db)
    seed(services, knowledge=False)
    seed_knowledge(services, only=BRAND)
    services.warm_up()
    brand = services.brands.get(BRAND)

    answerable = _load(DATA / "rho_bank_questions.jsonl")
    unanswerable = _load(DATA / "rho_bank_unanswerable.jsonl")
    if args.limit:
        answerable, unanswerable = answerable[:args.limit], unanswerable[:args.limit]
    rows = []
    for item in [*answerable, *unanswerable]:
        conversation, _ = services.conversations.start(brand, {}, "bench")
        started = time.perf_counter()
        first: float | None = None
        result = None
        for event in services.conversations.reply(brand, conversation.public_id,
                                                  item["question"]):
            if isinstance(event, TextDelta):
                first = first or time.perf_counter()
            else:
                result = event
        ended = time.perf_counter()
        assert result is not None
        trace = services.conversations.traces(conversation)[-1]
        cited = {source for citation in result.message.citations or ()
                 for source in citation.get("source_ids", ())}
        rows.append({
            "question": item["question"], "gold": item["article_ids"],
            "cited": sorted(cited), "action": trace.decision.get("action"),
            "rule": trace.decision.get("rule"), "model": trace.model,
            "prompt_tokens": trace.prompt_tokens,
            "first_text_ms": round(((first or ended) - started) * 1000, 1),
            "total_ms": round((ended - started) * 1000, 1), "text": result.message.text,
        })

    asked = [r for r in rows if r["gold"]]
    declined = [r for r in rows if not r["gold"]]
    generated = [r for r in rows if r["prompt_tokens"]]
    result_json = {
        "benchmark": "grounded_answers", "date": time.strftime("%Y-%m-%d"),
        "machine": machine(), "brand": BRAND,
        "questions": {"answerable": len(asked), "unanswerable": len(declined)},
        "prompt_tokens": summary([float(r["prompt_tokens"]) for r in generated])
        if generated else None,
        "generated_turns": len(generated),
        "first_text_ms": summary([r["first_text_ms"] for r in rows]),
        "total_ms": summary([r["total_ms"] for r in rows]),
        "answerable_first_text_ms": summary([r["first_text_ms"] for r in asked]),
        "answerable_total_ms": summary([r["total_ms"] for r in asked]),
        "cited_correct": round(sum(bool(set(r["gold"]) & set(r["cited"])) for r in asked)
                               / len(asked), 3),
        "wrong_citation": round(sum(bool(r["cited"]) and not set(r["gold"]) & set(r["cited"])
                                    for r in asked) / len(asked), 3),
        "declined_correct": round(sum(not r["cited"] for r in declined) / len(declined), 3),
        "actions": dict(Counter(str(r["action"]) for r in rows)),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result_json, indent=2))
    print(f"grounded answers on {BRAND}: {len(asked)} answerable, {len(declined)} unanswerable"
          f" ({result_json['machine']['cpu']}, {result_json['machine']['cores']} cores)")
    print(f"{'measure':<28}{'p50':>10}{'p95':>10}")
    for key in ("prompt_tokens", "first_text_ms", "total_ms", "answerable_first_text_ms",
                "answerable_total_ms"):
        values = result_json[key]
        if values:
            print(f"{key:<28}{values['p50']:>10}{values['p95']:>10}")
    for key in ("cited_correct", "wrong_citation", "declined_correct"):
        print(f"{key:<28}{result_json[key]:>10}")
    print("actions:", result_json["actions"])
    services.close()


if __name__ == "__main__":
    main()
