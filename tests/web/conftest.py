"""Fixtures for the admin and chat pages: CSRF tokens read from the forms, signed-in clients."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.services import Services

#: The password of users made by `sign_in_as`.
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    """The CSRF token of the first form in `html`, as a browser would send it."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def login(client: FlaskClient, username: str, password: str) -> TestResponse:
    token = csrf_token(client.get("/admin/login").get_data(as_text=True))
    return client.post(
        "/admin/login", data={"csrf_token": token, "username": username, "password": password}
    )


def submit(
    client: FlaskClient, page: str, action: str, data: dict[str, str]
) -> TestResponse:
    """POST `data` to `action` with the CSRF token of the form on `page`, like a browser."""
    response = client.get(page)
    assert response.status_code == 200, response.get_data(as_text=True)
    token = csrf_token(response.get_data(as_text=True))
    return client.post(action, data={"csrf_token": token, **data})


Csrf = Callable[[str], str]
Login = Callable[[FlaskClient, str, str], TestResponse]
Submit = Callable[[FlaskClient, str, str, dict[str, str]], TestResponse]


@pytest.fixture(name="csrf_token")
def csrf_token_fixture() -> Csrf:
    return csrf_token


@pytest.fixture(name="login")
def login_fixture() -> Login:
    return login


@pytest.fixture(name="submit")
def submit_fixture() -> Submit:
    return submit


@pytest.fixture
def admin_client(client: FlaskClient, seeded: dict[str, Any]) -> FlaskClient:
    """The test client, signed in as the demo's it_admin."""
    response = login(client, seeded["admin"]["username"], seeded["admin"]["password"])
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture
def sign_in_as(
    client: FlaskClient, services: Services, seeded: dict[str, Any]
) -> Callable[..., FlaskClient]:
    """sign_in_as(role, brand=None): the client, signed in as a new user with that role."""

    def sign_in(role: str, brand: str | None = None) -> FlaskClient:
        username = f"{role}-{brand or 'all'}"
        scope = services.brands.get(brand) if brand else None
        services.users.create(username, PASSWORD, role, scope, actor="test")
        response = login(client, username, PASSWORD)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return sign_in
