"""One leader among the nodes' schedulers.

APScheduler 3 must never share a job store between schedulers, and two nodes each scheduling
every job would run each twice. So every node may run `appliance scheduler`, and exactly one
leads: the one holding the scheduler lock, a PostgreSQL session advisory lock on a connection
of its own (a file lock beside the database on SQLite, which is one box). The lock goes with
the process that holds it, whether it exits, is killed, or its box or connection dies
(keepalives on both ends: PostgreSQL ends a vanished box's session in about 25 s), so a
standby, asking again every STANDBY_POLL_S, leads within a minute of the leader's end. A
leader that finds its lock connection gone stops at once (systemd starts it again, as a
standby if another took over): two leaders never schedule at once.

Each scheduler keeps its row in `scheduler_node` (role, since when it leads, last seen every
HEARTBEAT_S), which `appliance scheduler status` reads, and every job run records its node.
Jobs stay idempotent (appliance/jobs): one cut off by a failover runs again safely.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import os
from pathlib import Path
from typing import Any, Protocol

import peewee

from appliance.config import Settings
from appliance.db import lock_connection
from appliance.db.models import SchedulerNode, utcnow

#: Seconds between a scheduler's refreshes of its row (and a leader's check of its lock).
HEARTBEAT_S = 10
#: Seconds between a standby's attempts to take the lock.
STANDBY_POLL_S = 5
#: A node unseen for longer is reported gone.
ALIVE_S = 3 * HEARTBEAT_S
#: The advisory lock's key: the first 8 bytes of a hash of its name, as a signed bigint.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"appliance.scheduler").digest()[:8], "big",
                          signed=True)
LEADER, STANDBY, STOPPED, GONE = "leader", "standby", "stopped", "gone"


class LeaderLock(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if no one holds it; never waits."""

    def held(self) -> bool:
        """Whether this process still holds it (its connection is alive)."""

    def release(self) -> None: ...


class FileLock:
    """An exclusive flock on a file beside the SQLite database, released with the process."""

    def __init__(self, path: Path) -> None:
        self._path, self._fd = path, -1

    def try_acquire(self) -> bool:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def held(self) -> bool:
        return self._fd >= 0

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1


class AdvisoryLock:
    """A PostgreSQL session advisory lock on a connection of its own (the database's own
    connections come and go with requests; this one lives as long as the process), shared by
    the process's threads (the heartbeat checks it on its own). A standby asks again on the
    same connection; a broken one is opened afresh."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._db: peewee.Database | None = None
        self._holding = False

    def try_acquire(self) -> bool:
        db = self._db
        if db is None or not self._alive():
            self.release()
            db = self._db = lock_connection(self._url, "appliance-scheduler-lock")
            db.connect()
        (got,) = db.execute_sql(  # type: ignore[no-untyped-call]
            "SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        self._holding = bool(got)
        return self._holding

    def held(self) -> bool:
        return self._holding and self._alive()

    def _alive(self) -> bool:
        if self._db is None:
            return False
        try:
            self._db.execute_sql("SELECT 1")  # type: ignore[no-untyped-call]
            return True
        except (peewee.DatabaseError, peewee.InterfaceError):
            return False

    def release(self) -> None:
        if self._db is not None:
            with contextlib.suppress(peewee.DatabaseError, peewee.InterfaceError):
                self._db.close()
        self._db, self._holding = None, False


def leader_lock(settings: Settings) -> LeaderLock:
    if settings.database_url.startswith("sqlite"):
        return FileLock(settings.data_dir / "scheduler.lock")
    return AdvisoryLock(settings.database_url)


def started(name: str) -> None:
    """A scheduler process starts on this node: its row, fresh, standing by."""
    now = utcnow()
    values = {SchedulerNode.pid: os.getpid(), SchedulerNode.role: STANDBY,
              SchedulerNode.started_at: now, SchedulerNode.leader_since: None,
              SchedulerNode.last_seen: now}
    SchedulerNode.insert({SchedulerNode.name: name, **values}).on_conflict(
        conflict_target=[SchedulerNode.name], update=values).execute()


def record(name: str, role: str) -> None:
    """Refresh this node's row: its role, and last seen now."""
    SchedulerNode.update(role=role, last_seen=utcnow()).where(
        SchedulerNode.name == name).execute()


def took_the_lock(name: str) -> None:
    """This node leads from now. Whoever led before is gone: it held the lock until it
    ended."""
    now = utcnow()
    SchedulerNode.update(role=GONE, leader_since=None).where(
        (SchedulerNode.role == LEADER) & (SchedulerNode.name != name)).execute()
    SchedulerNode.update(role=LEADER, leader_since=now, last_seen=now).where(
        SchedulerNode.name == name).execute()


def status(now: dt.datetime | None = None) -> dict[str, Any]:
    """{"leader": NODE or None, "since": ISO or None, "nodes": [...]}: the leader is the
    live node that took the lock last. A leader killed with no standby to take over is gone
    once unseen for ALIVE_S; one that stopped says so at once."""
    now = now or utcnow()
    nodes = list(SchedulerNode.select().order_by(SchedulerNode.name))

    def alive(node: SchedulerNode) -> bool:
        return node.role in (LEADER, STANDBY) and (
            now - node.last_seen).total_seconds() <= ALIVE_S

    leaders = [n for n in nodes if n.role == LEADER and alive(n)]
    leader = max(leaders, key=lambda n: n.leader_since or now) if leaders else None
    return {
        "leader": leader.name if leader else None,
        "since": _iso(leader.leader_since) if leader else None,
        "nodes": [{"name": n.name, "role": n.role if alive(n) or n.role == STOPPED else GONE,
                   "pid": n.pid,
                   "started_at": _iso(n.started_at), "last_seen": _iso(n.last_seen)}
                  for n in nodes],
    }


def _iso(value: dt.datetime | None) -> str | None:
    return value.replace(tzinfo=dt.UTC).isoformat(timespec="seconds") if value else None
