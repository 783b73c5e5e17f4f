"""The PostgreSQL database a test may use: one per pytest-xdist worker, emptied before each use.

`make test` starts one server and names a database in APPLIANCE_TEST_POSTGRES_URL. Tests run in
parallel workers, so each worker gets a database of its own (`appliance_test_gw0`, ...) on that
server, created on first use: two workers never drop each other's tables.
"""

from __future__ import annotations

import functools
import os

import psycopg2
import pytest
from playhouse.db_url import connect
from psycopg2 import sql
from psycopg2.extensions import parse_dsn

BASE_URL = os.environ.get("APPLIANCE_TEST_POSTGRES_URL", "")


@functools.cache
def _worker_url() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker:
        return BASE_URL
    params = parse_dsn(BASE_URL)
    name = f"{params['dbname']}_{worker}"
    conn = psycopg2.connect(BASE_URL)
    conn.autocommit = True  # CREATE DATABASE runs outside a transaction
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()
    user, password = params.get("user", ""), params.get("password", "")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = params.get("host", "127.0.0.1")
    port = params.get("port", "5432")
    return f"postgresql://{auth}{host}:{port}/{name}"


def empty_postgres() -> str:
    """This worker's database with an empty public schema; skips (or fails in CI) without one."""
    if not BASE_URL:
        if os.environ.get("CI"):
            pytest.fail("APPLIANCE_TEST_POSTGRES_URL is not set; CI must test PostgreSQL")
        pytest.skip("PostgreSQL not configured (set APPLIANCE_TEST_POSTGRES_URL)")
    url = _worker_url()
    db = connect(url)
    with db.connection_context():
        db.execute_sql("DROP SCHEMA IF EXISTS public CASCADE")
        db.execute_sql("CREATE SCHEMA public")
    db.close()
    return url
