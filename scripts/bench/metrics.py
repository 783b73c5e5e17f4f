"""What Prometheus metrics cost under gunicorn: recording a turn, and a scrape.

Runs prometheus_client in its multiprocess mode, as `appliance serve` does (values written to
files in a fresh directory), so each recording pays for the file-backed values. Timed: one
turn's recording (`record_turn` over a trace of 11 stages), one model answer
(`record_model_request` and its tokens), and `/metrics`' exposition once the files hold
`--brands` brands' turns, as `--workers` processes would leave them. Prints a small table and
writes JSON.

    .venv/bin/python scripts/bench/metrics.py
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine import machine
from stats import summary

from appliance import metrics

REPO = Path(__file__).resolve().parents[2]
#: A turn's trace: every stage the turn records, in milliseconds.
TRACE_MS = {"embed": 4.1, "signals": 1.2, "retrieval": 2.3, "relevance": 1.7, "workflow": 3.0,
            "prepare": 12.5, "llm": 1850.0, "ttft": 310.0, "persist": 6.2, "total": 1875.0,
            "overhead": 25.0}


def _timed_us(call: Callable[[], None], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1e6)
    return times


def _record_turn() -> None:
    metrics.record_turn("brand-0", TRACE_MS)


def _record_answer() -> None:
    metrics.record_model_request("smollm2-135m-instruct", metrics.OK)
    metrics.record_model_tokens("smollm2-135m-instruct", 900, 24)


def _scrape() -> None:
    metrics.exposition()


def _worker_turns(brands: int, turns: int) -> None:
    """A worker's share of traffic: `turns` turns spread over `brands` brands."""
    for n in range(turns):
        metrics.record_turn(f"brand-{n % brands}", TRACE_MS)
        metrics.record_model_request("smollm2-135m-instruct", metrics.OK)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--brands", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "metrics.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        metrics.prepare_multiprocess(Path(directory) / "prometheus")
        # The workers leave their files, then exit, as gunicorn's would on a restart.
        context = multiprocessing.get_context("fork")
        workers = [context.Process(target=_worker_turns, args=(args.brands, 200))
                   for _ in range(args.workers)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        turn = _timed_us(_record_turn, args.repeat)
        answer = _timed_us(_record_answer, args.repeat)
        size = len(metrics.exposition()[0])
        scrape = [us / 1000 for us in _timed_us(_scrape, 50)]
    result: dict[str, Any] = {
        "machine": machine(), "date": time.strftime("%Y-%m-%d"), "repeat": args.repeat,
        "brands": args.brands, "workers": args.workers + 1,
        "record_turn_us": summary(turn), "record_model_answer_us": summary(answer),
        "scrape_ms": summary(scrape), "scrape_bytes": size,
    }
    print(f"{'what':<34}{'p50':>10}{'p95':>10}")
    print(f"{'record_turn (11 stages), us':<34}{result['record_turn_us']['p50']:>10}"
          f"{result['record_turn_us']['p95']:>10}")
    print(f"{'record model answer + tokens, us':<34}{result['record_model_answer_us']['p50']:>10}"
          f"{result['record_model_answer_us']['p95']:>10}")
    print(f"{'scrape (' + str(args.workers + 1) + ' processes), ms':<34}"
          f"{result['scrape_ms']['p50']:>10}{result['scrape_ms']['p95']:>10}")
    print(f"exposition: {size} bytes for {args.brands} brands")
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
