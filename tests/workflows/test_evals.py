"""The shipped eval suites pass on the CPU default, through the library and the CLI."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from retail_support import APPLIANCE, RetailBackend, seeded_cli

from appliance.config import Settings
from appliance.demo.seed import WORKFLOWS_DIR, seed_knowledge
from appliance.evals.cases import load_suites
from appliance.evals.runner import CaseResult, run_suites
from appliance.services import Services

EVALS = WORKFLOWS_DIR / "lumen-goods" / "evals"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The product's reply length, not the suite's short one: an eval judges what customers
    get, and a reply cut at a test's token limit loses its last sentence."""
    return dataclasses.replace(settings, llm_max_reply_tokens=Settings.llm_max_reply_tokens)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
# Over a hundred conversations, a model turn in many: the suite-wide guard against a hung test
# (300 s) is shorter than a run on busy cores, and how fast they are is not what this checks.
@pytest.mark.timeout(1800)
def test_it_passes_at_least_nine_in_ten_of_lumen_goods_evals(
        services: Services, lumen: Any) -> None:
    """Every workflow's cases, mid-flow questions to the knowledge and questions about a
    workflow's policy included, and the knowledge's answers."""
    seed_knowledge(services, only="lumen-goods")
    suites = load_suites(EVALS)
    results = run_suites(services, lumen, suites)
    workflows = {path.stem for path in (WORKFLOWS_DIR / "lumen-goods" / "workflows").glob(
        "*.yaml")}
    assert {suite.workflow for suite in suites if suite.workflow} == workflows, (
        "every workflow has evals")
    assert "knowledge" in {suite.suite for suite in suites}
    assert all(len(suite.cases) >= 5 for suite in suites if suite.workflow)
    goals = {(suite.name, goal.name) for suite in suites for goal in suite.goals}
    assert len(goals) >= 30, "goals from τ-bench tasks, played by the simulated customer"
    # Answers from the knowledge (the knowledge suite, and each workflow's question about its
    # policy: the cases that name a citation) are worded by the model or quoted from passages
    # the retrieval ranks, and on the CPU default they pass less often than the workflows'
    # deterministic turns: 18 to 19 of their 23 in three seeded trials on 2026-12-07 (13 to
    # 16 before drafts had to say something and a sentence could answer for its passage).
    # What still fails is the model's wording of a right answer ("a backpack for a backpack in
    # another color", not "same product"), one retrieval (the return window ranks sixth for
    # "what is your return policy?") and the workflow offered for the default address. The
    # floor (15) sits three under that range, so the model's draw does not decide the verdict, and
    # still fails a retrieval or grounding that breaks. Each kind is held to its own floor,
    # so that neither hides a regression of the other.
    answers = {(suite.suite or suite.workflow, case.name) for suite in suites
               for case in suite.cases if suite.suite == "knowledge" or case.expect.cites}

    def kind(result: CaseResult) -> str:
        key = (result.workflow, result.name)
        return "goal" if key in goals else "knowledge answer" if key in answers else "workflow"

    for name, floor in (("workflow", 0.9), ("knowledge answer", 0.65), ("goal", 0.9)):
        ran = [r for r in results if kind(r) == name and r.counts]
        failures = [(r.workflow, r.name, r.problems) for r in ran if not r.passed]
        assert ran and len(ran) - len(failures) >= floor * len(ran), (name, failures)


def test_it_runs_one_workflows_evals_from_the_cli(
        tmp_path: Path, retail_backend: RetailBackend) -> None:
    # With the knowledge: a workflow's cases include questions about its policy.
    env = seeded_cli(tmp_path / "data", retail_backend.url)
    run = APPLIANCE
    done = subprocess.run([*run, "eval", "run", "--brand", "lumen-goods", "--workflow",
                           "cancel_order", "--trials", "2", "--seed", "5", "--json",
                           "--min-pass", "1"], env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    names = [case.name for case in load_suites(EVALS, "cancel_order")[0].cases]
    assert (report["trials"], report["seed"], report["runs"]) == (2, 5, 2 * len(names))
    assert [case["id"] for case in report["cases"]] == [f"cancel_order/{n}" for n in names]
    assert all((case["passes"], case["trials"], case["failures"]) == (2, 2, [])
               for case in report["cases"])
    assert report["pass_hat_k"] == {"1": 1.0, "2": 1.0}
    assert report["by_workflow"] == {"cancel_order": {"1": 1.0, "2": 1.0}}
    state = retail_backend.order("#W3657213")
    assert state["status"] in ("pending", "cancelled")  # the cases really ran against it


def test_it_validates_workflow_files_with_line_numbers(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\ntitle: Broken\nsteps:\n  - sey: hello\n")
    done = subprocess.run([sys.executable, "-m", "appliance", "workflows", "validate",
                           str(broken), str(WORKFLOWS_DIR / "lumen-goods" / "tools.yaml")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert f"{broken}:4: steps.0.sey:" in done.stderr
    assert "tools.yaml: ok" in done.stdout
