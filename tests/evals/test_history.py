"""Eval runs kept as history and the nightly job: a real engine playing Lumen Goods' cases
against its real order system, a real database, a real webhook receiver on loopback. Time is
moved by dating a stored run a day back, never by waiting."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eval_support import BROKEN, FLAKY, a_day_back, with_small_suite
from pypdf import PdfReader
from retail_support import EMPTY_CONFIG, RetailBackend
from webhook_receiver import Receiver, receiving

from appliance.brands import policy_of
from appliance.cli import cli
from appliance.cli.context import CliContext
from appliance.db.models import Brand, EvalRun, WebhookDelivery, utcnow
from appliance.errors import Conflict
from appliance.evals.history import RUN_GIVEN_UP_AFTER, regressions
from appliance.evals.runner import CaseResult
from appliance.handoff.webhooks import verify_signature
from appliance.jobs import JOBS, run_job
from appliance.services import Services

#: Runs play conversations through the engine: once, on SQLite.
ON_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

@pytest.fixture
def evaluated(services: Services, lumen: Brand, retail_backend: RetailBackend) -> Brand:
    return with_small_suite(services, lumen, retail_backend.url)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as listening:
        yield listening


def _cli(services: Services, *args: str, exit_code: int = 0) -> Any:
    """The appliance command line on the test's database and settings."""
    settings = services.settings
    env = {"APPLIANCE_CONFIG": str(EMPTY_CONFIG), "APPLIANCE_DATA_DIR": str(settings.data_dir),
           "APPLIANCE_DATABASE_URL": settings.database_url,
           "APPLIANCE_LLM_MAX_REPLY_TOKENS": str(settings.llm_max_reply_tokens),
           "APPLIANCE_LLM_TIMEOUT_S": str(settings.llm_timeout_s)}
    context = CliContext()
    try:
        result = CliRunner().invoke(cli, list(args), obj=context, env=env)
    finally:
        context.close()
    assert result.exit_code == exit_code, f"{result.output}\n{result.exception!r}"
    return result


@ON_SQLITE
def test_the_nightly_job_records_a_run_once_a_day_and_skips_brands_without_a_test_system(
        services: Services, evaluated: Brand) -> None:
    first = run_job(services, "evals.nightly")
    again = run_job(services, "evals.nightly")

    assert first.status == "ok", first.detail
    lumen = first.detail["lumen-goods"]
    assert lumen["status"] == "done" and lumen["pass^1"] == 1.0 and lumen["regressions"] == []
    assert first.detail["rho-bank"] == {"status": "skipped", "why": "no test system"}
    assert again.detail["lumen-goods"] == {"status": "skipped",
                                           "why": f"run {lumen['run']} today"}
    [run] = services.evals.runs(evaluated)
    assert (run.trigger, run.status, run.trials) == ("nightly", "done", 1)
    assert run.scores["by_suite"] == {"cancellations": {"1": 1.0}}
    assert run.cases == [{"suite": "cancellations", "name": "reason given up front",
                          "passes": 1, "trials": 1, "quarantine": None, "failures": []}]
    workflows = run.versions["workflows"]
    assert workflows["cancel_order"]["version"] >= 1
    assert set(run.versions["models"]) == {m for ids in run.versions["routes"].values()
                                           for m in ids}
    assert run.versions["thresholds"]["evals"]["tolerance"] == 0.05
    assert JOBS["evals.nightly"].schedule(services.settings) == ("cron",
                                                                 {"hour": 2, "minute": 0})


