"""The scheduler process (`appliance scheduler`): the only place jobs are scheduled, by the
one node that leads (appliance.jobs.leader)."""

from __future__ import annotations

import logging
import signal
import threading

from apscheduler.schedulers.background import BackgroundScheduler

from appliance import metrics
from appliance.db import schema_lock
from appliance.jobs import JOBS, leader, run_job
from appliance.services import Services

log = logging.getLogger(__name__)


def build_scheduler(services: Services) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        timezone="UTC",
        # One run of a job at a time; runs missed while down collapse into one.
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
    )
    for job in JOBS.values():
        kind, args = job.schedule(services.settings)
        scheduler.add_job(run_job, kind, args=(services, job.id), id=job.id,
                          name=job.help.splitlines()[0], **args)
    return scheduler


def run_scheduler(services: Services) -> int:
    """Serve the process's metrics on loopback and stand by until this node holds the
    scheduler lock (appliance.jobs.leader); then run the quick jobs once and every job on
    its schedule, until SIGINT/SIGTERM (exit 0) or until the lock is lost (exit 1, so that
    systemd starts it again)."""
    _serve_metrics(services.settings.scheduler_metrics_port)
    name, lock = services.settings.node_name, leader.leader_lock(services.settings)
    hold = schema_lock.hold(services.settings, "scheduler")  # its jobs use the schema too
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    with services.db.connection_context():
        leader.started(name)
    try:
        if not _wait_for_the_lock(services, lock, stop):
            return 0
        return _lead(services, lock, stop)
    except KeyboardInterrupt:
        return 0
    finally:
        lock.release()
        with services.db.connection_context():
            leader.record(name, leader.STOPPED)
        if hold is not None:
            hold.release()
        log.info("scheduler stopped")


def _wait_for_the_lock(services: Services, lock: leader.LeaderLock,
                       stop: threading.Event) -> bool:
    """Stand by until the lock is this node's (True) or the process is told to stop."""
    name = services.settings.node_name
    announced = False
    while not stop.is_set():
        if lock.try_acquire():
            return True
        if not announced:
            log.info("scheduler on %s standing by: another node leads", name)
            announced = True
        with services.db.connection_context():
            leader.record(name, leader.STANDBY)
        stop.wait(leader.STANDBY_POLL_S)
    return False


def _lead(services: Services, lock: leader.LeaderLock, stop: threading.Event) -> int:
    name = services.settings.node_name
    with services.db.connection_context():
        leader.took_the_lock(name)
    log.info("scheduler on %s leads", name)
    lost = threading.Event()
    # From the start: the jobs that run at start may take longer than a heartbeat.
    threading.Thread(target=_heartbeat, args=(services, lock, stop, lost),
                     name="leader-heartbeat", daemon=True).start()
    for job in JOBS.values():
        if job.at_start and not stop.is_set():
            run_job(services, job.id)
    scheduler = build_scheduler(services)
    scheduler.start()
    log.info("scheduler started with jobs: %s", ", ".join(JOBS))
    try:
        while not stop.wait(1.0):  # a plain wait() would hold off Ctrl-C
            pass
    finally:
        scheduler.shutdown(wait=False)
    return 1 if lost.is_set() else 0


def _heartbeat(services: Services, lock: leader.LeaderLock, stop: threading.Event,
               lost: threading.Event) -> None:
    """Every HEARTBEAT_S while leading: refresh this node's row, or, when the lock's
    connection is gone, stop the process (another node may lead already)."""
    name = services.settings.node_name
    while not stop.wait(leader.HEARTBEAT_S):
        if not lock.held():
            log.error("scheduler on %s lost its lock: stopping, another node may lead", name)
            lost.set()
            stop.set()
            return
        with services.db.connection_context():
            leader.record(name, leader.LEADER)


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
