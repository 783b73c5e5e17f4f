"""Background jobs: closing idle conversations, and the record every run leaves."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from retail_support import EMPTY_CONFIG

from appliance.brands import Persona
from appliance.config import load_settings
from appliance.db.models import Brand, Conversation, JobRun, utcnow
from appliance.errors import ConfigError, ModelUnavailable, NotFound
from appliance.jobs import JOBS, Job, run_job
from appliance.jobs.scheduler import build_scheduler
from appliance.services import Services

CLOSE_IDLE = "conversations.close_idle"
PERSONA = Persona(agent_name="Juniper", tone="Warm.", greeting="Hi!")


@pytest.fixture
def brand(services: Services) -> Brand:
    return services.brands.create("acme", "Acme", PERSONA, actor="test")


def _conversation(services: Services, brand: Brand, *, idle_minutes: float,
                  status: str = "active") -> int:
    conversation, _ = services.conversations.start(brand, {}, "web")
    Conversation.update(
        status=status, updated_at=utcnow() - dt.timedelta(minutes=idle_minutes)
    ).where(Conversation.id == conversation.id).execute()
    conversation_id: int = conversation.id
    return conversation_id


def _state(conversation_id: int) -> tuple[str, str | None]:
    conversation = Conversation.get_by_id(conversation_id)
    return conversation.status, conversation.status_reason


def test_it_closes_only_idle_active_conversations(services: Services, brand: Brand) -> None:
    limit = services.settings.conversation_idle_close_minutes
    idle = _conversation(services, brand, idle_minutes=limit + 5)
    recent = _conversation(services, brand, idle_minutes=limit - 5)
    fresh = _conversation(services, brand, idle_minutes=0)
    waiting = _conversation(services, brand, idle_minutes=limit + 5, status="pending_human")
    already = _conversation(services, brand, idle_minutes=limit + 60, status="closed")

    run = run_job(services, CLOSE_IDLE)

    assert run.status == "ok"
    assert run.detail == {"closed": 1}
    assert _state(idle) == ("closed", "idle")
    assert Conversation.get_by_id(idle).closed_at is not None
    assert _state(recent) == ("active", None)
    assert _state(fresh) == ("active", None)
    assert _state(waiting) == ("pending_human", None)
    assert _state(already) == ("closed", None)


@pytest.fixture
def berlin_time() -> Iterator[None]:
    """The process's local time zone is Europe/Berlin (database times stay naive UTC)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_it_measures_idle_time_in_utc_whatever_the_local_zone(
    services: Services, brand: Brand, berlin_time: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 02:30 UTC on 2026-03-29 reads as a wall-clock time Berlin skips (02:00-03:00 local).
    now = dt.datetime(2026, 3, 29, 2, 30)
    monkeypatch.setattr("appliance.agent.conversations.utcnow", lambda: now)
    busy = _conversation(services, brand, idle_minutes=0)
    Conversation.update(updated_at=now - dt.timedelta(minutes=5)).where(
        Conversation.id == busy).execute()

    closed = services.conversations.close_idle(idle_minutes=10)

    assert closed == 0
    assert _state(busy) == ("active", None)


def test_it_closes_idle_conversations_idempotently(services: Services, brand: Brand) -> None:
    idle = _conversation(services, brand,
                         idle_minutes=services.settings.conversation_idle_close_minutes + 1)
    run_job(services, CLOSE_IDLE)
    closed_at = Conversation.get_by_id(idle).closed_at

    again = run_job(services, CLOSE_IDLE)

    assert again.detail == {"closed": 0}
    assert Conversation.get_by_id(idle).closed_at == closed_at


def test_it_records_a_successful_run(services: Services) -> None:
    run = run_job(services, CLOSE_IDLE)

    stored = JobRun.get_by_id(run.id)
    assert stored.job_id == CLOSE_IDLE
    assert stored.status == "ok"
    assert stored.detail == {"closed": 0}
    assert stored.finished_at is not None
    assert stored.finished_at >= stored.started_at


@pytest.mark.parametrize(("error", "recorded"), [
    (RuntimeError("boom"), {"error": "RuntimeError"}),
    (ModelUnavailable("model x is down"), {"error": "model_unavailable"}),
])
def test_it_records_a_failed_run_without_raising(
    services: Services, monkeypatch: pytest.MonkeyPatch, error: Exception,
    recorded: dict[str, Any],
) -> None:
    def failing(services: Services) -> dict[str, Any]:
        raise error

    job = JOBS[CLOSE_IDLE]
    monkeypatch.setitem(JOBS, CLOSE_IDLE, Job(job.id, failing, job.trigger, job.help))

    run = run_job(services, CLOSE_IDLE)

    stored = JobRun.get_by_id(run.id)
    assert stored.status == "failed"
    assert stored.detail == recorded
    assert stored.finished_at is not None
    assert JobRun.select().count() == 1


def test_it_keeps_running_jobs_after_one_fails(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(services: Services) -> dict[str, Any]:
        raise RuntimeError("boom")

    job = JOBS[CLOSE_IDLE]
    monkeypatch.setitem(JOBS, CLOSE_IDLE, Job(job.id, failing, job.trigger, job.help))
    run_job(services, CLOSE_IDLE)
    monkeypatch.undo()

    run = run_job(services, CLOSE_IDLE)

    assert run.status == "ok"
    assert [r.status for r in JobRun.select().order_by(JobRun.id)] == ["failed", "ok"]


def test_it_refuses_an_unknown_job(services: Services) -> None:
    with pytest.raises(NotFound):
        run_job(services, "no.such.job")

    assert JobRun.select().count() == 0


def test_it_records_the_health_of_every_routed_model(services: Services) -> None:
    run = run_job(services, "models.health")

    assert run.status == "ok"
    tasks = run.detail.pop("tasks")
    assert set(run.detail) == set(services.router.models)
    # The CPU default routes reply_large to cpu-large first; the operator has not supplied it.
    absent = run.detail.pop("cpu-large")
    assert (absent["ok"], absent["present"], absent["tasks"]) == (False, False, {"reply_large": 1})
    assert all(health["ok"] is True and health["present"] for health in run.detail.values())
    assert tasks["reply_large"] == {"ok": True, "present": ["smollm2-135m-instruct"],
                                    "absent": ["cpu-large"]}
    assert all(task["ok"] for task in tasks.values())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_nightly_evals_run_at_the_hour_the_settings_give(services: Services) -> None:
    moved = dataclasses.replace(services, settings=dataclasses.replace(
        services.settings, evals_nightly_hour=5))

    scheduled = build_scheduler(moved).get_job("evals.nightly")

    assert "hour='5'" in str(scheduled.trigger) and "minute='0'" in str(scheduled.trigger)
    assert JOBS["evals.nightly"].schedule(services.settings) == ("cron", {"hour": 2, "minute": 0})
    with pytest.raises(ConfigError, match="evals_nightly_hour"):
        load_settings(overrides={"evals_nightly_hour": 24},
                      env={"APPLIANCE_CONFIG": str(EMPTY_CONFIG)})
