"""Lumen Goods' workflows: eval pass rate per workflow, and what a workflow turn costs next to
a turn the small model answers, measured in the same run.

Starts Lumen Goods' order system (`appliance demo-backend retail`) on a free port, seeds the
demo brand with its knowledge and workflows in a temporary data dir, and runs every shipped
eval case (`appliance/demo/workflows/lumen-goods/evals/`) through the live engine. Reports the
pass rate per workflow, turn latency p50/p95 for turns the workflow engine answered
(templates, tool calls included) and for turns a model generated (mid-flow questions and
other chat), and tool-call latency.

    .venv/bin/python scripts/bench/workflows.py --out bench-results/workflows.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from machine import machine

from appliance.config import load_settings
from appliance.db.migrate import migrate
from appliance.db.models import Brand, Conversation, ToolCall, TurnTrace
from appliance.demo.seed import WORKFLOWS_DIR, seed, seed_knowledge
from appliance.evals.cases import load_suites
from appliance.evals.runner import EVAL_CHANNEL, run_suites
from appliance.services import Services, build_services

REPO = Path(__file__).resolve().parents[2]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def start_backend(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "demo-backend", "retail",
                             "--port", str(port), "--db", str(data_dir / "retail.db")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the retail backend did not start")


def stop_backend(proc: subprocess.Popen[bytes]) -> None:
    """Stop the order system; kill it if it does not stop in time (a busy machine)."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def lumen_goods(data_dir: Path, port: int, model_store: Path | None = None
                ) -> tuple[Services, Brand]:
    """Services on a fresh database in `data_dir` with the demo seeded (Lumen Goods' knowledge
    published), its tools pointed at the order system on `port`."""
    settings = load_settings(
        overrides={"data_dir": str(data_dir), "llm_threads": 2,
                   "demo_retail_url": f"http://127.0.0.1:{port}",
                   **({"model_store": str(model_store)} if model_store else {})},
        env={"APPLIANCE_CONFIG": str(REPO / "tests" / "empty-config.toml")})
    services = build_services(settings)
    services.db.connect(reuse_if_open=True)
    migrate(services.db)
    seed(services, knowledge=False)
    seed_knowledge(services, only="lumen-goods")
    return services, services.brands.get("lumen-goods")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "workflows.json")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-workflows-"))
    backend = start_backend(data_dir, args.port)
    try:
        services, brand = lumen_goods(data_dir, args.port)
        suites = load_suites(WORKFLOWS_DIR / "lumen-goods" / "evals")
        started = time.perf_counter()
        results = run_suites(services, brand, suites)
        elapsed = time.perf_counter() - started
        conversations = list(Conversation.select().where(Conversation.channel == EVAL_CHANNEL))
        traces = list(TurnTrace.select().where(TurnTrace.conversation.in_(conversations)))
        calls = list(ToolCall.select().where(ToolCall.conversation.in_(conversations)))
        services.close()
    finally:
        stop_backend(backend)

    by_workflow: dict[str, list[bool]] = defaultdict(list)
    for result in results:
        by_workflow[result.workflow].append(result.passed)
    workflow_turns = [t.latency_ms["total"] for t in traces
                      if t.decision.get("action") == "workflow"]
    model_turns = [t.latency_ms["total"] for t in traces
                   if t.model not in ("template", "canned")]
    passed = sum(result.passed for result in results)
    summary = {
        "cases": len(results), "passed": passed, "pass_rate": round(passed / len(results), 4),
        "seconds": round(elapsed, 1),
        "workflow_turns": len(workflow_turns),
        "workflow_turn_ms_p50": percentile(workflow_turns, 0.5),
        "workflow_turn_ms_p95": percentile(workflow_turns, 0.95),
        "model_turns": len(model_turns),
        "model_turn_ms_p50": percentile(model_turns, 0.5),
        "model_turn_ms_p95": percentile(model_turns, 0.95),
        "tool_calls": len(calls),
        "tool_call_ms_p50": percentile([c.latency_ms for c in calls], 0.5),
        "tool_call_ms_p95": percentile([c.latency_ms for c in calls], 0.95),
    }
    if summary["workflow_turn_ms_p50"]:
        summary["model_vs_workflow_p50"] = round(
            summary["model_turn_ms_p50"] / summary["workflow_turn_ms_p50"], 1)
    print(f"{'workflow':<24}{'cases':>7}{'passed':>8}{'rate':>8}")
    for name, passes in sorted(by_workflow.items()):
        print(f"{name:<24}{len(passes):>7}{sum(passes):>8}{sum(passes) / len(passes):>8.0%}")
    print(f"{'all':<24}{len(results):>7}{passed:>8}{passed / len(results):>8.1%}\n")
    for key, value in summary.items():
        print(f"{key:<28}{value}")
    failures = [{"workflow": r.workflow, "name": r.name, "problems": r.problems}
                for r in results if not r.passed]
    for failure in failures:
        print(f"FAIL {failure['workflow']}: {failure['name']}: {failure['problems']}")
    report: dict[str, Any] = {
        "benchmark": "workflows", "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "model": services.router.route("reply")[0], "summary": summary,
        "per_workflow": {name: {"cases": len(p), "passed": sum(p)}
                         for name, p in sorted(by_workflow.items())},
        "failures": failures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
