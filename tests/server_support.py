"""Settings and a real `appliance serve` for tests: what conftest's fixtures and the tests
that start their own server share (import it from here, not from conftest: every test
directory may have a conftest of its own)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from demo_backends import free_port

from appliance.config import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
#: Replies in tests are short: the behaviour under test is the pipeline, not prose.
TEST_REPLY_TOKENS = 24
#: The model budget of a turn in tests (seconds): far beyond any reply's time.
NO_TIME_LIMIT_S = 3600.0
EMPTY_CONFIG = REPO / "tests" / "empty-config.toml"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "llm_max_reply_tokens": TEST_REPLY_TOKENS,
        "llm_threads": 2,
        # A reply is never cut short by time in tests: a loaded machine gives the same
        # verdict as a quiet one. Time budgets are tested with servers that hang.
        "llm_timeout_s": NO_TIME_LIMIT_S,
        # Tests write knowledge sources into their own tmp dir and add them in the admin.
        "knowledge_import_dirs": str(tmp_path),
    }
    values.update(overrides)
    return load_settings(overrides=values, env={"APPLIANCE_CONFIG": str(EMPTY_CONFIG)})


@dataclass(frozen=True)
class LiveServer:
    url: str
    data_dir: Path
    credentials: dict[str, Any]
    env: dict[str, str]
    #: gunicorn's master's own /healthz (appliance.web.health).
    health_url: str = ""
    #: The `appliance serve` process: gunicorn's master.
    process: subprocess.Popen[bytes] | None = None

    def key(self, slug: str) -> str:
        key: str = self.credentials["keys"][slug]
        return key

    def appliance(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the `appliance` CLI against this server's data dir."""
        return subprocess.run(
            [sys.executable, "-m", "appliance", *args], env=self.env, capture_output=True,
            text=True, timeout=120, check=False,
        )


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False). The timeout
    bounds a process's start-up or background work; no assertion is about speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@contextlib.contextmanager
def running_server(data_dir: Path, settings_env: dict[str, str], *seed_options: str,
                   seed: bool = True) -> Iterator[LiveServer]:
    """`appliance serve` on a free loopback port over a migrated database with the demo
    seeded (`seed_options` for `appliance demo seed`; none with `seed=False`, for a second
    node on a database seeded through the first), the settings in `settings_env` on top of
    the tests' own (the database is the data dir's SQLite unless they name one); its output
    goes to DATA_DIR/serve.log. Yields once /readyz answers."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "APPLIANCE_DATABASE_URL"},
        "APPLIANCE_DATA_DIR": str(data_dir),
        "APPLIANCE_LLM_MAX_REPLY_TOKENS": str(TEST_REPLY_TOKENS),
        "APPLIANCE_LLM_TIMEOUT_S": str(NO_TIME_LIMIT_S),
        "APPLIANCE_CONFIG": str(EMPTY_CONFIG),
        "APPLIANCE_HEALTH_BIND": f"127.0.0.1:{free_port()}",
        **settings_env,
    }
    run = [sys.executable, "-m", "appliance"]
    subprocess.run([*run, "db", "migrate"], env=env, check=True, capture_output=True)
    credentials = json.loads(subprocess.run(
        [*run, "demo", "seed", "--json", *seed_options], env=env, check=True,
        capture_output=True, text=True).stdout) if seed else {}
    port = free_port()
    log = (data_dir / "serve.log").open("w")
    proc = subprocess.Popen([*run, "serve", "--bind", f"127.0.0.1:{port}"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    # Ready once the worker has warmed up (models, indexes, classifiers loaded): generous,
    # since a loaded machine is slow to load them, and this bounds a start-up, not a test.
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            log_text = (data_dir / "serve.log").read_text()
            raise RuntimeError(f"appliance serve did not start: {log_text}")
        time.sleep(0.2)
    try:
        yield LiveServer(url, data_dir, credentials, env,
                         f"http://{env['APPLIANCE_HEALTH_BIND']}/healthz", proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
