"""A brand's evals page over the real Flask app: the latest run per suite with pass^k, the
trend, failures with why, the quarantine list, the regression alert (also on the dashboard),
and "Run now" queuing a run the scheduler's job then makes; real engine and order system."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from eval_support import BROKEN, FLAKY, a_day_back, with_small_suite
from flask.testing import FlaskClient
from retail_support import RetailBackend

from appliance.db.models import AuditLog, Brand
from appliance.jobs import run_job
from appliance.services import Services

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
PAGE = "/admin/brands/lumen-goods/evals"
Submit = Callable[[FlaskClient, str, str, dict[str, str]], Any]


@pytest.fixture
def evaluated(services: Services, lumen: Brand, retail_backend: RetailBackend) -> Brand:
    return with_small_suite(services, lumen, retail_backend.url)


@pytest.fixture
def regressed(services: Services, evaluated: Brand) -> list[int]:
    """Two nightly runs: last night's passed, tonight's fails the suite; their ids."""
    passed = run_job(services, "evals.nightly").detail["lumen-goods"]["run"]
    a_day_back(passed)
    services.suites.save(evaluated, BROKEN, "dan")
    services.suites.save(evaluated, FLAKY, "dan")
    failed = run_job(services, "evals.nightly").detail["lumen-goods"]["run"]
    return [passed, failed]


def test_the_page_shows_scores_trend_failures_quarantine_and_the_alert(
        admin_client: FlaskClient, regressed: list[int]) -> None:
    page = admin_client.get(PAGE).get_data(as_text=True)

    passed, failed = regressed
    assert 'role="alert"' in page and f"Regression in the nightly run {failed}" in page
    assert "pass^1 1.000 → 0.000" in page
    assert f"Run {failed} (nightly)" in page
    assert (f'aria-label="pass^1 of cancellations over the last 2 runs: run {passed}: 1.00, '
            f'run {failed}: 0.00"') in page
    assert "<polyline points=" in page
    assert "trial 1: outcome: expected escalated, got resolved" in page
    assert "waits on the shop&#39;s new cancel flow" in page
    assert f'id="run-{passed}"' in page and f'id="run-{failed}"' in page
    dashboard = admin_client.get("/admin/").get_data(as_text=True)
    assert "Lumen Goods: the nightly evals regressed" in dashboard
    assert 'href="/admin/brands/lumen-goods/evals"' in dashboard


def test_an_editor_queues_a_run_that_the_scheduler_makes(
        services: Services, evaluated: Brand, sign_in_as: Callable[..., FlaskClient],
        submit: Submit) -> None:
    editor = sign_in_as("cx_editor", "lumen-goods")

    queued = submit(editor, PAGE, "/admin/brands/lumen-goods/evals/run",
                    {"suite": "cancellations"})
    again = submit(editor, PAGE, "/admin/brands/lumen-goods/evals/run", {"suite": ""})
    waiting = editor.get(PAGE).get_data(as_text=True)
    made = run_job(services, "evals.requested")
    done = editor.get(PAGE).get_data(as_text=True)

    assert queued.status_code == 302 and again.status_code == 302
    [run] = services.evals.runs(evaluated)
    assert 'action="/admin/brands/lumen-goods/evals/run"' in waiting
    assert "1 run(s) waiting or running" in waiting and "already waiting or running" in waiting
    assert made.detail == {str(run.id): {"run": run.id, "status": "done", "pass^1": 1.0,
                                         "regressions": []}}
    assert f"Run {run.id} (admin, suite cancellations)" in done
    assert "Every case passed every trial." in done
    assert AuditLog.get(AuditLog.action == "eval_run.request").actor == "cx_editor-lumen-goods"


def test_a_viewer_sees_the_page_but_cannot_run(
        services: Services, evaluated: Brand, sign_in_as: Callable[..., FlaskClient],
        csrf_token: Callable[[str], str]) -> None:
    viewer = sign_in_as("viewer", "lumen-goods")

    page = viewer.get(PAGE)
    refused = viewer.post("/admin/brands/lumen-goods/evals/run",
                          data={"csrf_token": csrf_token(page.get_data(as_text=True))})

    assert page.status_code == 200 and "No run finished yet." in page.get_data(as_text=True)
    assert 'action="/admin/brands/lumen-goods/evals/run"' not in page.get_data(as_text=True)
    assert refused.status_code == 403
    assert services.evals.runs(evaluated) == []
