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
