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

import contextlib
import hashlib
import threading

import peewee

from appliance import __version__
from appliance.config import Settings
from appliance.db import lock_connection
from appliance.errors import ApplianceError

#: Seconds between a hold's checks of its connection and of the applied migrations.
CHECK_S = 10
#: Seconds a migration waits for the lock before it looks again at who holds it.
WAIT_S = 2
#: The advisory lock's key: the first 8 bytes of a hash of its name, as a signed bigint.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"appliance.schema").digest()[:8], "big", signed=True)
# pg_locks shows a bigint key as two oids: its high and low 32 bits.
_CLASSID, _OBJID = (LOCK_KEY & 0xFFFF_FFFF_FFFF_FFFF) >> 32, LOCK_KEY & 0xFFFF_FFFF


class SchemaInUse(ApplianceError):
    """Processes of other releases (or of this one, not stopped) still use the schema."""

    status = 409
    code = "schema_in_use"


class SchemaHold:
    """One serving process's shared hold, kept by a thread of its own. The thread takes the
    lock (waiting while a migration runs), checks its connection every CHECK_S and takes the
    lock again on a fresh connection when the database restarted or failed over (in between
    the process holds nothing, and /readyz says so), and reads which migrations are applied:
    `schema` is "current", "pending" (this release is newer), "newer" (another node migrated
    past this release) or "unknown" (not read yet, or the database does not answer). Nothing
    here runs in the caller's thread, so a process starts while the database is down."""

    def __init__(self, url: str, name: str, known: frozenset[int]) -> None:
        self._url, self._name, self._known = url, name, known
        self._db: peewee.Database | None = None
        self._stop = threading.Event()
        self.schema = "unknown"
        self._thread = threading.Thread(target=self._keep, name="schema-hold", daemon=True)
        self._thread.start()

    @property
    def held(self) -> bool:
        return self._db is not None

    def _keep(self) -> None:
        while not self._stop.is_set():
            try:
                if self._db is None:
                    db = lock_connection(self._url, self._name)
                    db.connect()
                    db.execute_sql(  # type: ignore[no-untyped-call]
                        "SELECT pg_advisory_lock_shared(%s)", (LOCK_KEY,))
                    self._db = db
                self.schema = self._read_schema(self._db)
            except (peewee.DatabaseError, peewee.InterfaceError):
                self._drop()
                self.schema = "unknown"
            self._stop.wait(CHECK_S)
        self._drop()

    def _read_schema(self, db: peewee.Database) -> str:
        # Raw SQL on this connection: binding the SchemaMigration model here would rebind it
        # for the request threads too.
        (table,) = db.execute_sql(  # type: ignore[no-untyped-call]
            "SELECT to_regclass('schema_migration')").fetchone()
        applied = set() if table is None else {version for (version,) in db.execute_sql(
            "SELECT version FROM schema_migration").fetchall()}  # type: ignore[no-untyped-call]
        return ("newer" if applied - self._known else "pending" if self._known - applied
                else "current")

    def _drop(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(peewee.DatabaseError, peewee.InterfaceError):
                db.close()

    def release(self) -> None:
        """Stop keeping the hold; the thread closes its connection (at once unless it is
        waiting out a migration; the process's end closes it then)."""
        self._stop.set()
        self._thread.join(timeout=CHECK_S)


def hold(settings: Settings, role: str) -> SchemaHold | None:
    """The shared hold for a serving process (`role`: web, scheduler); None on SQLite."""
    if settings.is_sqlite:
        return None
    from appliance.db.migrate import available

    known = frozenset(m.version for m in available())
    return SchemaHold(settings.database_url,
                      f"appliance {role} {settings.node_name} {__version__} schema "
                      f"{max(known, default=0)}", known)


def take_for_change(db: peewee.Database) -> None:
    """Take the lock exclusively for the open transaction (PostgreSQL), or raise SchemaInUse
    naming the processes that hold it shared. While another migration holds it, wait for it,
    asking again every WAIT_S: a serving process that queued for its shared hold meanwhile
    gets it first, and is then named, instead of this migration waiting behind it forever."""
    if not isinstance(db, peewee.PostgresqlDatabase):
        return
    def sql(query: str, params: tuple[int, ...] = ()) -> None:
        db.execute_sql(query, params)  # type: ignore[no-untyped-call]

    while True:
        try:
            with db.atomic():  # a savepoint: a lock_timeout leaves the transaction usable
                sql(f"SET LOCAL lock_timeout = '{WAIT_S}s'")
                sql("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                sql("SET LOCAL lock_timeout = DEFAULT")  # the migrations' own locks may wait
            return
        except peewee.OperationalError:  # lock_not_available
            users = holders(db)
            if users:
                raise SchemaInUse(
                    f"refusing to change the schema: {len(users)} process(es) still use it: "
                    f"{'; '.join(users)}. Stop them (or upgrade their nodes in the same run) "
                    "first."
                ) from None


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
