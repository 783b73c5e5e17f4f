"""gunicorn's master answers /healthz on an address of its own (`health_bind`), from its
workers' heartbeats, apart from the request threads; its port closes with it, since no worker
keeps the master's socket; a bad address stops the start naming the setting."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from demo_backends import free_port
from server_support import EMPTY_CONFIG, running_server

from appliance.web.health import worker_health


@dataclass
class _Tmp:
    beat: float

    def last_update(self) -> float:
        return self.beat


@dataclass
class _Worker:
    tmp: _Tmp


class _Reaped:
    class tmp:
        @staticmethod
        def last_update() -> float:
            raise ValueError("I/O operation on closed file")


def test_a_worker_is_alive_while_its_heartbeat_is_within_the_timeout() -> None:
    def now() -> float:
        return 1000.0

    fresh, late, stuck = _Worker(_Tmp(999.0)), _Worker(_Tmp(880.0)), _Worker(_Tmp(879.0))

    assert worker_health([fresh, late, stuck, _Reaped()], 4, 120, now) == (
        200, {"status": "ok", "workers": {"alive": 2, "configured": 4}})
    assert worker_health([stuck], 2, 120, now) == (
        503, {"status": "down", "workers": {"alive": 0, "configured": 2}})


def test_the_master_answers_for_its_workers_and_its_port_closes_with_it(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with running_server(data_dir, {"APPLIANCE_WEB_WORKERS": "2"}, "--no-knowledge") as live:
        health = httpx.get(live.health_url, timeout=30)
        head = httpx.head(live.health_url, timeout=30)
        elsewhere = httpx.get(live.health_url.replace("/healthz", "/readyz"), timeout=30)

        assert health.status_code == 200
        assert health.json() == {"status": "ok", "workers": {"alive": 2, "configured": 2}}
        assert health.headers["Cache-Control"] == "no-store"
        assert (head.status_code, head.content) == (200, b"")
        assert elsewhere.status_code == 404
        assert elsewhere.json()["error"]["type"] == "not_found_error"

        assert live.process is not None
        workers = _children(live.process.pid)
        try:
            live.process.kill()
            live.process.wait()
            port = int(live.health_url.rsplit(":", 1)[1].split("/")[0])
            # The workers outlive the master for a moment; none holds its listening socket.
            with pytest.raises(ConnectionRefusedError), socket.create_connection(
                    ("127.0.0.1", port), timeout=30):
                pass
        finally:
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_an_address_in_use_stops_the_start_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {**os.environ, "APPLIANCE_DATA_DIR": str(tmp_path / "data"),
               "APPLIANCE_CONFIG": str(EMPTY_CONFIG),
               "APPLIANCE_HEALTH_BIND": f"127.0.0.1:{taken.getsockname()[1]}"}
        env.pop("APPLIANCE_DATABASE_URL", None)
        started = subprocess.run(
            [sys.executable, "-m", "appliance", "serve", "--bind", f"127.0.0.1:{free_port()}"],
            env=env, capture_output=True, text=True, timeout=300, check=False)

    assert started.returncode != 0
    assert "health_bind" in started.stderr
    assert "Traceback" not in started.stderr


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True,
                           check=False)
    return [int(p) for p in found.stdout.split()]
