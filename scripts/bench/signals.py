"""What reading a message's signals costs per message, one message at a time, on this machine.

Reads every customer turn of scripts/bench/data/constellation.yaml through the product's
SignalService, as a turn does: one embedding of the message (shared with retrieval), then every
classifier of the brand (intent, sentiment, human request) on that vector and the text.
Reports p50/p95 of the embedding, of all signals together on the shared embedding, and of the
whole path from raw text; the classifiers' versions; and the thread count.

    .venv/bin/python scripts/bench/signals.py --out bench-results/signals.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from appliance.config import load_settings  # noqa: E402
from appliance.llm.manifest import load_manifest  # noqa: E402
from appliance.signals import build_embedder  # noqa: E402
from appliance.signals.service import SignalService  # noqa: E402

DATA = REPO / "scripts" / "bench" / "data" / "constellation.yaml"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))], 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "signals.json")
    args = parser.parse_args()

    settings = load_settings(
        overrides={"data_dir": tempfile.mkdtemp(prefix="bench-signals-"),
                   "llm_threads": args.threads},
        env={"APPLIANCE_CONFIG": str(REPO / "tests" / "empty-config.toml")})
    manifest = load_manifest(settings.model_store)
    embedder = build_embedder(manifest, settings)
    signals = SignalService(manifest, embedder)
    turns = [(c["brand"], t["text"]) for c in yaml.safe_load(DATA.read_text())
             for t in c["turns"]]
    # Load every model before measuring.
    for brand in {brand for brand, _ in turns}:
        signals.read(brand, "hello")

    embed_ms, signals_ms, total_ms = [], [], []
    models: dict[str, str] = {}
    for _ in range(args.repeats):
        for brand, text in turns:
            started = time.perf_counter()
            vector = embedder.embed_one(text)
            embedded = time.perf_counter()
            read = signals.read(brand, text, vector)
            done = time.perf_counter()
            embed_ms.append((embedded - started) * 1000)
            signals_ms.append((done - embedded) * 1000)
            total_ms.append((done - started) * 1000)
            models.update({f"{brand}:{k}" if k == "intent" else k: v
                           for k, v in read.models.items()})
    rows = {"embedding (shared with retrieval)": embed_ms,
            "all signals on the shared embedding": signals_ms,
            "whole path from raw text": total_ms}
    print(f"{'stage':<40}{'p50 ms':>10}{'p95 ms':>10}")
    for name, values in rows.items():
        print(f"{name:<40}{_pct(values, 50):>10}{_pct(values, 95):>10}")
    result = {
        "benchmark": "signals",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "threads": args.threads,
                    "python": platform.python_version()},
        "messages": len(turns) * args.repeats,
        "models": models,
        "ms": {name: {"p50": _pct(values, 50), "p95": _pct(values, 95)}
               for name, values in rows.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