@ON_SQLITE
def test_a_drop_beyond_the_tolerance_raises_an_alert_and_a_signed_webhook_event(
        services: Services, evaluated: Brand, receiver: Receiver) -> None:
    _, secret = services.webhooks.add(evaluated, receiver.url, ["evals.regressed"],
                                      actor="test")
    passed = run_job(services, "evals.nightly").detail["lumen-goods"]
    a_day_back(passed["run"])
    services.suites.save(evaluated, BROKEN, "dan")
    services.suites.save(evaluated, FLAKY, "dan")

    failed = run_job(services, "evals.nightly").detail["lumen-goods"]
    delivered = run_job(services, "webhooks.deliver")

    assert failed["regressions"] == ["cancellations"]  # the quarantined suite never alerts
    [alert] = services.evals.alerts()
    assert alert.id == failed["run"]
    assert alert.regressions == [{"suite": "cancellations", "before": 1.0, "after": 0.0,
                                  "tolerance": 0.05, "failing": ["reason given up front"]}]
    [case] = [c for c in alert.cases if c["suite"] == "cancellations"]
    assert case["failures"][0]["problems"] == ["outcome: expected escalated, got resolved"]
    assert delivered.detail["delivered"] == 1
    [request] = receiver.received
    headers = request["headers"]
    assert headers["X-Switchboard-Event"] == "evals.regressed"
    assert verify_signature(secret, headers["X-Switchboard-Timestamp"], request["body"],
                            headers["X-Switchboard-Signature"])
    payload = json.loads(request["body"])
    assert payload["brand"]["slug"] == "lumen-goods"
    assert payload["eval_run"]["id"] == failed["run"]
    assert payload["eval_run"]["url"] == "/admin/brands/lumen-goods/evals"
    assert payload["regressions"] == alert.regressions
    assert WebhookDelivery.select().count() == 1


def test_a_drop_within_the_tolerance_or_a_new_suite_is_no_regression() -> None:
    def run(by_suite: dict[str, float]) -> EvalRun:
        return EvalRun(scores={"by_suite": {s: {"1": v} for s, v in by_suite.items()}},
                       cases=[])

    before = run({"cancel_order": 1.0, "returns": 0.9})
    assert regressions(before, run({"cancel_order": 0.95, "returns": 0.9,
                                    "new": 0.0}), 0.05) == []
    assert [r.suite for r in regressions(before, run({"cancel_order": 0.9449,
                                                      "returns": 0.9}), 0.05)] == [
        "cancel_order"]
    assert regressions(None, run({"cancel_order": 0.0}), 0.05) == []


@ON_SQLITE
def test_the_cli_records_a_run_and_lists_the_history(
        services: Services, evaluated: Brand) -> None:
    ran = _cli(services, "eval", "run", "--brand", "lumen-goods", "--record", "--json")
    listed = _cli(services, "eval", "history", "--brand", "lumen-goods", "--json")
    table = _cli(services, "eval", "history", "--brand", "lumen-goods")

    recorded = json.loads(ran.output)
    assert recorded["pass_hat_k"] == {"1": 1.0}
    [run] = json.loads(listed.output)
    assert run["id"] == recorded["eval_run"]
    assert (run["trigger"], run["status"]) == ("cli", "done")
    assert run["requested_by"].startswith("cli:")
    assert run["scores"]["pass_hat_k"] == recorded["pass_hat_k"]
    assert f"{run['id']}" in table.output and "cli" in table.output and "1.000" in table.output


@ON_SQLITE
def test_the_report_lists_versions_results_history_quarantine_and_changes(
        services: Services, evaluated: Brand, tmp_path: Path) -> None:
    services.suites.save(evaluated, FLAKY, "dan")
    run_job(services, "evals.nightly")

    _cli(services, "eval", "report", "--brand", "lumen-goods", "--out",
         str(tmp_path / "report.html"))
    _cli(services, "eval", "report", "--brand", "lumen-goods", "--out",
         str(tmp_path / "report.pdf"))
    refused = _cli(services, "eval", "report", "--brand", "lumen-goods", "--out",
                   str(tmp_path / "report.txt"), exit_code=2)

    page = (tmp_path / "report.html").read_text()
    run = services.evals.runs(evaluated)[0]
    live = run.versions
    model_id, sha = next((m, s) for m, s in live["models"].items() if s)
    for expected in ("Model-risk report: Lumen Goods", "Versions live", "cancel_order",
                     model_id, sha, "Latest results", f"Run {run.id} (nightly)",
                     "all (not quarantined)", "waits on the shop&#x27;s new cancel flow",
                     "eval_suite.save", "dan", "History", "Switchboard 0.1.0"):
        assert expected in page, expected
    pdf = PdfReader(tmp_path / "report.pdf")
    text = " ".join(page.extract_text() for page in pdf.pages)
    for expected in ("Model-risk report: Lumen Goods", "Quarantined cases", model_id,
                     "eval_suite.save"):
        assert expected in text, expected
    assert "must end in .html or .pdf" in refused.output


