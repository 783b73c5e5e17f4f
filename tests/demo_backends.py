"""The demo brands' systems (`appliance demo-backend retail|bank`) as tests run them: a real
gunicorn on a free port, and small clients over real HTTP."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest


class DemoBackend:
    """One running demo backend; `reset()` restores its seed."""

    def __init__(self, url: str) -> None:
        self.url = url

    def reset(self) -> None:
        httpx.post(f"{self.url}/reset", timeout=30).raise_for_status()

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any = None, **headers: str) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, headers=headers, timeout=10)


class BankBackend(DemoBackend):
    """`appliance demo-backend bank` on a free port."""

    def sent_code(self, user_id: str) -> str:
        """The one-time code the customer's phone would show (the demo-only endpoint)."""
        return str(self.get(f"/demo/otp/{user_id}")["code"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_backend(kind: str, directory: Path) -> Iterator[str]:
    """`appliance demo-backend KIND` on a free port with its database in `directory`, until
    the block ends; yields its URL once /health answers."""
    port = free_port()
    log_path = directory / "backend.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "appliance", "demo-backend", kind, "--port", str(port),
             "--db", str(directory / f"{kind}.db")], stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the {kind} backend did not start: {log_path.read_text()}")
            time.sleep(0.2)
        try:
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def fresh_copy(seeded: Path, directory: Path) -> Path:
    """A copy of a seeded database file in `directory` (copying is faster than seeding)."""
    path = directory / seeded.name
    with sqlite3.connect(seeded) as source, sqlite3.connect(path) as target:
        source.backup(target)
    return path


def assert_error(response: Any, status: int, code: str) -> None:
    """A Flask test response in the demo backends' one error shape."""
    assert response.status_code == status, response.json
    assert set(response.json) == {"error"}
    assert response.json["error"]["code"] == code
    assert isinstance(response.json["error"]["message"], str)
    assert response.json["error"]["message"]
