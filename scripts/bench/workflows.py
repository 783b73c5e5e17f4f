"""A demo brand's workflows: eval pass rate per workflow, and what a workflow turn costs next
to a turn the small model answers, measured in the same run.

Starts the brand's systems (`appliance demo-backend retail` for Lumen Goods, `bank` for
Rho-Bank) on a free port, seeds the demo brand with its knowledge and workflows in a temporary
data dir, and runs every shipped eval case (`appliance/demo/workflows/<brand>/evals/`) through
the live engine. Reports the pass rate per workflow, turn latency p50/p95 for turns the
workflow engine answered (templates, tool calls included) and for turns a model generated
(mid-flow questions and other chat), and tool-call latency.

    .venv/bin/python scripts/bench/workflows.py --out bench-results/workflows.json
    .venv/bin/python scripts/bench/workflows.py --brand rho-bank \
        --out bench-results/workflows-rho-bank.json
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
from appliance.evals.cases import EvalSuite, load_suites
from appliance.evals.runner import EVAL_CHANNEL, run_suites
from appliance.evals.scores import by_suite, pass_hat_k, tally
from appliance.services import Services, build_services

REPO = Path(__file__).resolve().parents[2]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


#: Each demo brand's systems: the demo backend that serves them and the setting naming it.
SYSTEMS = {"lumen-goods": ("retail", "demo_retail_url"), "rho-bank": ("bank", "demo_bank_url")}


def start_backend(data_dir: Path, port: int, kind: str = "retail") -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "demo-backend", kind,
                             "--port", str(port), "--db", str(data_dir / f"{kind}.db")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the {kind} backend did not start")


def stop_backend(proc: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    """Stop a process a benchmark started (the brand's systems, a server); kill it if it does
    not stop in time (a busy machine)."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def demo_brand(data_dir: Path, port: int, model_store: Path | None = None,
               slug: str = "lumen-goods", knowledge: bool = True) -> tuple[Services, Brand]:
    """Services on a fresh database in `data_dir` with the demo seeded (the brand's knowledge
    published), its tools pointed at its systems on `port`."""
    settings = load_settings(
        overrides={"data_dir": str(data_dir), "llm_threads": 2,
                   SYSTEMS[slug][1]: f"http://127.0.0.1:{port}",
                   **({"model_store": str(model_store)} if model_store else {})},
        env={"APPLIANCE_CONFIG": str(REPO / "tests" / "empty-config.toml")})
    services = build_services(settings)
    services.db.connect(reuse_if_open=True)
    migrate(services.db)
    seed(services, knowledge=False)
    if knowledge:
        seed_knowledge(services, only=slug)
    return services, services.brands.get(slug)


def answers_only(suites: list[EvalSuite]) -> list[EvalSuite]:
    """The suites cut to their answers from the knowledge: every case of the knowledge suite
    and each case that names a citation (a workflow's question about its policy)."""
    cut = []
    for suite in suites:
        cases = tuple(case for case in suite.cases
                      if suite.suite == "knowledge" or case.expect.cites)
        if cases:
            cut.append(suite.model_copy(update={"cases": cases, "goals": ()}))
    return cut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--brand", choices=sorted(SYSTEMS), default="lumen-goods")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "workflows.json")
    parser.add_argument("--trials", type=int, default=1,
                        help="Runs of each case (phrasings and sampling vary) for pass^k.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--knowledge", action=argparse.BooleanOptionalAction, default=True,
                        help="Publish the brand's knowledge first (mid-flow questions).")
    parser.add_argument("--answers", action="store_true",
                        help="Only the answers from the knowledge: the knowledge suite's "
                        "cases and every case that names a citation (no goals).")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-workflows-"))
    backend = start_backend(data_dir, args.port, SYSTEMS[args.brand][0])
    try:
        services, brand = demo_brand(data_dir, args.port, slug=args.brand,
                                     knowledge=args.knowledge)
        suites = load_suites(WORKFLOWS_DIR / args.brand / "evals")
        if args.answers:
            suites = answers_only(suites)
        started = time.perf_counter()
        results = run_suites(services, brand, suites, trials=args.trials, seed=args.seed)
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
    cases = tally((r.workflow, r.name, r.passed) for r in results)
    pass_hat = by_suite(cases)
    workflow_turns = [t.latency_ms["total"] for t in traces
                      if t.decision.get("action") == "workflow"]
    model_turns = [t.latency_ms["total"] for t in traces
                   if t.model not in ("template", "canned")]
    passed = sum(result.passed for result in results)
    summary = {
        "cases": len(cases), "trials": args.trials, "runs": len(results), "passed": passed,
        "pass_rate": round(passed / len(results), 4), "pass_hat_k": pass_hat_k(cases),
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
    ks = [str(k) for k in range(1, args.trials + 1)]
    print(f"{'workflow':<24}{'cases':>7}{'runs':>6}{'passed':>8}"
          + "".join(f"{'pass^' + k:>9}" for k in ks))
    for name, passes in sorted(by_workflow.items()):
        print(f"{name:<24}{len(passes) // args.trials:>7}{len(passes):>6}{sum(passes):>8}"
              + "".join(f"{pass_hat[name][k]:>9.3f}" for k in ks))
    overall = pass_hat_k(cases)
    print(f"{'all':<24}{len(cases):>7}{len(results):>6}{passed:>8}"
          + "".join(f"{overall[k]:>9.3f}" for k in ks) + "\n")
    for key, value in summary.items():
        print(f"{key:<28}{value}")
    failures = [{"workflow": r.workflow, "name": r.name, "trial": r.trial + 1,
                 "problems": r.problems} for r in results if not r.passed]
    for failure in failures:
        print(f"FAIL {failure['workflow']}: {failure['name']}: {failure['problems']}")
    report: dict[str, Any] = {
        "benchmark": "workflows", "brand": args.brand, "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "model": services.router.route("reply")[0], "summary": summary,
        "per_workflow": {name: {"cases": len(p) // args.trials, "runs": len(p),
                                "passed": sum(p), "pass_hat_k": pass_hat[name]}
                         for name, p in sorted(by_workflow.items())},
        "failures": failures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
