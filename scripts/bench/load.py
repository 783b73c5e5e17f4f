"""Concurrent conversations on the CPU default: throughput, latency per turn kind, the share
of 429/503, and /healthz under load.

Starts `appliance serve` (real gunicorn with its default workers and threads, the tiny model)
on a free loopback port over a fresh data dir with the demo brands, waits until it is warm,
then for each client count runs that many clients for `--seconds`. Each client is a customer of
the public widget: it opens a conversation (a widget token) and sends one message, alternating
between a model answer (small talk, "Hello, how are you today?") and a workflow step ("I'd like
to cancel order #W3657213", which the order workflow answers from its template). A 429 or 503
is counted and honoured as the widget does: the client waits Retry-After, then goes on. A
prober reads /healthz twice a second throughout, both on the app's port (a request thread
answers it) and from the health listener (gunicorn's master, `health_bind`).

With several `--niceness` values, each gets its own server with that `llm_decode_niceness`
(how much lower the model generates than requests are served) and runs every level: the
ratio between them is measured in one run.

    .venv/bin/python scripts/bench/load.py --clients 1 8 32 128 --seconds 60 \\
        --out bench-results/load.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from machine import machine
from stats import pct

REPO = Path(__file__).resolve().parents[2]
BRAND = "lumen-goods"
MESSAGES = {"model": "Hello, how are you today?",
            "workflow": "I'd like to cancel order #W3657213"}
#: What a client waits, at most, when told to retry (the level's end comes first anyway).
MAX_WAIT_S = 10.0
HEALTH_EVERY_S = 0.5


@dataclass
class Tally:
    """What the clients of one level saw (appended under a lock)."""

    turn_ms: dict[str, list[float]] = field(default_factory=lambda: {"model": [],
                                                                      "workflow": []})
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    #: /healthz times: "app" on the app's port, "listener" from gunicorn's master.
    health_ms: dict[str, list[float]] = field(default_factory=lambda: {"app": [],
                                                                        "listener": []})
    health_failed: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(MAX_WAIT_S, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def _client(url: str, index: int, until: float, tally: Tally) -> None:
    kinds = ("model", "workflow") if index % 2 == 0 else ("workflow", "model")
    turn = 0
    with httpx.Client(base_url=url, timeout=120) as http:
        while time.monotonic() < until:
            kind = kinds[turn % 2]
            try:
                opened = http.post(f"/v1/widget/{BRAND}/conversations", json={})
                with tally.lock:
                    tally.statuses[opened.status_code] += 1
                if opened.status_code != 201:
                    time.sleep(_retry_after(opened))
                    continue
                body = opened.json()
                started = time.perf_counter()
                reply = http.post(f"/v1/conversations/{body['id']}/messages",
                                  json={"text": MESSAGES[kind]},
                                  headers={"Authorization": f"Bearer {body['token']}"})
                elapsed = (time.perf_counter() - started) * 1000
            except httpx.TransportError:
                with tally.lock:
                    tally.transport_errors += 1
                continue
            with tally.lock:
                tally.statuses[reply.status_code] += 1
                if reply.status_code == 200:
                    answered = "workflow" if reply.json()["message"]["model"] == "template" \
                        else "model"
                    tally.turn_ms[answered].append(elapsed)
            if reply.status_code in (429, 503):
                time.sleep(_retry_after(reply))
            turn += 1


def _prober(where: str, url: str, until: float, tally: Tally) -> None:
    with httpx.Client(timeout=30) as http:
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                ok = http.get(url).status_code == 200
            except httpx.TransportError:
                ok = False
            elapsed = (time.perf_counter() - started) * 1000
            with tally.lock:
                if ok:
                    tally.health_ms[where].append(elapsed)
                else:
                    tally.health_failed[where] += 1
            time.sleep(HEALTH_EVERY_S)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None}
    return {"n": len(values), "p50": pct(values, 50, 1), "p95": pct(values, 95, 1),
            "p99": pct(values, 99, 1)}


def run_level(url: str, health_url: str, clients: int, seconds: float) -> dict[str, Any]:
    tally = Tally()
    until = time.monotonic() + seconds
    threads = [threading.Thread(target=_client, args=(url, i, until, tally))
               for i in range(clients)]
    threads += [threading.Thread(target=_prober, args=("app", f"{url}/healthz", until, tally)),
                threading.Thread(target=_prober, args=("listener", health_url, until, tally))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    requests = sum(tally.statuses.values()) + tally.transport_errors
    turns = sum(len(v) for v in tally.turn_ms.values())
    return {
        "clients": clients, "seconds": seconds, "requests": requests,
        "turns_per_s": round(turns / seconds, 2),
        "turn_ms": {kind: _percentiles(values) for kind, values in tally.turn_ms.items()},
        "share_429": round(tally.statuses[429] / requests, 4) if requests else 0.0,
        "share_503": round(tally.statuses[503] / requests, 4) if requests else 0.0,
        "other_statuses": {str(s): n for s, n in tally.statuses.items()
                           if s not in (200, 201, 429, 503)},
        "transport_errors": tally.transport_errors,
        "healthz_ms": {where: {**_percentiles(times),
                               "max": round(max(times), 1) if times else None}
                       for where, times in tally.health_ms.items()},
        "healthz_failed": {where: tally.health_failed[where] for where in tally.health_ms},
    }


def _free_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def serve(data_dir: Path, niceness: int) -> tuple[subprocess.Popen[bytes], str, str]:
    """The server, its URL and its health listener's /healthz URL."""
    health = _free_address()
    env = {**os.environ, "APPLIANCE_DATA_DIR": str(data_dir),
           "APPLIANCE_CONFIG": str(REPO / "tests" / "empty-config.toml"),
           "APPLIANCE_LLM_DECODE_NICENESS": str(niceness), "APPLIANCE_HEALTH_BIND": health}
    env.pop("APPLIANCE_DATABASE_URL", None)
    cli = [sys.executable, "-m", "appliance"]
    subprocess.run([*cli, "db", "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([*cli, "demo", "seed", "--no-knowledge"], env=env, check=True,
                   capture_output=True)
    url = f"http://{_free_address()}"
    server = subprocess.Popen([*cli, "serve", "--bind", url.removeprefix("http://")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return server, url, f"http://{health}/healthz"
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("appliance serve did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--niceness", type=int, nargs="+", default=[10],
                        help="llm_decode_niceness values to compare (default: the shipped 10)")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "load.json")
    args = parser.parse_args()
    # Other work on the machine skews every number: the load is recorded beside them.
    load_before = os.getloadavg()[0]
    levels = []
    for niceness in args.niceness:
        server, url, health_url = serve(Path(tempfile.mkdtemp(prefix="bench-load-")), niceness)
        try:
            levels += [{"niceness": niceness, **run_level(url, health_url, clients, args.seconds)}
                       for clients in args.clients]
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {"machine": machine(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "load_average_1m": {"before": round(load_before, 2),
                                  "after": round(os.getloadavg()[0], 2)},
              "seconds_per_level": args.seconds, "levels": levels}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"{'nice':>4} {'clients':>7} {'turns/s':>8} {'model p50/p95/p99 ms':>24} "
          f"{'workflow p50/p95/p99 ms':>26} {'429':>6} {'503':>6} {'healthz app p50/p99/max':>24} "
          f"{'listener p50/p99/max':>22}")
    for level in levels:
        model, flow = level["turn_ms"]["model"], level["turn_ms"]["workflow"]
        app, listener = level["healthz_ms"]["app"], level["healthz_ms"]["listener"]
        print(f"{level['niceness']:>4} {level['clients']:>7} {level['turns_per_s']:>8} "
              f"{_triple(model):>24} {_triple(flow):>26} "
              f"{level['share_429']:>6.1%} {level['share_503']:>6.1%} "
              f"{_health(app):>24} {_health(listener):>22}")


def _health(values: dict[str, Any]) -> str:
    return f"{values['p50']}/{values['p99']}/{values['max']}"


def _triple(values: dict[str, Any]) -> str:
    return f"{values['p50']}/{values['p95']}/{values['p99']}"


if __name__ == "__main__":
    main()
