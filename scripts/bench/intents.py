"""Intent classification: Banking77 5-fold cross-validation, CLINC150 out-of-scope rejection.

Both use the shipped trainer and evaluator (appliance.signals.training) and the real embedder:
- Banking77 (`train.csv`, 10,003 rows, 77 intents, no out-of-scope rows): stratified 5-fold
  cross-validation; each fold trains a model, saves it, loads it as a TextClassifier and
  evaluates it on the held-out fold one message at a time from raw text.
- CLINC150: trains on `train` (150 intents x 100) plus `oos_train_plus` (250 out-of-scope),
  evaluates on `val` plus `oos_val` (3,000 + 100), which play no part in any choice: the
  trainer chooses its scope model and threshold by cross-validation inside the training rows.
  Reports that threshold, and the in-scope / out-of-scope trade-off on val at other
  thresholds.
- CLINC150 with unseen kinds of out-of-scope text: the same, with two of the ten domains
  (chosen with a fixed seed) left out of training; their val rows join `oos_val` as
  out-of-scope. A scope model that only learnt what `oos_train_plus` looks like fails here.

The training texts are embedded once per dataset and passed to the trainer; evaluation embeds
every message itself (that is the latency a turn pays). The script also writes each split as a
CSV and prints the `appliance intents` commands that reproduce each number from them.

    .venv/bin/python scripts/bench/intents.py --out bench-results/intents.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from machine import machine

from appliance.config import load_settings
from appliance.llm.manifest import load_manifest
from appliance.signals import build_embedder
from appliance.signals.base import Embedder
from appliance.signals.classifier import TextClassifier
from appliance.signals.training import METRIC_KEYS, evaluate, save, score, train

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("APPLIANCE_BENCH_DATA", "/work/shared/data"))
FOLDS = 5
SEED = 0
#: CLINC150 domains left out of training in the unseen-kinds check.
UNSEEN_DOMAINS = 2


def _embedder(threads: int) -> Embedder:
    settings = load_settings(overrides={"llm_threads": threads,
                                        "data_dir": tempfile.mkdtemp(prefix="bench-intents-")})
    return build_embedder(load_manifest(REPO / "model_store"), settings)


def _write_csv(path: Path, texts: list[str], labels: list[str], label_col: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", label_col])
        writer.writerows(zip(texts, labels, strict=True))
    return path


def _commands(train_csv: Path, test_csv: Path, model: Path, label_col: str) -> list[str]:
    cols = f" --label-col {label_col}" if label_col != "label" else ""
    train_csv, test_csv, model = (_shown(p) for p in (train_csv, test_csv, model))
    return [f"appliance intents train --csv {train_csv} --out {model}{cols}",
            f"appliance intents eval --model {model} --csv {test_csv}{cols} --json"]


def _shown(path: Path) -> Path:
    """`path` relative to the checkout when it is inside it (commands run from there)."""
    return path.resolve().relative_to(REPO) if path.resolve().is_relative_to(REPO) else path


def _train_and_evaluate(embedder: Embedder, name: str, train_rows: tuple[list[str], list[str]],
                        vectors: np.ndarray, test_rows: tuple[list[str], list[str]],
                        workdir: Path) -> tuple[dict[str, Any], TextClassifier]:
    started = time.perf_counter()
    artefact = train(*train_rows, oos_label="oos", embedder=embedder, vectors=vectors,
                     name=name)
    train_s = time.perf_counter() - started
    classifier = TextClassifier.load(save(artefact, workdir / name), embedder=embedder)
    result = evaluate(classifier, *test_rows, oos_label="oos")
    meta = artefact.meta
    result.update(train_s=round(train_s, 1), model_bytes=meta["model_bytes"],
                  threshold=meta["threshold"], held_out=meta["metrics"])
    return result, classifier


def bench_banking77(embedder: Embedder, csv_dir: Path, workdir: Path) -> dict[str, Any]:
    from sklearn.model_selection import StratifiedKFold

    with (DATA / "banking77" / "train.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    texts, labels = [r["text"] for r in rows], [r["category"] for r in rows]
    started = time.perf_counter()
    vectors = embedder.embed(texts)
    embed_s = time.perf_counter() - started
    folds, commands = [], []
    splitter = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    for k, (train_idx, test_idx) in enumerate(splitter.split(texts, labels), 1):
        train_rows = ([texts[i] for i in train_idx], [labels[i] for i in train_idx])
        test_rows = ([texts[i] for i in test_idx], [labels[i] for i in test_idx])
        result, _ = _train_and_evaluate(embedder, f"banking77-fold{k}", train_rows,
                                        vectors[train_idx], test_rows, workdir)
        folds.append(result)
        print(f"  banking77 fold {k}: accuracy {result['accuracy']}, "
              f"train {result['train_s']} s", flush=True)
        commands += _commands(
            _write_csv(csv_dir / f"banking77-fold{k}-train.csv", *train_rows, "category"),
            _write_csv(csv_dir / f"banking77-fold{k}-test.csv", *test_rows, "category"),
            csv_dir / f"banking77-fold{k}-model", "category")
    mean = {key: round(float(np.mean([f[key] for f in folds])), 4)
            for key in ("accuracy", "macro_f1", "p50_ms", "p95_ms", "train_s")}
    return {"rows": len(texts), "labels": len(set(labels)), "folds": FOLDS,
            "embed_all_s": round(embed_s, 1), "mean": mean,
            "accuracy_per_fold": [f["accuracy"] for f in folds],
            "accuracy_std": round(float(np.std([f["accuracy"] for f in folds])), 4),
            "model_bytes": max(f["model_bytes"] for f in folds),
            "per_fold": folds, "commands": commands}


def bench_clinc150(embedder: Embedder, csv_dir: Path, workdir: Path) -> dict[str, Any]:
    data = json.loads((DATA / "clinc150" / "clinc150_train_val.json").read_text())
    train_items = data["train"] + data["oos_train_plus"]
    test_items = data["val"] + data["oos_val"]
    train_rows = ([t for t, _ in train_items], [label for _, label in train_items])
    test_rows = ([t for t, _ in test_items], [label for _, label in test_items])
    vectors = embedder.embed(train_rows[0])
    result, classifier = _train_and_evaluate(embedder, "clinc150", train_rows, vectors,
                                             test_rows, workdir)
    result["trade_off_on_val"] = _trade_off(classifier, embedder, test_rows)
    result["commands"] = _commands(
        _write_csv(csv_dir / "clinc150-train.csv", *train_rows, "label"),
        _write_csv(csv_dir / "clinc150-val.csv", *test_rows, "label"),
        csv_dir / "clinc150-model", "label")
    result["train_rows"], result["test_rows"] = len(train_items), len(test_items)
    result["unseen_domains"] = _unseen_domains(embedder, train_items, vectors, test_items,
                                               workdir)
    return result


def _unseen_domains(embedder: Embedder, train_items: list[list[str]], vectors: np.ndarray,
                    test_items: list[list[str]], workdir: Path) -> dict[str, Any]:
    """Train without UNSEEN_DOMAINS domains; their val rows are out-of-scope at test."""
    domains = json.loads((DATA / "clinc150" / "domains.json").read_text())
    left_out = sorted(random.Random(SEED).sample(sorted(domains), UNSEEN_DOMAINS))
    unseen = {intent for domain in left_out for intent in domains[domain]}
    keep = [i for i, (_, label) in enumerate(train_items) if label not in unseen]
    train_rows = ([train_items[i][0] for i in keep], [train_items[i][1] for i in keep])
    test_rows = ([t for t, _ in test_items],
                 ["oos" if label in unseen else label for _, label in test_items])
    result, _ = _train_and_evaluate(embedder, "clinc150-unseen-domains", train_rows,
                                    vectors[keep], test_rows, workdir)
    result["left_out"] = left_out
    result["train_rows"], result["test_rows"] = len(keep), len(test_items)
    result["test_oos_rows"] = test_rows[1].count("oos")
    return result


def _trade_off(classifier: TextClassifier, embedder: Embedder,
               test_rows: tuple[list[str], list[str]]) -> list[dict[str, Any]]:
    """In-scope accuracy and oos recall on val at other thresholds on P(out of scope)."""
    texts, gold = test_rows
    probabilities, scope = classifier.outputs(texts, embedder.embed(texts))
    assert scope is not None, "the model has no scope model"
    labels = classifier.labels
    oos = labels.index("oos")
    in_scope = probabilities.copy()
    in_scope[:, oos] = -1
    best = in_scope.argmax(axis=1)
    rows = []
    for threshold in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        predicted = [labels[oos] if s >= threshold else labels[b]
                     for s, b in zip(scope, best, strict=True)]
        metrics = score(gold, predicted, "oos")
        rows.append({"threshold": threshold, "in_scope_accuracy": metrics["in_scope_accuracy"],
                     "oos_recall": metrics["oos_recall"],
                     "oos_precision": metrics["oos_precision"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="embedder threads")
    parser.add_argument("--only", choices=("banking77", "clinc150"))
    parser.add_argument("--csv-dir", type=Path, default=REPO / "bench-results" / "intents-data",
                        help="where the splits are written as CSV for the CLI commands")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "intents.json")
    args = parser.parse_args()

    embedder = _embedder(args.threads)
    result: dict[str, Any] = {
        "benchmark": "intents", "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "embedder": embedder.model_id,
    }
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "banking77"):
            result["banking77"] = bench_banking77(embedder, args.csv_dir, Path(tmp))
        if args.only in (None, "clinc150"):
            result["clinc150"] = bench_clinc150(embedder, args.csv_dir, Path(tmp))
    _print(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


def _print(result: dict[str, Any]) -> None:
    print(f"\n{'':<34}" + "".join(f"{key:>18}" for key in METRIC_KEYS))
    if "banking77" in result:
        mean = result["banking77"]["mean"]
        print(f"{'banking77, 5-fold CV (mean)':<34}"
              + "".join(f"{_cell(mean.get(key)):>18}" for key in METRIC_KEYS))
    if "clinc150" in result:
        clinc = result["clinc150"]
        print(f"{'clinc150, train+oos -> val+oos':<34}"
              + "".join(f"{_cell(clinc.get(key)):>18}" for key in METRIC_KEYS))
        unseen = clinc["unseen_domains"]
        print(f"{'clinc150, without ' + '+'.join(unseen['left_out']):<34}"
              + "".join(f"{_cell(unseen.get(key)):>18}" for key in METRIC_KEYS))
        print(f"\nclinc150 threshold on P(out of scope) {clinc['threshold']} (chosen on held-out "
              "training folds); on val at other thresholds:")
        for row in clinc["trade_off_on_val"]:
            print(f"  {row['threshold']:.1f}: in-scope accuracy {row['in_scope_accuracy']}, "
                  f"oos recall {row['oos_recall']}, oos precision {row['oos_precision']}")
    for name in ("banking77", "clinc150"):
        if name in result:
            print(f"\n{name}: reproduce with")
            for command in result[name]["commands"][:2]:
                print(f"  {command}")


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


if __name__ == "__main__":
    main()