@ON_SQLITE
def test_a_test_system_that_cannot_be_reached_fails_the_run_and_is_tried_again(
        services: Services, evaluated: Brand, retail_backend: RetailBackend) -> None:
    policy = policy_of(evaluated)
    services.brands.update("lumen-goods", actor="test", policy=policy.model_copy(update={
        "evals": policy.evals.model_copy(update={"test_base_url": "http://127.0.0.1:9"})}))

    unreachable = run_job(services, "evals.nightly").detail["lumen-goods"]
    policy = policy_of(services.brands.get("lumen-goods"))
    services.brands.update("lumen-goods", actor="test", policy=policy.model_copy(update={
        "evals": policy.evals.model_copy(update={"test_base_url": retail_backend.url})}))
    retried = run_job(services, "evals.nightly").detail["lumen-goods"]

    assert unreachable["status"] == "failed"
    assert "cannot be reset at http://127.0.0.1:9/reset" in unreachable["error"]
    assert retried["status"] == "done" and retried["pass^1"] == 1.0
    failed, done = sorted(services.evals.runs(evaluated), key=lambda run: run.id)
    assert (failed.status, failed.scores, failed.cases) == ("failed", None, None)
    assert services.evals.latest(evaluated) == done


def _result(suite: str, name: str, passed: bool, quarantine: str | None = None) -> CaseResult:
    return CaseResult(suite, name, [] if passed else ["outcome: expected resolved, got none"],
                      [("customer", "hi"), ("agent", "x" * 1000)], quarantine=quarantine)


def test_the_history_keeps_each_brands_runs_and_alerts_on_its_latest_nightly_only(
        services: Services, seeded: dict[str, Any]) -> None:
    lumen, rho = services.brands.get("lumen-goods"), services.brands.get("rho-bank")

    def nightly(brand: Brand, *results: CaseResult) -> EvalRun:
        run = services.evals.start(brand, "nightly", 1, 0, "scheduler")
        services.evals.finish(run, list(results))
        return run

    nightly(lumen, _result("cancel_order", "a", True), _result("flaky", "q", True, "flaky"))
    worse = nightly(lumen, _result("cancel_order", "a", False),
                    _result("flaky", "q", False, "flaky"))
    nightly(rho, _result("report_card", "b", True))
    nightly(rho, _result("report_card", "b", False))
    nightly(rho, _result("report_card", "b", False))  # no worse than the night before

    assert [run.id for run in services.evals.alerts()] == [worse.id]
    assert services.evals.alerts([rho.id]) == []
    [case, quarantined] = worse.cases
    assert case["failures"][0]["transcript"] == [["customer", "hi"], ["agent", "x" * 400]]
    assert quarantined["quarantine"] == "flaky"
    assert worse.scores == {"pass_hat_k": {"1": 0.0}, "by_suite": {"cancel_order": {"1": 0.0}},
                            "quarantined": {"1": 0.0}}
    assert [run.id for run in services.evals.runs(lumen)] == [worse.id, worse.id - 1]
    trend = services.evals.trend(services.evals.runs(lumen))
    assert [value for _, value in trend["cancel_order"]] == [1.0, 0.0]


def test_a_run_asked_for_blocks_another_until_it_ends_or_is_given_up(
        services: Services, seeded: dict[str, Any]) -> None:
    lumen = services.brands.get("lumen-goods")
    asked = services.evals.queue(lumen, "cara", "cancel_order")

    with pytest.raises(Conflict):
        services.evals.queue(lumen, "dan")
    assert services.evals.claim(asked) and not services.evals.claim(asked)
    with pytest.raises(Conflict):
        services.evals.queue(lumen, "dan")
    EvalRun.update(started_at=utcnow() - RUN_GIVEN_UP_AFTER - dt.timedelta(minutes=1)).where(
        EvalRun.id == asked.id).execute()
    again = services.evals.queue(lumen, "dan")

    assert [run.id for run in services.evals.queued()] == [again.id]
    assert (again.trigger, again.suite, again.requested_by) == ("admin", None, "dan")
