"""Background jobs: plain functions with explicit ids, run by the scheduler process.

Each job takes the Services and returns a small JSON-able summary. `run_job` records every run
in JobRun (started, finished, status, summary or error code); `appliance jobs run ID` calls the
same function by hand. Jobs must be idempotent: the scheduler may run one again after a crash.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance import metrics
from appliance.billing.contracts import contract_at
from appliance.billing.ledger import month_bounds
from appliance.config import Settings
from appliance.db.models import JobRun, KnowledgeSource, utcnow
from appliance.errors import ApplianceError, NotFound
from appliance.evals import nightly
from appliance.services import Services

log = logging.getLogger(__name__)
JobFunc = Callable[[Services], dict[str, Any]]


@dataclass(frozen=True)
class Job:
    id: str
    func: JobFunc
    #: APScheduler trigger: ("interval", {"minutes": 10}) or ("cron", {"hour": 2}).
    trigger: tuple[str, dict[str, int]]
    help: str
    #: Run once when the scheduler starts (cheap, idempotent checks only).
    at_start: bool = True
    #: The setting that moves a daily job's hour, if one does.
    hour_setting: str | None = None

    def schedule(self, settings: Settings) -> tuple[str, dict[str, int]]:
        """The trigger, with the hour from `hour_setting` when the job has one."""
        kind, args = self.trigger
        if self.hour_setting is None:
            return kind, args
        return kind, {**args, "hour": int(getattr(settings, self.hour_setting))}

    def describe_schedule(self) -> str:
        kind, args = self.trigger
        if kind == "interval":
            return "every " + ", ".join(f"{v} {k}" for k, v in args.items())
        return "daily at " + ":".join(f"{args.get(k, 0):02d}" for k in ("hour", "minute"))


def close_idle_conversations(services: Services) -> dict[str, Any]:
    """Close active conversations idle longer than `conversation_idle_close_minutes`."""
    closed = services.conversations.close_idle(services.settings.conversation_idle_close_minutes)
    return {"closed": closed}


def check_models(services: Services) -> dict[str, Any]:
    """Record the health of every routed model (the admin dashboard shows the latest) and,
    under "tasks", which models of each task's route are present.

    Per model: ok and detail from its health probe (an absent file is reported, not probed),
    present, and the tasks it serves with its place in each route (1 = first choice). Per task:
    ok while one of its models is present, the present and absent ones in route order.
    Circuit states are not here: they live in each web worker (see `ModelRouter.status()`).
    """
    router = services.router
    status = router.status()
    report: dict[str, Any] = {}
    for model_id, model in router.models.items():
        present = status[model_id].present
        health = model.check_health() if present else None
        report[model_id] = {
            "ok": health.ok if health else False,
            "detail": health.detail if health else f"absent: {model.spec.path} not found",
            "present": present,
            "tasks": status[model_id].tasks,
        }
    report["tasks"] = {
        task: {"ok": route.ok, "present": list(route.present), "absent": list(route.absent)}
        for task in router.tasks
        for route in [router.route_status(task)]
    }
    return report


def reingest_knowledge(services: Services) -> dict[str, Any]:
    """Re-ingest every knowledge source with a nightly schedule; publish a draft only where
    the brand allows auto-publishing and the run found no new contradiction."""
    summary: dict[str, Any] = {}
    for source in KnowledgeSource.select().where(KnowledgeSource.schedule == "nightly"):
        brand = services.brands.get(source.brand.slug)
        try:
            outcome = services.knowledge.ingest(brand, source_id=source.id, auto_publish=True,
                                                actor="scheduler")
        except ApplianceError as exc:
            summary[str(source.id)] = {"status": "failed", "error": exc.code}
            continue
        version = outcome.version
        summary[str(source.id)] = {
            "status": outcome.run.status, "errors": len(outcome.errors),
            "version": version.number if version else None,
            "published": bool(version and version.status == "published"),
        }
    return summary


def deliver_webhooks(services: Services) -> dict[str, Any]:
    """Send due webhook deliveries to the brands' helpdesks (one attempt each); a failed
    attempt is scheduled again with backoff, never raised."""
    return services.webhooks.deliver_due()


def settle_outcomes(services: Services) -> dict[str, Any]:
    """Settle the provisional outcomes whose reopen (or assume) window has passed."""
    return {"settled": services.outcomes.settle()}


def close_invoices(services: Services) -> dict[str, Any]:
    """Close last month's invoice of every brand that had a contract then (once each)."""
    last_month = (utcnow().replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    closed = []
    last_day = month_bounds(last_month)[1] - dt.timedelta(microseconds=1)
    for brand in services.brands.all():
        if (contract_at(brand, last_day) is not None
                and services.ledger.invoice_close(brand, last_month) is None):
            services.invoices.close(brand, last_month, actor="scheduler")
            closed.append(brand.slug)
    return {"period": last_month, "closed": closed}


def nightly_evals(services: Services) -> dict[str, Any]:
    """Run every brand's eval suites against what is live, on its test system, once a day
    (hour: the `evals_nightly_hour` setting); record each run and, where a suite's pass^1
    fell beyond the brand's tolerance since the last nightly run, an alert and an
    `evals.regressed` webhook event. Brands without a test system are skipped."""
    return nightly.nightly(services)


def requested_evals(services: Services) -> dict[str, Any]:
    """Run the eval runs asked for on the admin's evals pages ("Run now")."""
    return nightly.requested(services)


def purge_idempotency_keys(services: Services) -> dict[str, Any]:
    """Delete the turns' Idempotency-Keys (and their stored replies) older than 24 hours."""
    return {"deleted": services.idempotency.purge()}


def purge_rate_buckets(services: Services) -> dict[str, Any]:
    """Delete the rate limits' buckets idle for an hour (they would be full again)."""
    return {"deleted": services.rate_limits.purge()}


def purge_expired(services: Services) -> dict[str, Any]:
    """Delete conversations past their brand's retention_days, except those under legal
    hold (appliance/privacy/retention.py)."""
    return services.privacy.purge()


JOBS: dict[str, Job] = {
    job.id: job
    for job in (
        Job("conversations.close_idle", close_idle_conversations, ("interval", {"minutes": 10}),
            close_idle_conversations.__doc__ or ""),
        Job("models.health", check_models, ("interval", {"minutes": 5}),
            check_models.__doc__ or ""),
        Job("knowledge.reingest", reingest_knowledge, ("cron", {"hour": 2, "minute": 0}),
            reingest_knowledge.__doc__ or "", at_start=False),
        Job("webhooks.deliver", deliver_webhooks, ("interval", {"minutes": 1}),
            deliver_webhooks.__doc__ or ""),
        Job("outcomes.settle", settle_outcomes, ("interval", {"hours": 1}),
            settle_outcomes.__doc__ or ""),
        Job("invoices.close", close_invoices, ("cron", {"day": 1, "hour": 1, "minute": 0}),
            close_invoices.__doc__ or "", at_start=False),
        Job("evals.nightly", nightly_evals, ("cron", {"hour": 2, "minute": 0}),
            nightly_evals.__doc__ or "", at_start=False, hour_setting="evals_nightly_hour"),
        Job("evals.requested", requested_evals, ("interval", {"minutes": 1}),
            requested_evals.__doc__ or "", at_start=False),
        Job("idempotency.purge", purge_idempotency_keys, ("interval", {"hours": 1}),
            purge_idempotency_keys.__doc__ or ""),
        Job("rate_limits.purge", purge_rate_buckets, ("interval", {"hours": 1}),
            purge_rate_buckets.__doc__ or ""),
        Job("privacy.purge", purge_expired, ("cron", {"hour": 3, "minute": 0}),
            purge_expired.__doc__ or "", at_start=False),
    )
}


def last_run(job_id: str) -> JobRun | None:
    """The latest recorded run of `job_id`, if any."""
    run: JobRun | None = (JobRun.select().where(JobRun.job_id == job_id)
                          .order_by(JobRun.started_at.desc(), JobRun.id.desc()).first())
    return run


def run_job(services: Services, job_id: str) -> JobRun:
    """Run one job now and record the run; a failure is recorded, not raised."""
    job = JOBS.get(job_id)
    if job is None:
        raise NotFound(f"no job {job_id!r}; known: {', '.join(JOBS)}", code="job_not_found")
    with services.db.connection_context():
        run = JobRun.create(job_id=job_id, status="running", node=services.settings.node_name)
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
    metrics.record_job_run(job_id, run.status, run.finished_at.replace(tzinfo=dt.UTC).timestamp())
    return run
