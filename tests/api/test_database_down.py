"""A node whose PostgreSQL does not answer (a failover, a cut network): /readyz says not ready,
so the load balancer sends it no traffic, /healthz still says the process lives, and every
other request gets 503 `database_unavailable` in the one error shape, with Retry-After: nothing
is served from what the node may still hold."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from server_support import make_settings
from test_error_shape import assert_error_shape

from appliance.services import build_services
from appliance.web import create_app


@pytest.fixture
def client(tmp_path: Path) -> Iterator[FlaskClient]:
    with socket.socket() as closed:  # a port nothing listens on once the socket is gone
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings = make_settings(tmp_path, database_url=f"postgresql://u:p@127.0.0.1:{port}/gone")
    services = build_services(settings)
    try:
        yield create_app({"TESTING": True}, services=services).test_client()
    finally:
        services.close()


def test_it_is_alive_but_not_ready(client: FlaskClient) -> None:
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["database"] == {"ok": False,
                                                      "detail": "database unreachable"}


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v1/conversations"),
    ("GET", "/v1/conversations/conv_anything"),
    ("POST", "/v1/conversations/conv_anything/messages"),
])
def test_it_serves_nothing_and_says_so(client: FlaskClient, method: str, path: str) -> None:
    response = client.open(path, method=method, json={"text": "hello"},
                           headers={"Authorization": "Bearer sbk_anything"})

    assert_error_shape(response, 503, code="database_unavailable", type_="server_error")
    assert response.headers["Retry-After"] == "5"
    assert "127.0.0.1" not in response.get_data(as_text=True)


def test_the_admin_says_so_on_a_page(client: FlaskClient) -> None:
    response = client.get("/admin/")
    assert response.status_code == 503
    assert response.mimetype == "text/html"
