"""Database access: one `DatabaseProxy` bound at start-up to SQLite (WAL) or PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import peewee
from playhouse.db_url import connect

database_proxy = peewee.DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    # Wait for a writer in another process (web workers, scheduler) instead of failing at once.
    "busy_timeout": 10_000,
    "synchronous": "normal",
}


def open_database(url: str) -> peewee.Database:
    """Open the database named by `url` and bind the proxy to it."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        db: peewee.Database = peewee.SqliteDatabase(str(path), pragmas=SQLITE_PRAGMAS)
    else:
        db = connect(url.replace("postgres://", "postgresql://", 1))
    database_proxy.initialize(db)
    return db


#: Seconds of silence before a probe, between probes, probes unanswered, and (in ms) how long
#: sent data may stay unacknowledged: a peer that vanishes is noticed within about 25 s.
_KEEPALIVE = (10, 5, 3, 25_000)


def lock_connection(url: str, name: str) -> peewee.Database:
    """A PostgreSQL connection of its own for a session lock held as long as the process runs
    (the scheduler's lead, the schema lock), named `name` in pg_stat_activity. Keepalives run
    on both ends: this process notices a dead server, and the server a vanished box, whose
    session and locks it then ends (its own defaults wait two hours)."""
    idle, interval, count, user_timeout_ms = _KEEPALIVE
    server_side = (f"-c tcp_keepalives_idle={idle} -c tcp_keepalives_interval={interval} "
                   f"-c tcp_keepalives_count={count} -c tcp_user_timeout={user_timeout_ms}")
    db: peewee.Database = connect(
        url, thread_safe=False, autoconnect=False, application_name=name[:63], keepalives=1,
        keepalives_idle=idle, keepalives_interval=interval, keepalives_count=count,
        options=server_side)
    return db
