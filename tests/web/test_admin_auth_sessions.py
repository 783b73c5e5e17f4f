"""Admin sessions live in the database: signing out, a password change and disabling a user
end every session of that user; sessions expire when idle and after a fixed time; a
cx_editor or human_agent without a brand signs in to nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.db.models import AdminSession, AdminUser, utcnow
from appliance.errors import InvalidRequest
from appliance.services import Services

Login = Callable[[FlaskClient, str, str], TestResponse]
PASSWORD = "correct horse battery"
DASHBOARD = "/admin/"


def signed_in(response: TestResponse) -> bool:
    """A page answered, not a redirect to the sign-in page."""
    return response.status_code == 200


@pytest.fixture
def ada(services: Services, seeded: dict[str, Any]) -> AdminUser:
    return services.users.create("ada", PASSWORD, "viewer", actor="test")


@pytest.fixture
def browsers(app: Flask, ada: AdminUser, login: Login) -> list[FlaskClient]:
    """Two browsers signed in as ada."""
    clients = [app.test_client(), app.test_client()]
    for client in clients:
        assert login(client, "ada", PASSWORD).status_code == 302
        assert signed_in(client.get(DASHBOARD))
    return clients


def test_it_ends_the_session_on_sign_out_even_for_a_copied_cookie(
    app: Flask, browsers: list[FlaskClient], submit: Callable[..., TestResponse]
) -> None:
    browser = browsers[0]
    cookie = browser.get_cookie("session")
    assert cookie is not None
    replay = app.test_client()
    replay.set_cookie("session", cookie.value)
    assert signed_in(replay.get(DASHBOARD))

    assert submit(browser, DASHBOARD, "/admin/logout", {}).status_code == 302

    response = replay.get(DASHBOARD)
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
    assert signed_in(browsers[1].get(DASHBOARD))  # only that session ended


def test_it_ends_every_session_when_the_password_changes(
    services: Services, browsers: list[FlaskClient]
) -> None:
    services.users.set_password("ada", "another long password", actor="test")

    assert [signed_in(browser.get(DASHBOARD)) for browser in browsers] == [False, False]


def test_it_ends_every_session_when_the_user_is_disabled(
    services: Services, browsers: list[FlaskClient], login: Login, app: Flask
) -> None:
    services.users.set_disabled("ada", True, actor="test")

    assert [signed_in(browser.get(DASHBOARD)) for browser in browsers] == [False, False]
    assert login(app.test_client(), "ada", PASSWORD).status_code == 401


@pytest.mark.parametrize("column", ["seen_at", "created_at"])
def test_it_ends_a_session_idle_too_long_or_signed_in_too_long_ago(
    services: Services, browsers: list[FlaskClient], column: str
) -> None:
    limits = {"seen_at": dt.timedelta(minutes=services.settings.session_idle_minutes),
              "created_at": dt.timedelta(hours=services.settings.session_max_hours)}
    AdminSession.update({column: utcnow() - limits[column] - dt.timedelta(seconds=1)}).execute()

    assert not signed_in(browsers[0].get(DASHBOARD))
    assert AdminSession.select().count() == 1  # the expired session was deleted


def test_it_stores_no_session_token_in_the_clear(browsers: list[FlaskClient]) -> None:
    stored = {row.token_hash for row in AdminSession.select()}

    assert len(stored) == 2
    assert all(len(value) == 64 for value in stored)


@pytest.mark.parametrize("role", ["cx_editor", "human_agent"])
def test_it_refuses_to_create_a_brand_role_without_a_brand(
    services: Services, role: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        services.users.create("cara", PASSWORD, role, actor="test")

    assert refused.value.param == "brand"


def test_it_signs_an_unscoped_human_agent_in_to_nothing_until_given_a_brand(
    services: Services, seeded: dict[str, Any], app: Flask, login: Login
) -> None:
    """An account created before brands were required (the migration leaves it)."""
    AdminUser.create(username="old-agent", role="human_agent", brand=None,
                     password_hash=AdminUser.get(AdminUser.username == "admin").password_hash)
    client = app.test_client()

    refused = login(client, "old-agent", seeded["admin"]["password"])
    assert refused.status_code == 403
    assert 'data-code="brand_required"' in refused.get_data(as_text=True)
    assert not signed_in(client.get(DASHBOARD))

    services.users.set_brand("old-agent", services.brands.get("rho-bank"), actor="test")
    assert login(client, "old-agent", seeded["admin"]["password"]).status_code == 302
    assert signed_in(client.get(DASHBOARD))


def test_it_deletes_sessions_that_expired_unseen_at_the_next_sign_in(
    browsers: list[FlaskClient], app: Flask, login: Login
) -> None:
    AdminSession.update(seen_at=utcnow() - dt.timedelta(days=2)).execute()

    assert login(app.test_client(), "ada", PASSWORD).status_code == 302

    assert AdminSession.select().count() == 1
