"""The demo backends' database: one SQLite file, one table of JSON documents per collection.

A `DocStore` creates the file and seeds it from its packaged data when it does not exist or
holds no seed yet. Every write runs in one `BEGIN IMMEDIATE ... COMMIT` transaction, so a crash
leaves the data as it was, and concurrent writers (several gunicorn workers) queue up instead of
interleaving. A write can carry an idempotency key: its reply is stored in the same
transaction, and the same key sent again returns that reply without acting again. `reset()`
puts the seed back and forgets every key.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from appliance.demo.errors import BackendError, IdempotencyKeyReused

Doc = dict[str, Any]
#: Each seeded collection's rows: (id, JSON text of the document).
SeedRows = Mapping[str, tuple[tuple[str, str], ...]]

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class IdempotentRequest:
    """A write sent with an Idempotency-Key: the key, and the request it stands for."""

    key: str
    method: str
    path: str
    body: Mapping[str, Any]

    @property
    def sha256(self) -> str:
        canonical = json.dumps([self.method, self.path, self.body], sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()


class Tx:
    """The documents as one transaction sees them; subclasses name the lookups a backend needs."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def get(self, collection: str, doc_id: str) -> Doc | None:
        row = self._conn.execute(f"SELECT doc FROM {collection} WHERE id = ?",
                                 (doc_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put(self, collection: str, doc_id: str, doc: Doc) -> None:
        """Insert the document or replace the one stored under `doc_id`."""
        self._conn.execute(f"INSERT OR REPLACE INTO {collection} (id, doc) VALUES (?, ?)",
                           (doc_id, json.dumps(doc)))

    def delete(self, collection: str, doc_id: str) -> None:
        self._conn.execute(f"DELETE FROM {collection} WHERE id = ?", (doc_id,))

    def ids_where(self, collection: str, condition: str, params: tuple[Any, ...]) -> list[str]:
        """Ids of the documents matching an SQL condition over `doc`, in id order."""
        rows = self._conn.execute(
            f"SELECT id FROM {collection} WHERE {condition} ORDER BY id", params)
        return [row[0] for row in rows]

    def docs_where(self, collection: str, condition: str, params: tuple[Any, ...]) -> list[Doc]:
        """The documents matching an SQL condition over `doc`, in id order."""
        rows = self._conn.execute(
            f"SELECT doc FROM {collection} WHERE {condition} ORDER BY id", params)
        return [dict(json.loads(row[0])) for row in rows]


TxT = TypeVar("TxT", bound=Tx)


class DocStore(Generic[TxT]):
    """Documents in the SQLite file at `path`, seeded on first use.

    Subclasses set `COLLECTIONS` (one table each), `tx_class`, and `seed_rows()`; a collection
    without seed rows starts empty. `write` runs an action in one transaction and returns the
    document it returns; a `BackendError` from the action rolls back everything the action did
    and is raised again, and so does any other exception.
    """

    COLLECTIONS: ClassVar[tuple[str, ...]] = ()
    tx_class: type[TxT]

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._create()

    def seed_rows(self) -> SeedRows:
        """The packaged seed, per collection."""
        raise NotImplementedError

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; each write says BEGIN IMMEDIATE itself.
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.create_function("casefold", 1, _casefold, deterministic=True)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[TxT]:
        """A read-only view (no transaction is held open between statements)."""
        with closing(self._connect()) as conn:
            yield self.tx_class(conn)

    def _create(self) -> None:
        with closing(self._connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
        # Schema and seed in one transaction (executescript would commit on its own), so a crash
        # while seeding leaves a file that is seeded again on the next start.
        with self._transaction() as conn:
            for collection in self.COLLECTIONS:
                conn.execute(f"CREATE TABLE IF NOT EXISTS {collection}"
                             " (id TEXT PRIMARY KEY, doc TEXT NOT NULL)")
            for statement in _BOOKKEEPING.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if conn.execute("SELECT 1 FROM meta WHERE key = 'seeded_at'").fetchone() is None:
                self._load_seed(conn)

    def _load_seed(self, conn: sqlite3.Connection) -> None:
        for table in (*self.COLLECTIONS, "idempotency_keys", "meta"):
            conn.execute(f"DELETE FROM {table}")
        for collection, rows in self.seed_rows().items():
            conn.executemany(f"INSERT INTO {collection} (id, doc) VALUES (?, ?)", rows)
        conn.execute("INSERT INTO meta (key, value) VALUES ('seeded_at', ?)", (_now(),))

    def reset(self) -> None:
        """Put back the seed data and forget every idempotency key, in one transaction."""
        with self._transaction() as conn:
            self._load_seed(conn)

    def write(self, action: Callable[[TxT], Doc],
              idempotency: IdempotentRequest | None = None) -> Doc:
        """Run `action` in one transaction and return what it returns.

        With `idempotency`, the reply (the document, or the `BackendError` the action raised) is
        recorded under the key in the same transaction; the same key again returns or raises
        that reply without running anything. The key with a different request raises
        `IdempotencyKeyReused`.
        """
        error: BackendError | None = None
        with self._transaction() as conn:
            if idempotency is not None:
                stored = _stored_reply(conn, idempotency)
                if stored is not None:
                    return _replay(*stored)
            conn.execute("SAVEPOINT action")
            try:
                doc = action(self.tx_class(conn))
                status, body = 200, doc
            except BackendError as exc:
                conn.execute("ROLLBACK TO action")
                error, status, body = exc, exc.status, exc.to_body()
            conn.execute("RELEASE action")
            if idempotency is not None:
                conn.execute(
                    "INSERT INTO idempotency_keys"
                    " (key, method, path, request_sha256, status, body, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (idempotency.key, idempotency.method, idempotency.path, idempotency.sha256,
                     status, json.dumps(body), _now()),
                )
        if error is not None:
            raise error
        return doc


def json_seed_rows(docs: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """Seed rows from documents keyed by id."""
    return tuple((doc_id, json.dumps(doc)) for doc_id, doc in docs.items())


def _stored_reply(conn: sqlite3.Connection,
                  request: IdempotentRequest) -> tuple[int, Doc] | None:
    row = conn.execute("SELECT request_sha256, status, body FROM idempotency_keys WHERE key = ?",
                       (request.key,)).fetchone()
    if row is None:
        return None
    if row[0] != request.sha256:
        raise IdempotencyKeyReused("this Idempotency-Key was already used for another request")
    return int(row[1]), dict(json.loads(row[2]))


def _replay(status: int, body: Doc) -> Doc:
    if status >= 400:
        raise BackendError.from_reply(status, body)
    return body


def _casefold(value: object) -> str | None:
    """SQL `casefold(x)`: case-insensitive matching beyond ASCII (SQLite's lower() is ASCII)."""
    return value.casefold() if isinstance(value, str) else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
