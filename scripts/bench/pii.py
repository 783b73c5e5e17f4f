"""PII detection on the labelled set (scripts/bench/data/pii_labelled.jsonl, built by
scripts/bench/pii_set.py): precision and recall per kind and per source, and the cost per
text, for appliance.privacy.detect and, with --presidio, for Microsoft Presidio's pattern
recognisers on the same texts; and what redaction at rest adds to a turn: the conversation's
vault opened, the customer's message and the reply redacted, the vault sealed again
(appliance/privacy/vault.py), over conversations of 8 turns made of the set's texts.

A found span is right when a labelled span of the same kind overlaps it; a labelled span is
found when a found span of its kind overlaps it. Presidio is not a dependency of the appliance:
install `presidio-analyzer` into the venv to compare (its e-mail recogniser tries to download
the public-suffix list; offline it logs the failure and goes on).

    .venv/bin/python scripts/bench/pii.py [--presidio] [--out bench-results/pii.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from machine import machine
from stats import pct

from appliance.privacy.detect import KINDS, Detector
from appliance.privacy.vault import Vaults

REPO = Path(__file__).resolve().parents[2]
SET = Path(__file__).parent / "data" / "pii_labelled.jsonl"
#: Presidio's entity names for ours; its DATE_TIME stands for a date of birth, since it has
#: no narrower recogniser.
PRESIDIO_KINDS = {"CREDIT_CARD": "CARD", "US_SSN": "SSN", "IBAN_CODE": "IBAN",
                  "US_BANK_NUMBER": "ACCOUNT", "PHONE_NUMBER": "PHONE",
                  "EMAIL_ADDRESS": "EMAIL", "DATE_TIME": "DOB"}
PRESIDIO_THRESHOLD = 0.3

Spans = list[tuple[int, int, str]]


def ours() -> Callable[[str], Spans]:
    detector = Detector()
    return lambda text: [(s.start, s.end, s.kind) for s in detector.find(text)]


def presidio() -> Callable[[str], Spans]:
    from presidio_analyzer import predefined_recognizers as p

    recognizers = [p.CreditCardRecognizer(), p.UsSsnRecognizer(), p.IbanRecognizer(),
                   p.UsBankRecognizer(), p.PhoneRecognizer(), p.EmailRecognizer(),
                   p.DateRecognizer()]

    def find(text: str) -> Spans:
        return [(r.start, r.end, PRESIDIO_KINDS[r.entity_type]) for recognizer in recognizers
                for r in recognizer.analyze(text=text, entities=recognizer.supported_entities,
                                            nlp_artifacts=None)
                if r.score >= PRESIDIO_THRESHOLD]

    return find


def _overlaps(a: tuple[int, int, str], b: tuple[int, int, str]) -> bool:
    return a[2] == b[2] and a[0] < b[1] and b[0] < a[1]


def measure(find: Callable[[str], Spans], records: list[dict[str, Any]]) -> dict[str, Any]:
    counts: dict[str, Counter[str]] = {k: Counter() for k in KINDS}
    by_source: dict[str, Counter[str]] = {}
    times_ms = []
    for record in records:
        gold = [tuple(s) for s in record["spans"]]
        started = time.perf_counter()
        found = find(record["text"])
        times_ms.append((time.perf_counter() - started) * 1000)
        source = by_source.setdefault(record["source"], Counter())
        for span in found:
            right = any(_overlaps(span, g) for g in gold)
            counts[span[2]]["tp" if right else "fp"] += 1
            source["found_right" if right else "found_wrong"] += 1
        for g in gold:
            hit = any(_overlaps(g, span) for span in found)
            counts[str(g[2])]["hit" if hit else "miss"] += 1
            source["hit" if hit else "miss"] += 1
    return {
        "by_kind": {kind: _rates(c) for kind, c in counts.items()},
        "overall": _rates(sum(counts.values(), Counter())),
        "by_source": {s: dict(c) for s, c in by_source.items()},
        "ms_per_text": {"p50": pct(times_ms, 50, 3), "p95": pct(times_ms, 95, 3)},
    }


def _rates(c: Counter[str]) -> dict[str, Any]:
    found, labelled = c["tp"] + c["fp"], c["hit"] + c["miss"]
    return {"labelled": labelled, "found": found,
            "precision": round(c["tp"] / found, 3) if found else None,
            "recall": round(c["hit"] / labelled, 3) if labelled else None}


def vault_turns(records: list[dict[str, Any]], turns: int = 8) -> dict[str, Any]:
    """Milliseconds per turn of the vault's work, as ConversationService does it."""
    vaults, detector = Vaults("bench secret"), Detector()
    texts = [r["text"] for r in records]
    times: list[float] = []
    for start in range(0, len(texts) - turns, turns):
        sealed: str | None = None
        for text in texts[start:start + turns]:
            began = time.perf_counter()
            vault = vaults.open(sealed, f"conv_{start}", detector)
            vault.redact(text)
            vault.redact(f"Thanks, I have noted that: {text}")
            if vault.changed:
                sealed = vaults.seal(vault, f"conv_{start}")
            times.append((time.perf_counter() - began) * 1000)
    return {"turns": len(times), "ms_per_turn": {"p50": round(pct(times, 50), 3),
                                                 "p95": round(pct(times, 95), 3)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presidio", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "pii.json")
    args = parser.parse_args()
    records = [json.loads(line) for line in SET.read_text().splitlines()]
    detectors = {"ours": ours()} | ({"presidio": presidio()} if args.presidio else {})
    results = {name: measure(find, records) for name, find in detectors.items()}
    vault = vault_turns(records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": machine(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "texts": len(records), "results": results, "vault": vault}, indent=2))
    print(f"{len(records)} texts")
    print(f"{'kind':<8} {'labelled':>8} " + " ".join(
        f"{name + ' P':>11} {name + ' R':>11} {name + ' found':>13}" for name in results))
    for kind in (*KINDS, "overall"):
        rows = [r["overall"] if kind == "overall" else r["by_kind"][kind]
                for r in results.values()]
        print(f"{kind:<8} {rows[0]['labelled']:>8} " + " ".join(
            f"{_fmt(row['precision']):>11} {_fmt(row['recall']):>11} {row['found']:>13}"
            for row in rows))
    for name, result in results.items():
        print(f"{name}: ms per text p50 {result['ms_per_text']['p50']}, "
              f"p95 {result['ms_per_text']['p95']}; by source {result['by_source']}")
    print(f"vault per turn (open, redact message and reply, seal), {vault['turns']} turns: "
          f"p50 {vault['ms_per_turn']['p50']} ms, p95 {vault['ms_per_turn']['p95']} ms")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    main()
