"""Knowledge: ingestion speed on the Rho-Bank corpus, recall@5 on customer questions, and the
no-answer threshold checked on questions the knowledge cannot answer.

Ingests the 698 Rho-Bank help-center articles (the demo's jsonl source) into a fresh SQLite
data dir through the real pipeline (connector, consolidation, chunking, ONNX embeddings, FAISS
index), then asks the questions in scripts/bench/data/rho_bank_questions.jsonl (phrased as
customers would ask, each with the article ids that answer it) and counts a hit when any of
the top 5 retrieved chunks belongs to one of those articles. The unanswerable questions show
how the brand's no-answer threshold (policy `knowledge_min_score`) splits the two sets.
Retrieval latency at 10k and 100k chunks is measured by scripts/bench/retrieval.py.

    .venv/bin/python scripts/bench/knowledge.py --out bench-results/knowledge.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from appliance.brands import Policy
from appliance.config import load_settings
from appliance.db.migrate import migrate
from appliance.demo.seed import DEMO_BRANDS, KNOWLEDGE_DIR
from appliance.services import build_services

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"


def _load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "knowledge.json")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--model-store", help="Another model store (to compare embedders).")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-knowledge-"))
    services = build_services(load_settings(
        overrides={"data_dir": str(data_dir),
                   **({"model_store": args.model_store} if args.model_store else {})},
        env={"APPLIANCE_CONFIG": str(REPO / "tests" / "empty-config.toml")}))
    services.db.connect()
    migrate(services.db)
    demo = next(b for b in DEMO_BRANDS if b.slug == "rho-bank")
    brand = services.brands.create(demo.slug, demo.name, demo.persona, demo.policy,
                                   actor="bench")
    # Sources are read from the brand's import folder only.
    folder = services.knowledge.import_folders(brand)[0]
    folder.mkdir(parents=True)
    help_center = shutil.copy(KNOWLEDGE_DIR / "rho-bank" / "help-center.jsonl", folder)
    services.knowledge.add_source(brand, {
        "kind": "jsonl", "location": str(help_center), "owner": "bench@example.com"},
        actor="bench")
    services.embedder.embed_one("warm up")  # load the ONNX session outside the timing

    stages: dict[str, float] = {}
    last = {"stage": "", "at": time.perf_counter()}

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        stages[last["stage"]] = stages.get(last["stage"], 0.0) + now - last["at"]
        last.update(stage=stage, at=now)

    started = time.perf_counter()
    outcome = services.knowledge.ingest(brand, publish=True, progress=progress)
    seconds = time.perf_counter() - started
    stats = outcome.run.stats or {}
    ingestion = {
        "articles": stats["articles"], "chunks": stats["chunks"], "seconds": round(seconds, 2),
        "articles_per_s": round(stats["articles"] / seconds, 1),
        "chunks_per_s": round(stats["chunks"] / seconds, 1),
        "embedding_seconds": round(stages.get("embed", 0.0), 2),
    }

    # Nightly re-ingestion of an unchanged source: articles are content-addressed, so nothing
    # is embedded again; this is the steady-state cost of a scheduled run.
    started = time.perf_counter()
    services.knowledge.ingest(brand)
    again = time.perf_counter() - started
    ingestion["reingest_unchanged_seconds"] = round(again, 2)
    ingestion["reingest_articles_per_s"] = round(stats["articles"] / again, 1)

    answerable = _load(DATA / "rho_bank_questions.jsonl")
    unanswerable = _load(DATA / "rho_bank_unanswerable.jsonl")
    hits, reciprocal, latency, top_scores = 0, [], [], []
    for item in answerable:
        t0 = time.perf_counter()
        _, found = services.knowledge.search(brand, item["question"], args.k)
        latency.append((time.perf_counter() - t0) * 1000)
        wanted = set(item["article_ids"])
        ranks = [n for n, hit in enumerate(found, 1)
                 if wanted & {p["external_id"] for p in hit.provenance}]
        hits += bool(ranks)
        reciprocal.append(1 / ranks[0] if ranks else 0.0)
        top_scores.append(found[0].score if found else 0.0)
    none_scores = []
    for item in unanswerable:
        _, found = services.knowledge.search(brand, item["question"], 1)
        none_scores.append(found[0].score if found else 0.0)
    threshold = Policy().knowledge_min_score
    result = {
        "benchmark": "knowledge", "date": time.strftime("%Y-%m-%d"),
        "ingestion": ingestion,
        "retrieval": {
            "questions": len(answerable), f"recall_at_{args.k}": round(hits / len(answerable), 3),
            "mrr": round(statistics.fmean(reciprocal), 3),
            "search_ms_p50": _pct(latency, 50), "search_ms_p95": _pct(latency, 95),
        },
        "no_answer": {
            "threshold": threshold, "unanswerable_questions": len(unanswerable),
            "answerable_top_score_p10": _pct(top_scores, 10),
            "unanswerable_top_score_p90": _pct(none_scores, 90),
            "answerable_refused": sum(s < threshold for s in top_scores),
            "unanswerable_answered": sum(s >= threshold for s in none_scores),
        },
    }
    print(f"{'ingestion':<34}{'value':>12}")
    for key, value in ingestion.items():
        print(f"  {key:<32}{value:>12}")
    print(f"{'retrieval (embed + search)':<34}")
    for key, value in result["retrieval"].items():
        print(f"  {key:<32}{value:>12}")
    print(f"{'no-answer threshold':<34}")
    for key, value in result["no_answer"].items():
        print(f"  {key:<32}{value:>12}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    services.close()


if __name__ == "__main__":
    main()
