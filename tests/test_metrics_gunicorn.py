"""Prometheus metrics and JSON logs of the real processes: `appliance serve` with two gunicorn
workers (their counters add up, a restarted worker's counts stay), and `appliance scheduler`
on its own loopback port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from demo_backends import free_port
from metrics_support import sample_value
from server_support import EMPTY_CONFIG, LiveServer, running_server, wait_for

from appliance.jobs import JOBS

TOKEN = "scrape-token-9c41"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: Bounds a start-up or a warm-up on a loaded machine; no assertion depends on it.
START_DEADLINE_S = 300


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Two workers, JSON logs, and /metrics allowed to no loopback address: only the token."""
    data_dir = tmp_path_factory.mktemp("metrics") / "data"
    with running_server(data_dir, {
        "APPLIANCE_WEB_WORKERS": "2", "APPLIANCE_LOG_FORMAT": "json",
        "APPLIANCE_METRICS_ALLOW": "192.0.2.0/24", "APPLIANCE_METRICS_TOKEN": TOKEN,
    }, "--no-knowledge") as server:
        yield server


def scrape(server: LiveServer) -> str:
    response = httpx.get(f"{server.url}/metrics", headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    return response.text


def eventually(predicate: Callable[[], bool]) -> bool:
    return wait_for(predicate, START_DEADLINE_S)


def warm_up_answers(server: LiveServer) -> float:
    """Model answers so far: each worker's warm-up asks the reply model once per brand."""
    return sample_value(scrape(server), "switchboard_model_requests_total", {"result": "ok"})


def worker_pids(server: LiveServer) -> set[int]:
    """The processes that wrote counters into the multiprocess directory."""
    return {int(path.stem.rsplit("_", 1)[1])
            for path in (server.data_dir / "prometheus").glob("counter_*.db")}


def test_the_counters_of_both_workers_add_up(web: LiveServer) -> None:
    brands = len(web.credentials["keys"])
    # Each worker warms up on its own; a scrape that saw one worker's files would stop at
    # `brands` and never reach twice that.
    assert eventually(lambda: warm_up_answers(web) >= 2 * brands), scrape(web)
    assert warm_up_answers(web) == 2 * brands
    assert len(worker_pids(web)) == 2

    headers = {"Authorization": f"Bearer {web.key('lumen-goods')}"}
    conversation = httpx.post(f"{web.url}/v1/conversations", headers=headers, json={},
                              timeout=60).json()["id"]
    for text in ("Hello there", "Thanks, that is all"):
        reply = httpx.post(f"{web.url}/v1/conversations/{conversation}/messages",
                           headers=headers, json={"text": text}, timeout=600)
        assert reply.status_code == 200, reply.text
    exposition = scrape(web)
    assert sample_value(exposition, "switchboard_turns_total", {"brand": "lumen-goods"}) == 2
    for stage in ("signals", "llm", "persist", "total"):
        assert sample_value(exposition, "switchboard_turn_duration_seconds_count",
                            {"brand": "lumen-goods", "stage": stage}) == 2, stage
    assert sample_value(exposition, "switchboard_model_tokens_total", {"kind": "completion"}) > 0


def test_a_restarted_workers_counts_stay_and_its_successor_adds_its_own(
        web: LiveServer) -> None:
    brands = len(web.credentials["keys"])
    assert eventually(lambda: warm_up_answers(web) >= 2 * brands)
    before = warm_up_answers(web)
    gone = min(worker_pids(web))
    os.kill(gone, signal.SIGTERM)  # gunicorn starts another worker, which warms up
    assert eventually(lambda: warm_up_answers(web) >= before + brands), scrape(web)
    assert warm_up_answers(web) == before + brands
    assert gone in worker_pids(web) and len(worker_pids(web)) == 3


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-the-token"}],
                         ids=["no-token-from-an-address-not-allowed", "wrong-token"])
def test_a_refused_scrape_gets_the_one_error_shape_and_nothing_else(
        web: LiveServer, headers: dict[str, str]) -> None:
    response = httpx.get(f"{web.url}/metrics", headers=headers, timeout=30)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {"message": "Not allowed to read the metrics.", "type": "permission_error",
                  "param": None, "code": "metrics_forbidden"},
        "request_id": response.headers["X-Request-ID"]}


def test_log_lines_are_json_with_the_request_brand_and_conversation(web: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {web.key('lumen-goods')}"}
    conversation = httpx.post(f"{web.url}/v1/conversations", headers=headers, json={},
                              timeout=60).json()["id"]
    httpx.get(f"{web.url}/v1/conversations/{conversation}",
              headers={**headers, "X-Request-ID": "req-logs-1"}, timeout=60)
    log = web.data_dir / "serve.log"
    # gunicorn writes the access line once the response has gone out.
    assert eventually(lambda: "req-logs-1" in log.read_text())
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    ours = [line for line in lines if line.get("request_id") == "req-logs-1"]
    assert ours, "the request's access line carries its id"
    assert all(line["brand"] == "lumen-goods" and line["conversation_id"] == conversation
               for line in ours)
    assert {"time", "level", "logger", "message", "process"} <= set(ours[0])
    assert web.key("lumen-goods") not in json.dumps(lines)


def test_the_scheduler_serves_its_job_metrics_on_its_own_loopback_port(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")} | {
        "APPLIANCE_DATA_DIR": str(tmp_path / "data"), "APPLIANCE_CONFIG": str(EMPTY_CONFIG),
        "APPLIANCE_SCHEDULER_METRICS_PORT": str(port)}
    run = [sys.executable, "-m", "appliance"]
    subprocess.run([*run, "db", "migrate"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen([*run, "scheduler"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    at_start = [job.id for job in JOBS.values() if job.at_start]

    def exposition() -> str:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.TransportError:
            return ""

    def every_quick_job_ran() -> bool:
        text = exposition()
        return all(sample_value(text, "switchboard_jobs_runs_total", {"job_id": job}) >= 1
                   for job in at_start)

    try:
        assert eventually(every_quick_job_ran), exposition()
        text = exposition()
        for job in at_start:
            assert sample_value(text, "switchboard_jobs_runs_total",
                                {"job_id": job, "result": "ok"}) >= 1, job
            assert sample_value(text, "switchboard_job_last_success_timestamp_seconds",
                                {"job_id": job}) > 0, job
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
