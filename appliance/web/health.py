"""The health listener: `GET /healthz` answered by gunicorn's master process on an address of
its own (`health_bind`), for load balancers and monitors.

`/healthz` on the app's own port is served by a worker's request thread like any request, so
under load a probe waits in line behind customers' turns (1.1 s at the 99th percentile with
128 clients on two cores, docs/benchmarks.md) and a monitor would take a busy box for a dead
one. The master process holds no request threads and runs no model: it answers at once, from
what it knows of its workers. A worker is alive while its heartbeat is fresher than gunicorn's
worker timeout (the heartbeat a stuck worker stops sending, and for which the master kills
it), so the answer is 200 while at least one worker can serve and 503 when none can.

The listener is made before gunicorn starts (a bad address fails the start, naming the
setting), serves on a thread of the master from `when_ready`, is closed in every worker right
after the fork (a worker must not keep the master's socket open after the master dies), and
stops with the master.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from appliance.errors import ConfigError, NotFound

PATH = "/healthz"


class Worker(Protocol):
    """What the listener reads of a gunicorn worker, as the master sees it."""

    class _Tmp(Protocol):
        def last_update(self) -> float: ...

    tmp: _Tmp


def worker_health(workers: Iterable[Worker], configured: int, timeout_s: float,
                  now: Callable[[], float] = time.monotonic) -> tuple[int, dict[str, Any]]:
    """The status and body of /healthz for the master's `workers` (gunicorn's heartbeats are
    monotonic-clock times)."""
    alive = 0
    for worker in workers:
        try:
            alive += now() - worker.tmp.last_update() <= timeout_s
        except (OSError, ValueError):  # a worker being reaped: its heartbeat file is closed
            continue
    body = {"status": "ok" if alive else "down",
            "workers": {"alive": alive, "configured": configured}}
    return (200 if alive else 503), body


class HealthListener:
    """An HTTP listener on `bind` (HOST:PORT), bound when made; from `start(health)` its
    /healthz answers what `health` returns."""

    def __init__(self, bind: str) -> None:
        host, _, port = bind.rpartition(":")
        self._health: Callable[[], tuple[int, dict[str, Any]]] | None = None
        try:
            self._server = ThreadingHTTPServer((host.strip("[]"), int(port)),
                                               _handler(lambda: self._answer()))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"setting 'health_bind': cannot listen on {bind!r}: {exc}",
                              param="health_bind") from exc
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    def _answer(self) -> tuple[int, dict[str, Any]]:
        return self._health() if self._health is not None else (503, {"status": "starting"})

    def start(self, health: Callable[[], tuple[int, dict[str, Any]]]) -> None:
        self._health = health
        if self._thread is not None:  # the master is ready again (a reload): one server
            return
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="health-listener", daemon=True)
        self._thread.start()

    def close_inherited(self) -> None:
        """In a forked worker: close the master's socket, without touching its thread."""
        self._server.socket.close()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()


def _handler(health: Callable[[], tuple[int, dict[str, Any]]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "appliance-health"
        sys_version = ""

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] == PATH:
                status, body = health()
            else:
                status, body = 404, NotFound("Only /healthz is served here.").to_body()
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            """Probes come every few seconds: they would drown the access log."""

    return Handler
