"""Background jobs: plain functions with explicit ids, run by the scheduler process.

Each job takes the Services and returns a small JSON-able summary. `run_job` records every run
in JobRun (started, finished, status, summary or error code); `appliance jobs run ID` calls the
same function by hand. Jobs must be idempotent: the scheduler may run one again after a crash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.db.models import JobRun, utcnow
from appliance.errors import ApplianceError, NotFound
from appliance.services import Services

log = logging.getLogger(__name__)
JobFunc = Callable[[Services], dict[str, Any]]


@dataclass(frozen=True)
class Job:
    id: str
    func: JobFunc
    #: APScheduler interval trigger arguments, e.g. {"minutes": 10}.
    every: dict[str, int]
    help: str


def close_idle_conversations(services: Services) -> dict[str, Any]:
    """Close active conversations idle longer than `conversation_idle_close_minutes`."""
    closed = services.conversations.close_idle(services.settings.conversation_idle_close_minutes)
    return {"closed": closed}


def check_models(services: Services) -> dict[str, Any]:
    """Record the health of every routed model (the admin dashboard shows the latest)."""
    return {
        model_id: {"ok": health.ok, "detail": health.detail}
        for model_id, model in services.router.models.items()
        for health in [model.check_health()]
    }


JOBS: dict[str, Job] = {
    job.id: job
    for job in (
        Job("conversations.close_idle", close_idle_conversations, {"minutes": 10},
            close_idle_conversations.__doc__ or ""),
        Job("models.health", check_models, {"minutes": 5}, check_models.__doc__ or ""),
    )
}


def run_job(services: Services, job_id: str) -> JobRun:
    """Run one job now and record the run; a failure is recorded, not raised."""
    job = JOBS.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}; known: {', '.join(JOBS)}", code="job_not_found")
    with services.db.connection_context():
        run = JobRun.create(job_id=job_id, status="running")
        try:
            detail = job.func(services)
            run.status = "ok"
        except ApplianceError as exc:
            log.exception("job %s failed", job_id)
            detail, run.status = {"error": exc.code}, "failed"
        except Exception as exc:  # a failed job is recorded; the scheduler goes on
            log.exception("job %s failed", job_id)
            detail, run.status = {"error": type(exc).__name__}, "failed"
        run.detail = detail
        run.finished_at = utcnow()
        run.save()
    return run
