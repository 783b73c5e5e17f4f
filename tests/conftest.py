"""Shared fixtures: real settings in a temp data dir, real databases, a real gunicorn.

Database-backed fixtures run on SQLite and, when APPLIANCE_TEST_POSTGRES_URL names a server
(`make test` starts one), on PostgreSQL too. In CI a missing PostgreSQL fails the run instead
of skipping it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import peewee
import pytest
from click.testing import CliRunner, Result
from demo_backends import BankBackend, free_port, running_backend
from flask import Flask
from flask.testing import FlaskClient
from playhouse.db_url import connect
from retail_support import RetailBackend

from appliance.brands import policy_of
from appliance.cli import cli
from appliance.config import Settings, load_settings
from appliance.db.migrate import migrate
from appliance.services import Services, build_services
from appliance.web import create_app

REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("APPLIANCE_TEST_POSTGRES_URL", "")
#: Replies in tests are short: the behaviour under test is the pipeline, not prose.
TEST_REPLY_TOKENS = 24
#: The model budget of a turn in tests (seconds): far beyond any reply's time.
NO_TIME_LIMIT_S = 3600.0
EMPTY_CONFIG = REPO / "tests" / "empty-config.toml"


def _reset_postgres(url: str) -> None:
    db = connect(url)
    with db.connection_context():
        db.execute_sql("DROP SCHEMA IF EXISTS public CASCADE")
        db.execute_sql("CREATE SCHEMA public")
    db.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database per test, on each engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'appliance.db'}"
    if not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("APPLIANCE_TEST_POSTGRES_URL is not set; CI must test PostgreSQL")
        pytest.skip("PostgreSQL not configured (set APPLIANCE_TEST_POSTGRES_URL)")
    _reset_postgres(POSTGRES_URL)
    return POSTGRES_URL


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "llm_max_reply_tokens": TEST_REPLY_TOKENS,
        "llm_threads": 2,
        # A reply is never cut short by time in tests: a loaded machine gives the same
        # verdict as a quiet one. Time budgets are tested with servers that hang.
        "llm_timeout_s": NO_TIME_LIMIT_S,
        # Tests write knowledge sources into their own tmp dir and add them in the admin.
        "knowledge_import_dirs": str(tmp_path),
    }
    values.update(overrides)
    return load_settings(overrides=values, env={"APPLIANCE_CONFIG": str(EMPTY_CONFIG)})


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url=database_url)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    """Services on a migrated, empty database (no brands yet)."""
    built = build_services(settings)
    built.db.connect(reuse_if_open=True)
    migrate(built.db)
    yield built
    built.close()


@pytest.fixture
def db(services: Services) -> peewee.Database:
    return services.db


@pytest.fixture
def seeded(services: Services) -> dict[str, Any]:
    """The demo brands, admin login and keys, as `appliance demo seed` makes them (without
    their knowledge, which takes a while to ingest; see tests/knowledge)."""
    from appliance.demo.seed import seed

    return seed(services, knowledge=False)


@pytest.fixture
def app(services: Services) -> Flask:
    return create_app({"TESTING": True}, services=services)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass(frozen=True)
class LiveServer:
    url: str
    data_dir: Path
    credentials: dict[str, Any]
    env: dict[str, str]

    def key(self, slug: str) -> str:
        key: str = self.credentials["keys"][slug]
        return key

    def appliance(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the `appliance` CLI against this server's data dir."""
        return subprocess.run(
            [sys.executable, "-m", "appliance", *args], env=self.env, capture_output=True,
            text=True, timeout=120, check=False,
        )


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory,
                bank_backend: BankBackend) -> Iterator[LiveServer]:
    """`appliance serve` (real gunicorn) on a free loopback port, with the demo seeded and
    Rho-Bank's tools pointed at the session's bank service (`bank_backend`)."""
    data_dir = tmp_path_factory.mktemp("live") / "data"
    with running_server(data_dir, {"APPLIANCE_DEMO_BANK_URL": bank_backend.url,
                                   "APPLIANCE_WEB_WORKERS": "1"}) as server:
        yield server


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False). The timeout
    bounds a process's start-up or background work; no assertion is about speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@contextlib.contextmanager
def running_server(data_dir: Path, settings_env: dict[str, str],
                   *seed_options: str) -> Iterator[LiveServer]:
    """`appliance serve` on a free loopback port over a migrated database with the demo
    seeded (`seed_options` for `appliance demo seed`), the settings in `settings_env` on top
    of the tests' own; its output goes to DATA_DIR/serve.log. Yields once /readyz answers."""
    env = {
        **os.environ,
        "APPLIANCE_DATA_DIR": str(data_dir),
        "APPLIANCE_LLM_MAX_REPLY_TOKENS": str(TEST_REPLY_TOKENS),
        "APPLIANCE_LLM_TIMEOUT_S": str(NO_TIME_LIMIT_S),
        "APPLIANCE_CONFIG": str(EMPTY_CONFIG),
        **settings_env,
    }
    env.pop("APPLIANCE_DATABASE_URL", None)
    run = [sys.executable, "-m", "appliance"]
    subprocess.run([*run, "db", "migrate"], env=env, check=True, capture_output=True)
    seeded = subprocess.run([*run, "demo", "seed", "--json", *seed_options], env=env,
                            check=True, capture_output=True, text=True)
    port = free_port()
    log = (data_dir / "serve.log").open("w")
    proc = subprocess.Popen([*run, "serve", "--bind", f"127.0.0.1:{port}"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    # Ready once the worker has warmed up (models, indexes, classifiers loaded): generous,
    # since a loaded machine is slow to load them, and this bounds a start-up, not a test.
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log_text = (data_dir / "serve.log").read_text()
            raise RuntimeError(f"appliance serve did not start: {log_text}")
        time.sleep(0.2)
    try:
        yield LiveServer(url, data_dir, json.loads(seeded.stdout), env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# --- Lumen Goods' order system (tests/workflows) ---------------------------------------


@pytest.fixture(scope="session")
def retail_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RetailBackend]:
    directory = tmp_path_factory.mktemp("retail")
    with running_backend("retail", directory) as url:
        yield RetailBackend(url)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def bank_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BankBackend]:
    """`appliance demo-backend bank` for the session; tests reset it when they need the seed."""
    directory = tmp_path_factory.mktemp("bank")
    with running_backend("bank", directory) as url:
        yield BankBackend(url)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def lumen(services: Services, seeded: dict[str, Any], retail_backend: RetailBackend) -> Any:
    """Lumen Goods with its demo workflows published and its tools pointed at the backend,
    whose data is fresh."""
    retail_backend.reset()
    brand = services.brands.get("lumen-goods")
    policy = policy_of(brand).model_copy(update={"tools_base_url": retail_backend.url})
    return services.brands.update("lumen-goods", policy=policy, actor="test")


@pytest.fixture
def invoke(settings: Settings) -> Callable[..., Result]:
    """invoke(*args): the `appliance` command on this test's data dir and database, with no
    APPLIANCE_* setting from the machine."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("APPLIANCE_")}
    env |= {"APPLIANCE_CONFIG": str(EMPTY_CONFIG), "APPLIANCE_DATA_DIR": str(settings.data_dir),
            "APPLIANCE_DATABASE_URL": settings.database_url}

    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=env)

    return run
