"""Shared fixtures: real settings in a temp data dir, real databases, a real gunicorn.

Database-backed fixtures run on SQLite and, when APPLIANCE_TEST_POSTGRES_URL names a server
(`make test` starts one), on PostgreSQL too. In CI a missing PostgreSQL fails the run instead
of skipping it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import peewee
import pytest
from click.testing import CliRunner, Result
from demo_backends import BankBackend, running_backend
from flask import Flask
from flask.testing import FlaskClient
from postgres_support import empty_postgres
from retail_support import RetailBackend
from server_support import EMPTY_CONFIG, LiveServer, make_settings, running_server

from appliance.brands import policy_of
from appliance.cli import cli
from appliance.config import Settings
from appliance.db.migrate import migrate
from appliance.services import Services, build_services
from appliance.web import create_app

REPO = Path(__file__).resolve().parent.parent
@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database per test, on each engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'appliance.db'}"
    return empty_postgres()


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


@pytest.fixture
def client_with(services: Services) -> Callable[..., FlaskClient]:
    """client_with(**settings): a test client of an app whose settings differ from the
    fixture's by `settings` (same database)."""

    def make(**settings: Any) -> FlaskClient:
        changed = replace(services, settings=replace(services.settings, **settings))
        return create_app({"TESTING": True}, services=changed).test_client()

    return make


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory,
                bank_backend: BankBackend) -> Iterator[LiveServer]:
    """`appliance serve` (real gunicorn) on a free loopback port, with the demo seeded and
    Rho-Bank's tools pointed at the session's bank service (`bank_backend`)."""
    data_dir = tmp_path_factory.mktemp("live") / "data"
    with running_server(data_dir, {"APPLIANCE_DEMO_BANK_URL": bank_backend.url,
                                   "APPLIANCE_WEB_WORKERS": "1"}) as server:
        yield server


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
