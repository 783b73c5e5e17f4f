"""The processes `make demo` runs: the scheduler process and the demo script itself."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import peewee
from server_support import wait_for

from appliance.db.models import JobRun
from appliance.jobs import JOBS

REPO = Path(__file__).resolve().parent.parent
EMPTY_CONFIG = REPO / "tests" / "empty-config.toml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(data_dir: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    return base | {"APPLIANCE_DATA_DIR": str(data_dir), "APPLIANCE_CONFIG": str(EMPTY_CONFIG)}


def test_it_runs_the_quick_jobs_at_start_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = _env(tmp_path / "data")
    subprocess.run([sys.executable, "-m", "appliance", "db", "migrate"], env=env, check=True,
                   capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "scheduler"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = peewee.SqliteDatabase(str(tmp_path / "data" / "appliance.db"))
    try:
        def all_jobs_ran() -> bool:
            with db.bind_ctx([JobRun]), db.connection_context():
                done = {run.job_id for run in JobRun.select().where(JobRun.status == "ok")}
            return done == {job.id for job in JOBS.values() if job.at_start}

        assert wait_for(all_jobs_ran, 60), "the scheduler did not run every job at start"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_it_runs_the_demo_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    retail_port, bank_port, health_port = free_port(), free_port(), free_port()
    env = _env(tmp_path / "data") | {"APPLIANCE_BIND": f"127.0.0.1:{port}",
                                     "APPLIANCE_HEALTH_BIND": f"127.0.0.1:{health_port}",
                                     "APPLIANCE_DEMO_RETAIL_PORT": str(retail_port),
                                     "APPLIANCE_DEMO_BANK_PORT": str(bank_port)}
    proc = subprocess.Popen(["bash", str(REPO / "scripts" / "demo.sh")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    output: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(output)
        assert f"http://127.0.0.1:{port}/chat/lumen-goods" in text
        assert f"http://127.0.0.1:{port}/admin/" in text
        assert "admin login: admin / " in text
        key = next(line.split(": ", 1)[1].strip() for line in output
                   if line.startswith("API key lumen-goods"))
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/conversations", json={},
                           headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert reply.status_code == 201
        health = httpx.get(f"http://127.0.0.1:{health_port}/healthz", timeout=30)
        assert health.json()["status"] == "ok"
        # Lumen Goods' order system runs beside it, and the brand's tools reach it.
        order = httpx.get(f"http://127.0.0.1:{retail_port}/orders/%23W5442520", timeout=10)
        assert order.json()["status"] == "pending"
        turn = httpx.post(f"http://127.0.0.1:{port}/v1/conversations/{reply.json()['id']}"
                          "/messages", json={"text": "cancel order #W5442520, I'm "
                                                     "olivia.ito5204@example.com"},
                          headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert "Could you tell me why you're cancelling" in turn.json()["message"]["text"]
        # And Rho-Bank's systems.
        bank = httpx.get(f"http://127.0.0.1:{bank_port}/users/6680a37184", timeout=10)
        assert bank.json()["name"] == "Kenji Tanaka"

        # Ctrl-C reaches the whole foreground process group, as in a terminal.
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        # Everything the demo started ran in its session; none of it may outlive Ctrl-C.
        leftover = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True,
                                  text=True, check=False)
        assert leftover.stdout == "", f"processes survived Ctrl-C: {leftover.stdout}"
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            raise AssertionError("the web process still answers after Ctrl-C")
        except httpx.TransportError:
            pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
