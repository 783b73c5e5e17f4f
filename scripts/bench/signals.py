"""Reading a message's signals: what it costs, and whether frustration means frustration.

Latency: reads every customer turn of scripts/bench/data/constellation.yaml through the
product's SignalService, as a turn does: one embedding of the message (shared with retrieval),
then every classifier of the brand (intent, sentiment, human request) on that vector and the
text. Reports p50/p95 of the embedding, of all signals together on the shared embedding, and
of the whole path from raw text; the classifiers' versions; and the thread count.

Frustration: reads, through the same service, two sets of public messages that the sentiment
model never trained on (scripts/train_signals.py builds both): calm off-topic text (CLINC150
`val` and `oos_val`) and held-back angry or complaining messages (Banking77 and Bitext rows
that say so in so many words). Reports how many calm messages read as frustrated and how many
angry ones do, at the default brand policy's handoff threshold (`frustration_threshold`) and
at the level rising frustration must reach (`frustration_rising_min`).

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
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from train_signals import DEFAULT_DATA, Datasets, calm_off_topic, held_back_angry  # noqa: E402

from appliance.brands import Supervision  # noqa: E402
from appliance.config import load_settings  # noqa: E402
from appliance.llm.manifest import load_manifest  # noqa: E402
from appliance.signals import build_embedder  # noqa: E402
from appliance.signals.service import SignalService  # noqa: E402

DATA = REPO / "scripts" / "bench" / "data" / "constellation.yaml"
#: The brand whose signals the frustration sets are read with (sentiment is generic).
BRAND = "lumen-goods"
#: Calm messages that read most frustrated, shown so that a regression shows what it is.
SHOWN = 8


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))], 3)


def frustration_quality(signals: SignalService, data: Path) -> dict[str, Any]:
    """Rates of frustration at the default policy's two levels on calm and angry messages."""
    policy = Supervision()
    levels = {"handoff": policy.frustration_threshold, "rising": policy.frustration_rising_min}
    datasets = Datasets.read(data)
    result: dict[str, Any] = {"levels": levels, "models": {}}
    for name, texts in (("calm_off_topic", calm_off_topic(datasets)),
                        ("held_back_angry", held_back_angry(datasets))):
        read = [signals.read(BRAND, text) for text in texts]
        scores = [r.frustration for r in read]
        result["models"].update(read[0].models if read else {})
        result[name] = {
            "n": len(texts),
            **{f"at_{level}": round(sum(s >= value for s in scores) / len(scores), 4)
               for level, value in levels.items()},
            "mean": round(sum(scores) / len(scores), 4),
            "most_frustrated": [[text, round(score, 3)] for score, text in
                                sorted(zip(scores, texts, strict=True), reverse=True)[:SHOWN]],
            "least_frustrated": [[text, round(score, 3)] for score, text in
                                 sorted(zip(scores, texts, strict=True))[:SHOWN]],
        }
    return result


def _print_quality(quality: dict[str, Any]) -> None:
    levels = quality["levels"]
    print(f"\n{'set':<40}{'n':>6}" + "".join(f"{f'>= {v} ({k})':>20}" for k, v in levels.items()))
    for name in ("calm_off_topic", "held_back_angry"):
        row = quality[name]
        print(f"{name:<40}{row['n']:>6}" + "".join(f"{row[f'at_{k}']:>20}" for k in levels))
    print("calm messages that read most frustrated:")
    for text, score in quality["calm_off_topic"]["most_frustrated"]:
        print(f"  {score:.3f}  {text}")
    print("angry messages that read least frustrated:")
    for text, score in quality["held_back_angry"]["least_frustrated"]:
        print(f"  {score:.3f}  {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "signals.json")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="the public datasets directory")
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
    result: dict[str, Any] = {
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
    result["frustration"] = frustration_quality(signals, args.data)
    _print_quality(result["frustration"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
