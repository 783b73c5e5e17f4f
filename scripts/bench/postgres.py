"""A database of a benchmark's own on a PostgreSQL server, and the work PostgreSQL did in it.

The counters come from pg_stat_database, read over a connection to the database the given URL
names (never the benchmark's), so that reading them adds nothing to them. A backend adds its
counts when it exits at the latest, and the appliance connects per request: once every
connection opened since a mark has closed, the counters hold everything done since.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import psycopg2  # type: ignore[import-untyped]
from psycopg2 import sql

#: Dropped and made again for every group of nodes: the only database the benchmark writes.
DATABASE = "appliance_bench_load"
#: `sessions` (connections made) needs PostgreSQL 14.
COUNTERS = ("xact_commit", "xact_rollback", "tup_inserted", "tup_updated", "tup_deleted",
            "sessions")
#: How long the connections opened during a level may take to close before the counters are
#: read anyway (the result says so).
SETTLE_S = 30.0


@dataclass(frozen=True)
class Mark:
    """A moment on the server's clock, and the counters then."""

    at: datetime
    counters: dict[str, int]


class BenchDatabase:
    """DATABASE on the server of `admin_url`; `url` is what the nodes connect to."""

    def __init__(self, admin: Any, url: str) -> None:
        self._admin = admin
        self.url = url

    def mark(self) -> Mark:
        (at,) = self._query("SELECT now()")
        return Mark(at, self._counters())

    def work_since(self, mark: Mark) -> dict[str, Any]:
        """What the database did since `mark`, read once the connections opened since have
        closed (`settled` false when some were still open after SETTLE_S)."""
        deadline = time.monotonic() + SETTLE_S
        while (still_open := self._opened_since(mark)) and time.monotonic() < deadline:
            time.sleep(0.1)
        after = self._counters()
        return {**{name: after[name] - mark.counters[name] for name in COUNTERS},
                "settled": not still_open}

    def _opened_since(self, mark: Mark) -> int:
        count: int = self._query(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
            " AND backend_type = 'client backend' AND backend_start >= %s",
            (DATABASE, mark.at))[0]
        return count

    def _counters(self) -> dict[str, int]:
        row = self._query(sql.SQL("SELECT {} FROM pg_stat_database WHERE datname = %s").format(
            sql.SQL(", ").join(map(sql.Identifier, COUNTERS))), (DATABASE,))
        return dict(zip(COUNTERS, row, strict=True))

    def _query(self, query: Any, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        with self._admin.cursor() as cursor:
            cursor.execute(query, params)
            row: tuple[Any, ...] = cursor.fetchone()
        return row


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[BenchDatabase]:
    """DATABASE, empty, on the server of `admin_url`; dropped on the way out."""
    admin = psycopg2.connect(admin_url)
    admin.autocommit = True  # CREATE and DROP DATABASE run outside a transaction
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DATABASE))
    try:
        with admin.cursor() as cursor:
            cursor.execute(drop)
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        try:
            yield BenchDatabase(admin, urlsplit(admin_url)._replace(path=f"/{DATABASE}").geturl())
        finally:
            with admin.cursor() as cursor:
                cursor.execute(drop)
    finally:
        admin.close()


def server_version(url: str) -> str:
    """The version of the server of `url`, as "PostgreSQL 15.8"."""
    connection = psycopg2.connect(url)
    try:
        return f"PostgreSQL {connection.info.parameter_status('server_version')}"
    finally:
        connection.close()
