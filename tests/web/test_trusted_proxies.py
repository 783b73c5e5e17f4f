"""Behind trusted reverse proxies each customer is judged by their own address: the sign-in
throttle, /metrics' address check and the audit read X-Forwarded-For from a trusted proxy
only, and only the hops trusted proxies appended."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.db.models import AuditLog
from appliance.services import Services
from appliance.web.proxies import forwarded_client

Login = Callable[[FlaskClient, str, str], TestResponse]
PROXIES = ("127.0.0.1/32", "10.0.0.0/8")
WRONG = "not the password"


@pytest.mark.parametrize(("peer", "forwarded", "client"), [
    # A direct client: its header is not believed.
    ("198.51.100.9", "203.0.113.5", "198.51.100.9"),
    # One proxy in front.
    ("127.0.0.1", "203.0.113.5", "203.0.113.5"),
    # A client that sent its own header through the proxy: only the proxy's hop counts.
    ("127.0.0.1", "203.0.113.66, 203.0.113.5", "203.0.113.5"),
    # Two proxies: the outer one's hop is believed too.
    ("127.0.0.1", "203.0.113.66, 203.0.113.5, 10.1.2.3", "203.0.113.5"),
    # Nothing forwarded: the proxy is the client.
    ("127.0.0.1", "", "127.0.0.1"),
    # Garbage where an address should be stops the walk at the last believed hop.
    ("127.0.0.1", "203.0.113.5, unknown", "127.0.0.1"),
    ("127.0.0.1", "not-an-address, 10.1.2.3", "10.1.2.3"),
    # Every hop a proxy: the leftmost.
    ("127.0.0.1", "10.9.9.9, 10.1.2.3", "10.9.9.9"),
    # An IPv4 peer on a dual-stack listener.
    ("::ffff:127.0.0.1", "203.0.113.5", "203.0.113.5"),
    ("127.0.0.1", " 2001:db8::7 ", "2001:db8::7"),
])
def test_it_names_the_client_the_trusted_hops_forwarded(
        peer: str, forwarded: str, client: str) -> None:
    assert forwarded_client(peer, forwarded, PROXIES) == client


def _through_proxy(client: FlaskClient, forwarded_for: str) -> FlaskClient:
    client.environ_base.update(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forwarded_for)
    return client


def test_the_sign_in_throttle_counts_each_address_behind_the_proxy(
        client_with: Callable[..., FlaskClient], login: Login, seeded: dict[str, Any],
        services: Services) -> None:
    limit = services.settings.login_max_failures_per_address
    attacker = _through_proxy(client_with(trusted_proxies=PROXIES), "203.0.113.5")
    for n in range(limit - 1):
        assert login(attacker, f"guess-{n}", WRONG).status_code == 401
    assert login(attacker, "one-more", WRONG).status_code == 429

    colleague = _through_proxy(client_with(trusted_proxies=PROXIES), "203.0.113.6")
    signed_in = login(colleague, seeded["admin"]["username"], seeded["admin"]["password"])

    assert signed_in.status_code == 302
    addresses = [e.remote_addr for e in AuditLog.select().where(
        AuditLog.action.startswith("admin.login")).order_by(AuditLog.id)]
    assert addresses == ["203.0.113.5"] * limit + ["203.0.113.6"]


def test_without_trusted_proxies_the_header_is_ignored(
        client_with: Callable[..., FlaskClient], login: Login, services: Services) -> None:
    for n in range(services.settings.login_max_failures_per_address):
        # Each request claims another address.
        client = _through_proxy(client_with(), f"203.0.113.{n + 1}")
        answer = login(client, f"guess-{n}", WRONG)
    # One address to the appliance, whatever each request claimed: locked out together.
    assert answer.status_code == 429
    assert {e.remote_addr for e in AuditLog.select()} == {"127.0.0.1"}


def test_metrics_judge_the_forwarded_client_not_the_proxy_on_loopback(
        client_with: Callable[..., FlaskClient]) -> None:
    outsider = _through_proxy(client_with(trusted_proxies=PROXIES), "198.51.100.7")
    on_the_box = _through_proxy(client_with(trusted_proxies=PROXIES), "")
    untrusted = _through_proxy(client_with(), "198.51.100.7")

    refused = outsider.get("/metrics")

    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "metrics_forbidden"
    assert on_the_box.get("/metrics").status_code == 200
    # Without trusted_proxies the loopback peer is the client, as before.
    assert untrusted.get("/metrics").status_code == 200
