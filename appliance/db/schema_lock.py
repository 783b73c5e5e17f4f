"""The schema lock: which releases use the database, so that none has its schema changed under it.

On PostgreSQL every web worker and scheduler holds the schema lock in shared mode, on a
connection of its own whose `application_name` names its role, node, release and the newest
migration it knows (`appliance web node-a 0.1.0 schema 18`), for as long as it runs; the lock
goes with the process, however it ends. `appliance db migrate` and `db rollback`, when they have
something to change, take the lock exclusively for their transaction. While any process still
holds it shared they refuse at once, naming those processes: a node upgraded before the others
never changes the schema under an older node that still serves. A second migration at the same
moment (every node of a play runs its migration unit) waits for the first, then finds nothing
left to do.

SQLite is one box, whose upgrade stops its services before it migrates: nothing is held there.
"""

from __future__ import annotations

import hashlib

import peewee

from appliance import __version__
from appliance.config import Settings
from appliance.db import lock_connection
from appliance.errors import ApplianceError

#: The advisory lock's key: the first 8 bytes of a hash of its name, as a signed bigint.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"appliance.schema").digest()[:8], "big", signed=True)
# pg_locks shows a bigint key as two oids: its high and low 32 bits.
_CLASSID, _OBJID = (LOCK_KEY & 0xFFFF_FFFF_FFFF_FFFF) >> 32, LOCK_KEY & 0xFFFF_FFFF


class SchemaInUse(ApplianceError):
    """Processes of other releases (or of this one, not stopped) still use the schema."""

    status = 409
    code = "schema_in_use"


class SchemaHold:
    """One serving process's shared hold: `release()`, or the process's end, drops it."""

    def __init__(self, url: str, name: str) -> None:
        self._db = lock_connection(url, name)
        self._db.connect()
        # Waits while a migration holds the lock: this process then starts on the schema it
        # left, and /readyz says so if that schema is newer than this release.
        self._db.execute_sql(  # type: ignore[no-untyped-call]
            "SELECT pg_advisory_lock_shared(%s)", (LOCK_KEY,))

    def release(self) -> None:
        self._db.close()


def hold(settings: Settings, role: str) -> SchemaHold | None:
    """The shared hold for a serving process (`role`: web, scheduler); None on SQLite."""
    if settings.is_sqlite:
        return None
    from appliance.db.migrate import available

    newest = max((m.version for m in available()), default=0)
    return SchemaHold(settings.database_url,
                      f"appliance {role} {settings.node_name} {__version__} schema {newest}")


def take_for_change(db: peewee.Database) -> None:
    """Take the lock exclusively for the open transaction (PostgreSQL), or raise SchemaInUse
    naming the processes that hold it shared."""
    if not isinstance(db, peewee.PostgresqlDatabase):
        return
    (got,) = db.execute_sql(  # type: ignore[no-untyped-call]
        "SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,)).fetchone()
    if got:
        return
    users = holders(db)
    if users:
        raise SchemaInUse(
            f"refusing to change the schema: {len(users)} process(es) still use it: "
            f"{'; '.join(users)}. Stop them (or upgrade their nodes in the same run) first."
        )
    # Held exclusively: another node's migration runs now. Wait for it to commit.
    db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))  # type: ignore[no-untyped-call]


def holders(db: peewee.Database) -> list[str]:
    """The processes holding the lock shared: "NAME (pid P on HOST)", oldest first."""
    rows = db.execute_sql(  # type: ignore[no-untyped-call]
        "SELECT a.application_name, a.pid, coalesce(host(a.client_addr), 'local socket')"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.mode = 'ShareLock' AND l.granted"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1"
        " ORDER BY a.backend_start",
        (_CLASSID, _OBJID),
    ).fetchall()
    return [f"{name or 'unnamed'} (pid {pid} on {host})" for name, pid, host in rows]
