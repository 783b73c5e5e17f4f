"""Lumen Goods' agent on τ-bench retail training tasks: the exact-end-state rate.

Each task with at most `--max-writes` gold writes (and gold writes that keep to the policy) is
played by the scripted customer (`appliance/evals/customer.py`) against the live engine and
Lumen Goods' order system (`appliance demo-backend retail` on a free port, reset before each
task). A task passes when the customer's profile and all their orders end exactly as the gold
writes leave them. Reports the rate per kind of request, turns per task, and the failures.

    .venv/bin/python scripts/bench/tau_retail.py --out bench-results/tau_retail.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
from machine import machine
from workflows import demo_brand, percentile, start_backend, stop_backend

from appliance.evals.customer import load_tasks, policy_problem
from appliance.evals.runner import run_task

REPO = Path(__file__).resolve().parents[2]
TASKS = REPO.parent / "shared" / "data" / "tau_bench" / "retail" / "tasks_train.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=Path, default=TASKS)
    parser.add_argument("--max-writes", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="play only the first N tasks")
    parser.add_argument("--only", type=int, nargs="*", default=[], help="these task indexes")
    parser.add_argument("--port", type=int, default=18091)
    parser.add_argument("--model-store", type=Path, default=None,
                        help="another model store (default: the checkout's)")
    parser.add_argument("--show", action="store_true", help="print failed transcripts")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "tau_retail.json")
    args = parser.parse_args()

    tasks = [task for task in load_tasks(args.tasks)
             if 1 <= len(task.writes) <= args.max_writes
             and (not args.only or task.index in args.only)]
    data_dir = Path(tempfile.mkdtemp(prefix="bench-tau-"))
    backend = start_backend(data_dir, args.port)
    try:
        services, brand = demo_brand(data_dir, args.port, args.model_store)
        with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=30) as system:
            excluded = {task.index: problem for task in tasks
                        if (problem := policy_problem(system, task)) is not None}
            playable = [task for task in tasks if task.index not in excluded]
            if args.limit:
                playable = playable[:args.limit]
            started = time.perf_counter()
            results = []
            for task in playable:
                results.append(run_task(services, brand, system, task))
                print(f"task {task.index:>3}: {'pass' if results[-1].passed else 'FAIL'}",
                      flush=True)
            elapsed = time.perf_counter() - started
        model = services.router.route("reply")[0]
        services.close()
    finally:
        stop_backend(backend)

    kinds: dict[str, list[bool]] = defaultdict(list)
    for task, result in zip(playable, results, strict=True):
        kinds[" + ".join(write["name"] for write in task.writes)].append(result.passed)
    passed = sum(result.passed for result in results)
    turns = [len(result.transcript) / 2 for result in results]
    summary = {
        "tasks": len(results), "passed": passed,
        "exact_end_state_rate": round(passed / len(results), 4) if results else 0.0,
        "excluded_policy": len(excluded), "turns_p50": percentile(turns, 0.5),
        "turns_p95": percentile(turns, 0.95), "seconds": round(elapsed, 1),
        "endings": dict(Counter(result.status for result in results)),
    }
    print(f"\n{'gold writes':<64}{'tasks':>6}{'passed':>8}{'rate':>7}")
    for kind, passes in sorted(kinds.items(), key=lambda item: -len(item[1])):
        print(f"{kind:<64}{len(passes):>6}{sum(passes):>8}{sum(passes) / len(passes):>7.0%}")
    print(f"{'all':<64}{len(results):>6}{passed:>8}{summary['exact_end_state_rate']:>7.1%}\n")
    for key, value in summary.items():
        print(f"{key:<24}{value}")
    failures = [result for result in results if not result.passed]
    if args.show:
        for result in failures:
            print(f"\n--- task {result.index} ({result.status})")
            for role, text in result.transcript:
                print(f"  {role}: {text}")
    report: dict[str, Any] = {
        "benchmark": "tau_retail", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "model": model, "max_writes": args.max_writes, "summary": summary,
        "per_kind": {kind: {"tasks": len(p), "passed": sum(p)} for kind, p in kinds.items()},
        "excluded": excluded,
        "failures": [result.as_dict() for result in failures],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
