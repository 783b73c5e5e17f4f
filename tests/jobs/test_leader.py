"""One leader among the nodes' schedulers: the scheduler lock (a PostgreSQL advisory lock, a
file lock on SQLite) is held by one process at a time; real `appliance scheduler` processes on
one database elect one, the other stands by and takes over when the leader is killed; job runs
record their node; `appliance scheduler status` says who leads."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from server_support import EMPTY_CONFIG, wait_for

from appliance.cli import cli
from appliance.config import Settings
from appliance.db.models import JobRun, SchedulerNode, utcnow
from appliance.jobs import leader
from appliance.services import Services

#: Bounds on waiting for processes to start, lead and take over; no assertion is about speed.
PROCESS_WAIT_S = 180


def test_one_process_holds_the_lock_at_a_time(services: Services, settings: Settings) -> None:
    first, second = leader.leader_lock(settings), leader.leader_lock(settings)
    try:
        assert first.try_acquire()
        assert not second.try_acquire()
        assert first.held() and not second.held()

        first.release()

        assert not first.held()
        assert second.try_acquire()
    finally:
        first.release()
        second.release()


def test_the_status_names_the_live_node_that_took_the_lock_last(services: Services) -> None:
    now = utcnow()
    ago = lambda seconds: now - dt.timedelta(seconds=seconds)  # noqa: E731
    for name, role, since, seen in (("dead", "leader", ago(600), ago(300)),
                                    ("b", "leader", ago(60), ago(2)),
                                    ("c", "standby", None, ago(4)),
                                    ("d", "stopped", None, ago(9))):
        SchedulerNode.create(name=name, pid=1, role=role, started_at=ago(900),
                             leader_since=since, last_seen=seen)

    report = leader.status(now)

    assert report["leader"] == "b"
    assert report["since"] == ago(60).replace(tzinfo=dt.UTC).isoformat(timespec="seconds")
    assert [(n["name"], n["role"]) for n in report["nodes"]] == [
        ("b", "leader"), ("c", "standby"), ("d", "stopped"), ("dead", "gone")]


def test_nobody_leads_an_empty_table(services: Services) -> None:
    assert leader.status() == {"leader": None, "since": None, "nodes": []}


Start = Callable[[str], "subprocess.Popen[bytes]"]


@pytest.fixture
def start_scheduler(settings: Settings, services: Services) -> Iterator[Start]:
    """start_scheduler(node): an `appliance scheduler` process of that node name on the
    test's database and data dir; the ones left are killed at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")} | {
        "APPLIANCE_CONFIG": str(EMPTY_CONFIG), "APPLIANCE_DATA_DIR": str(settings.data_dir),
        "APPLIANCE_DATABASE_URL": settings.database_url,
        "APPLIANCE_SCHEDULER_METRICS_PORT": "0"}

    def start(name: str) -> subprocess.Popen[bytes]:
        with (settings.data_dir / f"{name}.log").open("wb") as log:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "appliance", "scheduler"],
                env=env | {"APPLIANCE_NODE_NAME": name}, stdout=log, stderr=subprocess.STDOUT))
        return procs[-1]

    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _leader() -> str | None:
    name: str | None = leader.status()["leader"]
    return name


def _role(name: str) -> str | None:
    return next((n["role"] for n in leader.status()["nodes"] if n["name"] == name), None)


def test_a_standby_takes_over_when_the_leader_is_killed(start_scheduler: Start) -> None:
    first = start_scheduler("node-a")
    assert wait_for(lambda: _leader() == "node-a", PROCESS_WAIT_S)
    second = start_scheduler("node-b")
    assert wait_for(lambda: _role("node-b") == "standby", PROCESS_WAIT_S)
    # node-a ran the jobs that run at start; node-b, standing by, none.
    assert wait_for(lambda: JobRun.select().where(JobRun.node == "node-a").exists(),
                    PROCESS_WAIT_S)
    assert not JobRun.select().where(JobRun.node == "node-b").exists()

    first.kill()
    first.wait()

    assert wait_for(lambda: _leader() == "node-b", PROCESS_WAIT_S)
    assert _role("node-a") == "gone"
    assert wait_for(lambda: JobRun.select().where(JobRun.node == "node-b").exists(),
                    PROCESS_WAIT_S)
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=PROCESS_WAIT_S) == 0
    assert _role("node-b") == "stopped"
    assert _leader() is None


def test_the_cli_prints_the_status_as_json(services: Services, settings: Settings,
                                           tmp_path: Path) -> None:
    SchedulerNode.create(name="node-a", pid=42, role="leader", started_at=utcnow(),
                         leader_since=utcnow(), last_seen=utcnow())
    env = {"APPLIANCE_CONFIG": str(EMPTY_CONFIG), "APPLIANCE_DATA_DIR": str(settings.data_dir),
           "APPLIANCE_DATABASE_URL": settings.database_url}

    result = CliRunner().invoke(cli, ["scheduler", "status", "--json"], env=env)

    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["leader"] == "node-a"
    assert report["nodes"][0]["pid"] == 42


def test_a_leader_that_loses_its_lock_connection_stops(
        start_scheduler: Start, settings: Settings, services: Services) -> None:
    """PostgreSQL only (a file lock cannot be taken away): the lock's session ends, as when
    the database restarts; the leader stops scheduling at once and exits 1 for systemd to
    start it again, so two leaders never run the jobs together."""
    if not settings.database_url.startswith("postgres"):
        pytest.skip("the lock's connection is PostgreSQL's")
    proc = start_scheduler("node-a")
    assert wait_for(lambda: _leader() == "node-a", PROCESS_WAIT_S)

    services.db.execute_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'appliance-scheduler-lock'")

    assert proc.wait(timeout=PROCESS_WAIT_S) == 1
    assert _role("node-a") == "stopped"
