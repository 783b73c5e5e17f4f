"""Rate limits per API key, per widget token and per client address, with the brand's own
rates: over one, the one error shape with 429 rate_limited and Retry-After. The buckets live
in the database, so concurrent workers share them exactly."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from appliance.brands import RateLimits, policy_of
from appliance.db.models import Conversation, RateBucket, utcnow
from appliance.errors import RateLimited
from appliance.jobs import run_job
from appliance.ratelimit import Limit, RateLimiter
from appliance.services import Services

Auth = Callable[[str], dict[str, str]]
LUMEN, RHO = "lumen-goods", "rho-bank"


def _brand_rates(services: Services, slug: str, **rates: int) -> None:
    policy = policy_of(services.brands.get(slug))
    services.brands.update(slug, policy=policy.model_copy(
        update={"rate_limits": RateLimits(**rates)}), actor="test")


def _assert_limited(response: Any) -> None:
    assert response.status_code == 429, response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"]["code"] == "rate_limited"
    assert body["error"]["type"] == "rate_limit_error"
    assert body["request_id"]
    assert int(response.headers["Retry-After"]) >= 1


def test_a_key_over_its_brands_rate_is_refused_and_other_brands_are_not(
        client: FlaskClient, services: Services, auth: Auth, seeded: dict[str, Any]) -> None:
    _brand_rates(services, LUMEN, key_per_minute=3)
    answered = [client.post("/v1/conversations", json={}, headers=auth(LUMEN)).status_code
                for _ in range(3)]

    refused = client.post("/v1/conversations", json={}, headers=auth(LUMEN))

    assert answered == [201, 201, 201]
    _assert_limited(refused)
    assert Conversation.select().count() == 3
    assert client.post("/v1/conversations", json={}, headers=auth(RHO)).status_code == 201


def test_a_widget_token_has_its_own_rate(
        client: FlaskClient, services: Services, seeded: dict[str, Any],
        open_widget_conversation: Callable[[str], tuple[str, str]]) -> None:
    _brand_rates(services, LUMEN, token_per_minute=2)
    conversation_id, token = open_widget_conversation(LUMEN)
    other_id, other_token = open_widget_conversation(LUMEN)

    def read(cid: str, tok: str) -> Any:
        return client.get(f"/v1/conversations/{cid}", headers={"Authorization": f"Bearer {tok}"})

    assert [read(conversation_id, token).status_code for _ in range(2)] == [200, 200]
    _assert_limited(read(conversation_id, token))
    assert read(other_id, other_token).status_code == 200


def test_an_address_is_limited_even_without_credentials_but_loopback_is_exempt(
        client: FlaskClient, services: Services, seeded: dict[str, Any]) -> None:
    """The public widget's opening of conversations is limited per address and brand."""
    _brand_rates(services, LUMEN, address_per_minute=2)

    def open_from(address: str, slug: str = LUMEN) -> Any:
        return client.post(f"/v1/widget/{slug}/conversations", json={},
                           environ_base={"REMOTE_ADDR": address})

    assert [open_from("10.0.0.7").status_code for _ in range(2)] == [201, 201]
    _assert_limited(open_from("10.0.0.7"))
    assert open_from("10.0.0.8").status_code == 201
    assert open_from("10.0.0.7", RHO).status_code == 201
    assert [open_from("127.0.0.1").status_code for _ in range(3)] == [201, 201, 201]


def test_customers_behind_a_trusted_proxy_on_loopback_each_have_their_own_bucket(
        client_with: Callable[..., FlaskClient], services: Services,
        seeded: dict[str, Any]) -> None:
    """Behind a proxy on the box every request comes from loopback, exempt by default; with
    the proxy in trusted_proxies each customer is limited by the address it forwards."""
    _brand_rates(services, LUMEN, address_per_minute=2)
    client = client_with(trusted_proxies=("127.0.0.1/32",))

    def open_for(customer: str) -> Any:
        return client.post(f"/v1/widget/{LUMEN}/conversations", json={},
                           headers={"X-Forwarded-For": customer})

    assert [open_for("203.0.113.5").status_code for _ in range(2)] == [201, 201]
    _assert_limited(open_for("203.0.113.5"))
    # A customer who puts another address in front of theirs is still judged by theirs.
    _assert_limited(open_for("203.0.113.99, 203.0.113.5"))
    assert open_for("203.0.113.6").status_code == 201


def test_a_bucket_refills_at_its_rate(services: Services) -> None:
    limiter, limit, start = RateLimiter(services.db), Limit("key:refill", 6), utcnow()
    for _ in range(6):
        limiter.take([limit], start)

    with pytest.raises(RateLimited) as refused:
        limiter.take([limit], start)
    assert refused.value.retry_after_s == 10  # 6 a minute: one every 10 s

    limiter.take([limit], start + dt.timedelta(seconds=10))
    with pytest.raises(RateLimited):
        limiter.take([limit], start + dt.timedelta(seconds=10))


def test_concurrent_takes_spend_each_token_once(services: Services) -> None:
    """Threads with their own database connections, as workers have: the bucket's 30
    tokens go to exactly 30 of the 80 attempts."""
    limiter, limit, now = RateLimiter(services.db), Limit("key:shared", 30), utcnow()
    granted: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        with services.db.connection_context():
            for _ in range(20):
                try:
                    limiter.take([limit], now)
                    ok = True
                except RateLimited:
                    ok = False
                with lock:
                    granted.append(ok)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(granted) == 80
    assert granted.count(True) == 30


def test_the_purge_job_drops_idle_buckets(services: Services) -> None:
    limiter = RateLimiter(services.db)
    limiter.take([Limit("key:idle", 5)], utcnow() - dt.timedelta(hours=2))
    limiter.take([Limit("key:busy", 5)])

    run = run_job(services, "rate_limits.purge")

    assert run.detail == {"deleted": 1}
    assert [b.name for b in RateBucket.select()] == ["key:busy"]
