"""Lumen Goods' order database: one SQLite file, one JSON document per user, order and product.

The file is created and seeded from the packaged τ-bench data (`data/`) when it does not exist
or holds no seed yet. Every write runs in one `BEGIN IMMEDIATE ... COMMIT` transaction, so a
crash leaves the data as it was, and concurrent writers (several gunicorn workers) queue up
instead of interleaving. A write can carry an idempotency key: its reply is stored in the same
transaction, and the same key sent again returns that reply without acting again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from appliance.demo.retail.errors import IdempotencyKeyReused, NotFound, RetailError

Doc = dict[str, Any]
Action = Callable[["Tx"], Doc]

SEED_DIR = Path(__file__).resolve().parent / "data"
DOC_TABLES = ("users", "orders", "products")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS products (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
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


def normalize_order_id(order_id: str) -> str:
    """Order ids are stored as '#W0000000'; callers may leave out the '#'."""
    order_id = order_id.strip()
    return order_id if order_id.startswith("#") else f"#{order_id}"


@cache
def _seed_rows(table: str) -> tuple[tuple[str, str], ...]:
    docs: dict[str, Any] = json.loads((SEED_DIR / f"{table}.json").read_text(encoding="utf-8"))
    return tuple((doc_id, json.dumps(doc)) for doc_id, doc in docs.items())


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
    """The documents as one transaction sees them. Lookups raise `NotFound`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def _get(self, table: str, doc_id: str) -> Doc | None:
        row = self._conn.execute(f"SELECT doc FROM {table} WHERE id = ?", (doc_id,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def _put(self, table: str, doc_id: str, doc: Doc) -> None:
        self._conn.execute(f"UPDATE {table} SET doc = ? WHERE id = ?", (json.dumps(doc), doc_id))

    def order(self, order_id: str) -> Doc:
        doc = self._get("orders", normalize_order_id(order_id))
        if doc is None:
            raise NotFound(f"order {normalize_order_id(order_id)} not found",
                           code="order_not_found")
        return doc

    def user(self, user_id: str) -> Doc:
        """The user's document as stored (without `user_id`: it is the key)."""
        doc = self._get("users", user_id)
        if doc is None:
            raise NotFound(f"user {user_id} not found", code="user_not_found")
        return doc

    def product(self, product_id: str) -> Doc:
        doc = self._get("products", product_id)
        if doc is None:
            raise NotFound(f"product {product_id} not found", code="product_not_found")
        return doc

    def save_order(self, order: Doc) -> None:
        self._put("orders", order["order_id"], order)

    def save_user(self, user_id: str, user: Doc) -> None:
        self._put("users", user_id, user)

    def user_ids_where(self, condition: str, params: tuple[str, ...]) -> list[str]:
        rows = self._conn.execute(f"SELECT id FROM users WHERE {condition} ORDER BY id", params)
        return [row[0] for row in rows]


class RetailStore:
    """The retail database in the SQLite file at `path`, seeded on first use.

    Reads return plain JSON-able dicts and raise `NotFound`. `write` runs an action (see
    `appliance.demo.retail.operations`) in one transaction and returns the document it returns;
    a `RetailError` from the action rolls back everything the action did and is raised again.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._create()

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
    def _reading(self) -> Iterator[Tx]:
        with closing(self._connect()) as conn:
            yield Tx(conn)

    def _create(self) -> None:
        with closing(self._connect()) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
        # Schema and seed in one transaction (executescript would commit on its own), so a crash
        # while seeding leaves a file that is seeded again on the next start.
        with self._transaction() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if conn.execute("SELECT 1 FROM meta WHERE key = 'seeded_at'").fetchone() is None:
                self._load_seed(conn)

    def _load_seed(self, conn: sqlite3.Connection) -> None:
        for table in (*DOC_TABLES, "idempotency_keys", "meta"):
            conn.execute(f"DELETE FROM {table}")
        for table in DOC_TABLES:
            conn.executemany(f"INSERT INTO {table} (id, doc) VALUES (?, ?)", _seed_rows(table))
        conn.execute("INSERT INTO meta (key, value) VALUES ('seeded_at', ?)", (_now(),))

    def reset(self) -> None:
        """Put back the seed data and forget every idempotency key, in one transaction."""
        with self._transaction() as conn:
            self._load_seed(conn)

    # Reads

    def user_id_by_email(self, email: str) -> str:
        with self._reading() as tx:
            found = tx.user_ids_where("casefold(json_extract(doc, '$.email')) = ?",
                                      (email.strip().casefold(),))
        if not found:
            raise NotFound("no user with this email", code="user_not_found")
        return found[0]

    def user_id_by_name_zip(self, first_name: str, last_name: str, zip_code: str) -> str:
        with self._reading() as tx:
            found = tx.user_ids_where(
                "casefold(json_extract(doc, '$.name.first_name')) = ?"
                " AND casefold(json_extract(doc, '$.name.last_name')) = ?"
                " AND json_extract(doc, '$.address.zip') = ?",
                (first_name.strip().casefold(), last_name.strip().casefold(), zip_code.strip()),
            )
        if not found:
            raise NotFound("no user with this name and zip code", code="user_not_found")
        return found[0]

    def user(self, user_id: str) -> Doc:
        """The user's document with `user_id` added."""
        with self._reading() as tx:
            return user_view(user_id, tx.user(user_id))

    def order(self, order_id: str) -> Doc:
        with self._reading() as tx:
            return tx.order(order_id)

    def product(self, product_id: str) -> Doc:
        with self._reading() as tx:
            return tx.product(product_id)

    def products(self) -> list[Doc]:
        """Every product's name and id, by name."""
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT json_extract(doc, '$.name'), id FROM products ORDER BY 1, 2").fetchall()
        return [{"name": name, "product_id": product_id} for name, product_id in rows]

    # Writes

    def write(self, action: Action, idempotency: IdempotentRequest | None = None) -> Doc:
        """Run `action` in one transaction and return what it returns.

        With `idempotency`, the reply (the document, or the `RetailError` the action raised) is
        recorded under the key in the same transaction; the same key again returns or raises
        that reply without running anything. The key with a different request raises
        `IdempotencyKeyReused`.
        """
        error: RetailError | None = None
        with self._transaction() as conn:
            if idempotency is not None:
                stored = _stored_reply(conn, idempotency)
                if stored is not None:
                    return _replay(*stored)
            conn.execute("SAVEPOINT action")
            try:
                doc = action(Tx(conn))
                status, body = 200, doc
            except RetailError as exc:
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


def user_view(user_id: str, user: Doc) -> Doc:
    """A user's document as the API shows it: with its id."""
    return {"user_id": user_id, **user}


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
        raise RetailError.from_reply(status, body)
    return body


def _casefold(value: object) -> str | None:
    """SQL `casefold(x)`: case-insensitive matching beyond ASCII (SQLite's lower() is ASCII)."""
    return value.casefold() if isinstance(value, str) else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
