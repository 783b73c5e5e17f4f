"""Retrieval latency: query embedding on the real model, and FAISS search at 10k and 100k vectors.

Measures, on this machine:
- embedding one query with the real all-MiniLM-L6-v2 int8 model (p50/p95), and batch throughput,
- for 10k and 100k synthetic unit vectors (random normal, normalised; 384 dims) and each index
  kind (flat = exact, hnsw): build time, single-query search p50/p95 (k=10) with FAISS's
  search thread count (SEARCH_THREADS) and, for flat, with every core, and HNSW recall@10
  against exact search. Random vectors are the worst case for HNSW recall: they have no
  structure for the graph to follow (see the module docstring of appliance/knowledge/index.py
  for recall on real text),
- save and memory-mapped load of the 100k index,
- retrieval end to end: embed a question, then search the 100k HNSW index.

    .venv/bin/python scripts/bench/retrieval.py --out bench-results/retrieval.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import onnxruntime
import tokenizers
from machine import machine

from appliance.knowledge import index as index_module
from appliance.knowledge.index import SEARCH_THREADS, VectorIndex
from appliance.llm.manifest import load_manifest
from appliance.signals.onnx_embedder import OnnxEmbedder

REPO = Path(__file__).resolve().parents[2]
DIM = 384
K = 10
QUESTIONS = (
    "How do I reset my PIN?",
    "Where is my parcel? The tracking page has not changed since Monday.",
    "Can I return shoes I bought online to one of your stores?",
    "What is the warranty on the desk lamp?",
    "My card was charged twice for the same order, what should I do?",
    "Do you deliver to Norway, and how long does it take?",
    "How can I change the delivery address of an order I already placed?",
    "Is there a discount for students?",
)


def _ms(seconds: list[float]) -> dict[str, float]:
    values = np.asarray(seconds) * 1000
    return {"p50": round(float(np.percentile(values, 50)), 3),
            "p95": round(float(np.percentile(values, 95)), 3),
            "n": len(values)}


def _timed(call: Callable[[], object], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def _unit(count: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    normalised: np.ndarray = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


@contextmanager
def _omp(threads: int) -> Iterator[None]:
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(SEARCH_THREADS)


def _build(kind: str, vectors: np.ndarray) -> tuple[VectorIndex, float]:
    """Build through VectorIndex (the shipped code), forcing the kind by moving the threshold."""
    saved = index_module.FLAT_MAX_VECTORS
    index_module.FLAT_MAX_VECTORS = len(vectors) if kind == "flat" else 0
    try:
        started = time.perf_counter()
        built = VectorIndex.build(vectors, np.arange(len(vectors)), model_id="synthetic")
        return built, time.perf_counter() - started
    finally:
        index_module.FLAT_MAX_VECTORS = saved


def bench_embedding(threads: int, repeats: int) -> tuple[OnnxEmbedder, dict[str, Any]]:
    manifest = load_manifest(REPO / "model_store")
    spec = manifest.models[manifest.route("cpu", "embed")[0]]
    tokenizer = manifest.models[str(spec.options["tokenizer"])]
    embedder = OnnxEmbedder(spec, tokenizer, threads=threads)
    started = time.perf_counter()
    embedder.embed_one("warm up")  # sha256 check, session and tokenizer load
    load_s = time.perf_counter() - started
    questions = iter(QUESTIONS * (repeats // len(QUESTIONS) + 1))
    single = _timed(lambda: embedder.embed_one(next(questions)), repeats)
    batch = [f"{QUESTIONS[i % len(QUESTIONS)]} (variant {i})" for i in range(320)]
    started = time.perf_counter()
    embedder.embed(batch)
    per_s = len(batch) / (time.perf_counter() - started)
    return embedder, {"model": spec.id, "threads": threads, "load_s": round(load_s, 2),
                      "single_query_ms": _ms(single), "batch_sentences_per_s": round(per_s)}


def bench_search(count: int, kind: str, queries: np.ndarray) -> tuple[VectorIndex, dict[str, Any]]:
    vectors = _unit(count, seed=count)
    index, build_s = _build(kind, vectors)
    rows = iter(np.concatenate([queries] * 2))
    single = _timed(lambda: index.search_one(next(rows), K), len(queries))
    result: dict[str, Any] = {"vectors": count, "kind": kind, "build_s": round(build_s, 2),
                              f"search_ms_{SEARCH_THREADS}_thread": _ms(single)}
    if kind == "flat":
        cores = os.cpu_count() or 1
        with _omp(cores):
            rows = iter(queries)
            result[f"search_ms_{cores}_threads"] = _ms(_timed(
                lambda: index.search_one(next(rows), K), len(queries)))
    else:
        exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :K]
        found = [[hit.id for hit in hits] for hits in index.search(queries, K)]
        recall = np.mean([len(set(f) & set(e)) / K for f, e in zip(found, exact, strict=True)])
        result["recall_at_10_random"] = round(float(recall), 3)
    return index, result


def bench_save_load(index: VectorIndex) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "index"
        started = time.perf_counter()
        index.save(target)
        save_s = time.perf_counter() - started
        started = time.perf_counter()
        VectorIndex.load(target)
        load_s = time.perf_counter() - started
    return {"kind": index.kind, "vectors": len(index), "save_s": round(save_s, 3),
            "load_mmap_s": round(load_s, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "retrieval.json")
    args = parser.parse_args()

    embedder, embedding = bench_embedding(args.threads, args.queries)
    queries = _unit(args.queries, seed=1)
    searches, largest_hnsw = [], None
    for count in (int(size) for size in args.sizes.split(",")):
        for kind in ("flat", "hnsw"):
            index, row = bench_search(count, kind, queries)
            searches.append(row)
            print(f"  {kind} {count}: {row}", flush=True)
            if kind == "hnsw":
                largest_hnsw = index
    assert largest_hnsw is not None
    persisted = bench_save_load(largest_hnsw)
    questions = iter(QUESTIONS * (args.queries // len(QUESTIONS) + 1))
    end_to_end = _ms(_timed(
        lambda: largest_hnsw.search_one(embedder.embed_one(next(questions)), K), args.queries))

    result = {
        "benchmark": "retrieval",
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "versions": {"faiss": faiss.__version__, "onnxruntime": onnxruntime.__version__,
                     "tokenizers": tokenizers.__version__, "numpy": np.__version__},
        "hnsw": {"M": index_module.HNSW_M, "efConstruction": index_module.HNSW_EF_CONSTRUCTION,
                 "efSearch": index_module.HNSW_EF_SEARCH},
        "flat_max_vectors": index_module.FLAT_MAX_VECTORS,
        "embedding": embedding,
        "search": searches,
        "save_load": persisted,
        "retrieval_end_to_end_ms": {"vectors": len(largest_hnsw), "kind": largest_hnsw.kind,
                                    **end_to_end},
    }
    _print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


def _print_table(result: dict[str, Any]) -> None:
    emb = result["embedding"]
    print(f"\n{'(ms unless noted)':<44}{'p50':>9}{'p95':>9}")
    row = emb["single_query_ms"]
    print(f"{'embed one query, ' + str(emb['threads']) + ' threads':<44}{row['p50']:>9}"
          f"{row['p95']:>9}")
    for search in result["search"]:
        for key, row in search.items():
            if key.startswith("search_ms_"):
                threads = key.removeprefix("search_ms_").replace("_", " ")
                name = f"search {search['kind']} {search['vectors']:,} ({threads})"
                print(f"{name:<44}{row['p50']:>9}{row['p95']:>9}")
    row = result["retrieval_end_to_end_ms"]
    print(f"{'embed + search hnsw ' + format(row['vectors'], ',') + ', end to end':<44}"
          f"{row['p50']:>9}{row['p95']:>9}")
    print()
    for search in result["search"]:
        recall = search.get("recall_at_10_random")
        extra = f", recall@10 on random vectors {recall}" if recall is not None else ""
        print(f"build {search['kind']} {search['vectors']:,}: {search['build_s']} s{extra}")
    sl = result["save_load"]
    print(f"save {sl['kind']} {sl['vectors']:,}: {sl['save_s']} s; "
          f"load (mmap) {sl['load_mmap_s']} s")
    print(f"embedding batch throughput: {emb['batch_sentences_per_s']} sentences/s; "
          f"model load {emb['load_s']} s")


if __name__ == "__main__":
    main()
