"""/metrics in one process: who may read it, what it lists, and what the jobs record.

tests/test_metrics_gunicorn.py covers gunicorn's workers, their sum and the scheduler's port.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from metrics_support import family_names, sample_value
from retail_support import Customer
from server_support import make_settings

from appliance.config import Settings
from appliance.db.models import Conversation, Handoff, Outcome
from appliance.errors import ConfigError
from appliance.jobs import run_job
from appliance.services import Services

TOKEN = "scrape-token-7f3a"
OUTSIDE = {"REMOTE_ADDR": "203.0.113.7"}
FAMILIES = {
    "switchboard_turns", "switchboard_turn_duration_seconds", "switchboard_handoffs",
    "switchboard_outcomes", "switchboard_model_requests", "switchboard_model_tokens",
    "switchboard_knowledge_retrieval_seconds", "switchboard_tool_calls",
    "switchboard_tool_call_duration_seconds", "switchboard_webhook_deliveries",
    "switchboard_jobs_runs", "switchboard_job_last_success_timestamp_seconds",
}


def refused_body(request_id: str) -> dict[str, Any]:
    """The one error shape of a refused scrape: it names no address, token or setting."""
    return {"error": {"message": "Not allowed to read the metrics.", "type": "permission_error",
                      "param": None, "code": "metrics_forbidden"},
            "request_id": request_id}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url=database_url, metrics_token=TOKEN)


def test_it_serves_every_metric_family_to_loopback_in_the_text_format(app: Flask) -> None:
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert family_names(response.get_data(as_text=True)) >= FAMILIES


@pytest.mark.parametrize("headers, environ", [
    ({}, OUTSIDE),
    ({"Authorization": "Bearer wrong-token"}, {}),
    ({"Authorization": f"Basic {TOKEN}"}, {}),
    ({"Authorization": "Bearer "}, OUTSIDE),
], ids=["address-not-allowed", "wrong-token-from-loopback", "not-bearer", "empty-token"])
def test_it_refuses_a_scrape_with_the_one_error_shape(
        app: Flask, headers: dict[str, str], environ: dict[str, str]) -> None:
    response = app.test_client().get("/metrics", headers=headers, environ_base=environ)
    assert response.status_code == 403
    assert response.mimetype == "application/json"
    assert response.get_json() == refused_body(response.headers["X-Request-ID"])


def test_it_serves_the_token_from_any_address(app: Flask) -> None:
    response = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"},
                                     environ_base=OUTSIDE)
    assert response.status_code == 200
    assert "switchboard_jobs_runs" in family_names(response.get_data(as_text=True))


def test_it_counts_job_runs_and_keeps_their_last_success_time(app: Flask,
                                                               services: Services) -> None:
    client = app.test_client()
    job = {"job_id": "conversations.close_idle"}
    before = client.get("/metrics").get_data(as_text=True)
    run = run_job(services, job["job_id"])
    after = client.get("/metrics").get_data(as_text=True)
    assert run.status == "ok"
    runs = "switchboard_jobs_runs_total"
    assert sample_value(after, runs, {**job, "result": "ok"}) == sample_value(
        before, runs, {**job, "result": "ok"}) + 1
    finished = run.finished_at.replace(tzinfo=dt.UTC).timestamp()
    assert sample_value(after, "switchboard_job_last_success_timestamp_seconds", job) == finished


def test_a_workflow_turn_records_its_stages_and_its_tool_call(
        client: FlaskClient, seeded: dict[str, Any], lumen: Any) -> None:
    customer = Customer(client, seeded["keys"]["lumen-goods"])
    brand = {"brand": "lumen-goods"}
    tool = {"tool": "find_user_by_email", "result": "ok"}
    before = client.get("/metrics").get_data(as_text=True)
    customer.says("Hi! I'd like to cancel order #W3657213")
    assert "found your account" in customer.says("olivia.ito5204@example.com")
    after = client.get("/metrics").get_data(as_text=True)

    def added(name: str, labels: dict[str, str]) -> float:
        return sample_value(after, name, labels) - sample_value(before, name, labels)

    assert added("switchboard_turns_total", brand) == 2
    for stage in ("signals", "workflow", "persist", "total"):
        assert added("switchboard_turn_duration_seconds_count", {**brand, "stage": stage}) == 2
    assert added("switchboard_tool_calls_total", tool) == 1
    assert added("switchboard_tool_call_duration_seconds_count", {"tool": tool["tool"]}) == 1


def test_a_handoff_counts_with_its_reason_and_its_outcome(
        client: FlaskClient, seeded: dict[str, Any]) -> None:
    customer = Customer(client, seeded["keys"]["lumen-goods"])
    before = client.get("/metrics").get_data(as_text=True)
    customer.says("I want a human")
    after = client.get("/metrics").get_data(as_text=True)
    handoff = Handoff.get(Handoff.conversation == Conversation.get(
        Conversation.public_id == customer.id))
    outcome = Outcome.get(Outcome.conversation == handoff.conversation)
    labels = {"brand": "lumen-goods", "reason": handoff.reason}
    counted = {"brand": "lumen-goods", "outcome": outcome.type}
    assert sample_value(after, "switchboard_handoffs_total", labels) == sample_value(
        before, "switchboard_handoffs_total", labels) + 1
    assert sample_value(after, "switchboard_outcomes_total", counted) == sample_value(
        before, "switchboard_outcomes_total", counted) + 1


@pytest.mark.parametrize("setting, value, says", [
    ("metrics_allow", "10.0.0.0/8,not-a-network", "'metrics_allow'"),
    ("log_format", "xml", "'log_format'"),
    ("scheduler_metrics_port", "70000", "'scheduler_metrics_port'"),
])
def test_it_refuses_bad_observability_settings_naming_the_key(
        tmp_path: Path, setting: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        make_settings(tmp_path, **{setting: value})
