"""The scheduler process (`appliance scheduler`): the only place jobs are scheduled."""

from __future__ import annotations

import logging
import signal
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler

from appliance import metrics
from appliance.jobs import JOBS, run_job
from appliance.services import Services

log = logging.getLogger(__name__)


def build_scheduler(services: Services) -> BlockingScheduler:
    scheduler = BlockingScheduler(
        timezone="UTC",
        # One run of a job at a time; runs missed while down collapse into one.
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
    )
    for job in JOBS.values():
        kind, args = job.schedule(services.settings)
        scheduler.add_job(run_job, kind, args=(services, job.id), id=job.id,
                          name=job.help.splitlines()[0], **args)
    return scheduler


def run_scheduler(services: Services) -> None:
    """Serve the process's metrics on loopback, run the quick jobs once at start, then every
    job on its schedule, until SIGINT/SIGTERM."""
    _serve_metrics(services.settings.scheduler_metrics_port)
    for job in JOBS.values():
        if job.at_start:
            run_job(services, job.id)
    scheduler = build_scheduler(services)

    def _stop(signum: int, frame: FrameType | None) -> None:
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, _stop)
    log.info("scheduler started with jobs: %s", ", ".join(JOBS))
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        log.info("scheduler stopped")


def _serve_metrics(port: int) -> None:
    """The jobs' metrics on 127.0.0.1:`port` (0: off). A port already taken is logged, not
    fatal: the jobs matter more than their metrics."""
    if not port:
        return
    try:
        metrics.serve_on("127.0.0.1", port)
    except OSError as exc:
        log.error("scheduler metrics not served: 127.0.0.1:%d: %s", port, exc.strerror)
        return
    log.info("scheduler metrics on http://127.0.0.1:%d/metrics", port)
