"""Event streams are capped per worker and per caller, so that they never take every request
thread: on a real gunicorn, with its streams at the cap, one more gets 503 overloaded (429
rate_limited for a caller at its own cap), and /healthz still answers."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from server_support import LiveServer, running_server, wait_for

#: Bounds on waiting for the server to take the streams; no assertion depends on them.
PROCESS_WAIT_S = 30.0
#: The longest a stream may wait for a message: the held streams outlast the test's probes.
HOLD = "wait=30"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("streams") / "data"
    data_dir.mkdir()
    with running_server(data_dir, {
            "APPLIANCE_WEB_WORKERS": "1", "APPLIANCE_WEB_THREADS": "4",
            "APPLIANCE_EVENTS_STREAMS_MAX": "2", "APPLIANCE_EVENTS_STREAMS_PER_CALLER": "1",
            # The probes below poll; the token rate is not what is tested here.
            "APPLIANCE_RATE_LIMIT_TOKEN_PER_MINUTE": "0"}, "--no-knowledge") as live:
        yield live


def _widget(server: LiveServer) -> tuple[str, dict[str, str]]:
    opened = httpx.post(f"{server.url}/v1/widget/lumen-goods/conversations", json={})
    assert opened.status_code == 201, opened.text
    body = opened.json()
    # After the greeting: the stream then waits for a message that does not come.
    return (f"{server.url}/v1/conversations/{body['id']}/events?after={body['greeting']['id']}",
            {"Authorization": f"Bearer {body['token']}"})


def _hold(url: str, headers: dict[str, str]) -> threading.Thread:
    """Hold a stream open, asking again while it is refused: the server counts a stream until
    it has closed the response, a moment after its client saw the end, so the streams of a
    previous test or probe may still count when this one asks."""
    def stream() -> None:
        deadline = time.monotonic() + PROCESS_WAIT_S
        with contextlib.suppress(httpx.HTTPError):
            while (httpx.get(f"{url}&{HOLD}", headers=headers, timeout=60).status_code
                   in (429, 503) and time.monotonic() < deadline):
                time.sleep(0.1)

    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    return thread


def _probe(url: str, headers: dict[str, str]) -> int:
    """A stream that ends at once if admitted (wait=0): its status."""
    return httpx.get(f"{url}&wait=0", headers=headers, timeout=30).status_code


def test_streams_over_the_cap_are_refused_and_health_still_answers(
        server: LiveServer) -> None:
    first, second, third = (_widget(server) for _ in range(3))
    held = [_hold(*first), _hold(*second)]

    assert wait_for(lambda: _probe(*third) == 503, PROCESS_WAIT_S)
    refused = httpx.get(f"{third[0]}&wait=0", headers=third[1], timeout=30)
    health = httpx.get(f"{server.url}/healthz", timeout=30)

    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "overloaded"
    assert int(refused.headers["Retry-After"]) >= 1
    assert health.status_code == 200
    for thread in held:
        thread.join(60)


def test_a_caller_at_its_own_cap_is_rate_limited(server: LiveServer) -> None:
    mine, other = _widget(server), _widget(server)
    held = _hold(*mine)

    assert wait_for(lambda: _probe(*mine) == 429, PROCESS_WAIT_S)
    refused = httpx.get(f"{mine[0]}&wait=0", headers=mine[1], timeout=30)

    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert _probe(*other) == 200
    held.join(60)
