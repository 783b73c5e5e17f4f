"""The users pages for an it_admin: disable and enable, a new password, a brand, and lifting
sign-in lock-outs; each ends the user's sessions where it says so."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.db.models import AdminUser
from appliance.services import Services

Login = Callable[[FlaskClient, str, str], TestResponse]
Submit = Callable[..., TestResponse]
PASSWORD = "correct horse battery"
VIC = "/admin/users/vic"


@pytest.fixture
def vic(app: Flask, services: Services, seeded: dict[str, Any], login: Login) -> FlaskClient:
    """A viewer, signed in in their own browser."""
    services.users.create("vic", PASSWORD, "viewer", actor="test")
    browser = app.test_client()
    assert login(browser, "vic", PASSWORD).status_code == 302
    return browser


def test_it_disables_a_user_from_their_page_and_ends_their_session(
    admin_client: FlaskClient, vic: FlaskClient, submit: Submit, services: Services
) -> None:
    response = submit(admin_client, VIC, f"{VIC}/state", {"disabled": "1"})

    assert response.status_code == 302
    assert services.users.named("vic").disabled
    assert vic.get("/admin/").status_code == 302
    submit(admin_client, VIC, f"{VIC}/state", {"disabled": "0"})
    assert not services.users.named("vic").disabled


def test_it_sets_a_password_from_the_users_page(
    admin_client: FlaskClient, vic: FlaskClient, submit: Submit, services: Services
) -> None:
    short = submit(admin_client, VIC, f"{VIC}/password", {"password": "short"})
    assert short.status_code == 400
    assert "at least 10 characters" in short.get_data(as_text=True)

    submit(admin_client, VIC, f"{VIC}/password", {"password": "a brand new password"})

    assert services.users.authenticate("vic", "a brand new password") is not None
    assert vic.get("/admin/").status_code == 302


def test_it_gives_an_unscoped_agent_a_brand_from_the_users_page(
    admin_client: FlaskClient, submit: Submit, services: Services
) -> None:
    AdminUser.create(username="ana", role="human_agent", password_hash="x")
    listing = admin_client.get("/admin/users").get_data(as_text=True)
    assert "none: signs in to nothing" in listing

    refused = submit(admin_client, "/admin/users/ana", "/admin/users/ana/brand", {"brand": ""})
    assert refused.status_code == 400
    submit(admin_client, "/admin/users/ana", "/admin/users/ana/brand", {"brand": "rho-bank"})

    assert services.users.named("ana").brand.slug == "rho-bank"


def test_it_refuses_to_disable_the_signed_in_admin(
    admin_client: FlaskClient, submit: Submit, seeded: dict[str, Any]
) -> None:
    me = f"/admin/users/{seeded['admin']['username']}"

    response = submit(admin_client, me, f"{me}/state", {"disabled": "1"})

    assert response.status_code == 400
    assert "your own account" in response.get_data(as_text=True)


def test_it_lists_and_lifts_a_lock_out_on_the_users_page(
    admin_client: FlaskClient, submit: Submit, services: Services
) -> None:
    for _ in range(services.settings.login_max_failures):
        services.login_throttle.failed("vic", "10.0.0.7")
    assert "<code>vic</code>" in admin_client.get("/admin/users").get_data(as_text=True)

    response = submit(admin_client, "/admin/users", "/admin/users/lockouts",
                      {"kind": "username", "subject": "vic"})

    assert response.status_code == 302
    assert services.login_throttle.lockouts() == []


@pytest.mark.parametrize("action", ["/state", "/password", "/brand"])
def test_it_keeps_the_user_actions_from_other_roles(
    sign_in_as: Callable[..., FlaskClient], services: Services, csrf_token: Callable[..., str],
    action: str,
) -> None:
    services.users.create("vic", PASSWORD, "viewer", actor="test")
    editor = sign_in_as("cx_editor", "lumen-goods")
    token = csrf_token(editor.get("/admin/").get_data(as_text=True))

    response = editor.post(f"{VIC}{action}", data={"csrf_token": token, "disabled": "1"})

    assert response.status_code == 403
    assert not services.users.named("vic").disabled
