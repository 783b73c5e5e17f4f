"""Security headers on every response, and /-/versions only for an it_admin or the metrics
token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from appliance import __version__
from appliance.db.migrate import available
from appliance.services import Services
from appliance.web.meta import _PACKAGES

#: A page, a form, an API error, a probe, the chat page and a static file: every kind of answer.
PATHS = ("/admin/login", "/admin/", "/v1/conversations", "/healthz", "/chat/lumen-goods",
         "/chat/static/widget.js", "/no-such-page")


@pytest.mark.parametrize("path", PATHS)
def test_it_sends_the_security_headers_on_every_response(
    client: FlaskClient, seeded: dict[str, Any], path: str
) -> None:
    response = client.get(path)

    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self';" in csp
    assert "'unsafe-inline'" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Strict-Transport-Security" not in response.headers


def test_it_sends_hsts_and_a_secure_cookie_when_tls_terminates_in_front(
    client_with: Callable[..., FlaskClient], seeded: dict[str, Any], login: Callable[..., Any]
) -> None:
    client = client_with(tls_in_front=True)

    response = login(client, seeded["admin"]["username"], seeded["admin"]["password"])

    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_it_refuses_versions_to_an_anonymous_caller(client: FlaskClient) -> None:
    response = client.get("/-/versions")

    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "login_required"


def test_it_refuses_versions_to_a_role_below_it_admin(
    sign_in_as: Callable[..., FlaskClient],
) -> None:
    client = sign_in_as("viewer")

    assert client.get("/-/versions").status_code == 401


def test_it_reports_versions_to_an_it_admin(
    admin_client: FlaskClient, services: Services
) -> None:
    response = admin_client.get("/-/versions")

    assert response.status_code == 200
    body = response.get_json()
    assert body["appliance"] == __version__
    assert set(body["packages"]) == set(_PACKAGES)
    assert body["database"] == {
        "engine": "sqlite" if services.settings.is_sqlite else "postgresql",
        "schema_version": max(m.version for m in available()),
    }
    assert body["model_profile"] == "cpu"
    assert body["models"]["smollm2-135m-instruct"] == {"role": "small", "backend": "llamacpp"}


def test_it_reports_versions_to_the_metrics_token(
    client_with: Callable[..., FlaskClient],
) -> None:
    token = "a-monitoring-token"
    client = client_with(metrics_token=token)

    assert client.get("/-/versions", headers={"Authorization": f"Bearer {token}"}
                      ).status_code == 200
    assert client.get("/-/versions", headers={"Authorization": "Bearer wrong"}
                      ).status_code == 401
