"""A web worker warms up before it is ready: /readyz says 503 until the models, indexes and
classifiers have loaded and run once, and customers' turns wait for that."""

from __future__ import annotations

import threading
from typing import Any

import httpx
from flask.testing import FlaskClient

from appliance.readiness import FAILED, LAZY, WARM, WarmUp
from appliance.services import Services


def test_a_process_that_never_warms_up_is_ready_at_once(client: FlaskClient) -> None:
    body = client.get("/readyz").get_json()

    assert body["status"] == "ready"
    assert body["checks"]["warm_up"] == {"ok": True, "detail": LAZY, "seconds": None}


def test_it_is_not_ready_while_warming_up(client: FlaskClient, services: Services) -> None:
    release = threading.Event()
    services.warm.start(release.wait)
    try:
        warming = client.get("/readyz")
    finally:
        release.set()
    assert services.warm.wait(timeout=60)
    ready = client.get("/readyz")

    assert warming.status_code == 503
    assert warming.get_json()["checks"]["warm_up"]["detail"] == "warming"
    assert "reply_model" not in warming.get_json()["checks"]
    assert ready.status_code == 200
    assert ready.get_json()["checks"]["warm_up"]["detail"] == WARM


def test_a_failed_warm_up_leaves_the_parts_to_load_on_first_use() -> None:
    warm = WarmUp()

    def broken() -> None:
        raise RuntimeError("index file unreadable")

    warm.start(broken)

    assert warm.wait(timeout=60)
    assert (warm.ready, warm.state) == (True, FAILED)


def test_the_served_worker_warms_up_before_it_is_ready(live_server: Any) -> None:
    body = httpx.get(f"{live_server.url}/readyz", timeout=30).json()

    assert body["status"] == "ready"
    assert body["checks"]["warm_up"]["detail"] == WARM
    assert body["checks"]["reply_model"]["ok"] is True
    assert body["checks"]["reply_model"]["detail"] == "loaded"
