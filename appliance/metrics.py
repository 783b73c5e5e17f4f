"""Prometheus metrics: every metric of the appliance and the one call that records each event.

Names carry the `switchboard_` prefix, base units (seconds) and `_total` on counters. Labels
are small, closed sets (brand slug, workflow, reason, backend: a model id, stage, result,
job_id, tool), never a conversation's or a customer's id.

Under gunicorn the metrics run in prometheus_client's multiprocess mode: `appliance serve`
empties a directory and names it in PROMETHEUS_MULTIPROC_DIR before the workers fork
(`prepare_multiprocess`), each worker writes its values to files there, `/metrics` adds the
files up (`exposition`), and a worker that exits is marked dead (`worker_exited`) so its live
gauges go. prometheus_client reads PROMETHEUS_MULTIPROC_DIR once, when it is first imported,
so this module imports it on first use only; the metrics are built then too.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Turn stages run from a millisecond (signals) to a minute (a slow model on CPU).
_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                  10.0, 30.0, 60.0, 120.0)
#: Model request results (`record_model_request`).
OK, FALLBACK, TIMEOUT, BREAKER_OPEN, MISSING, ERROR = (
    "ok", "fallback", "timeout", "breaker_open", "missing", "error")
#: The model's queue was full, or its wait beyond the budget (appliance/llm/queue.py).
QUEUE_FULL = "queue_full"


@dataclass(frozen=True)
class _Metrics:
    turns: Counter
    turn_duration: Histogram
    handoffs: Counter
    outcomes: Counter
    model_requests: Counter
    model_tokens: Counter
    retrieval: Histogram
    tool_calls: Counter
    tool_duration: Histogram
    webhook_deliveries: Counter
    job_runs: Counter
    job_last_success: Gauge


@functools.cache
def _metrics() -> _Metrics:
    from prometheus_client import Counter, Gauge, Histogram

    return _Metrics(
        turns=Counter("switchboard_turns_total", "Customer turns answered.", ["brand"]),
        turn_duration=Histogram(
            "switchboard_turn_duration_seconds",
            "Time of each stage of a turn, as its trace records it.", ["brand", "stage"],
            buckets=_STAGE_BUCKETS),
        handoffs=Counter("switchboard_handoffs_total", "Conversations handed to a human.",
                         ["brand", "workflow", "reason"]),
        outcomes=Counter("switchboard_outcomes_total", "Outcomes attributed to conversations.",
                         ["brand", "workflow", "outcome"]),
        model_requests=Counter(
            "switchboard_model_requests_total",
            "Model requests by model and result (ok, fallback, timeout, breaker_open, missing, "
            "error).", ["backend", "result"]),
        model_tokens=Counter("switchboard_model_tokens_total",
                             "Tokens read (prompt) and written (completion) by models.",
                             ["backend", "kind"]),
        retrieval=Histogram("switchboard_knowledge_retrieval_seconds",
                            "Time of one knowledge search (index and passages).", ["brand"],
                            buckets=_STAGE_BUCKETS),
        tool_calls=Counter("switchboard_tool_calls_total",
                           "Calls to brands' HTTP tools by result (ok, rejected, failed).",
                           ["tool", "result"]),
        tool_duration=Histogram("switchboard_tool_call_duration_seconds",
                                "Time of one tool call, retries included.", ["tool"],
                                buckets=_STAGE_BUCKETS),
        webhook_deliveries=Counter(
            "switchboard_webhook_deliveries_total",
            "Webhook delivery attempts by result (delivered, retrying, failed).", ["result"]),
        # job_id, not job: Prometheus gives every scraped series a `job` label of its own.
        job_runs=Counter("switchboard_jobs_runs_total", "Background job runs by result.",
                         ["job_id", "result"]),
        job_last_success=Gauge(
            "switchboard_job_last_success_timestamp_seconds",
            "Unix time at which each job last finished without error.", ["job_id"],
            multiprocess_mode="max"),
    )


def record_turn(brand: str, latency_ms: Mapping[str, float]) -> None:
    """One answered turn of `brand` and each stage of its trace's latencies (milliseconds)."""
    metrics = _metrics()
    metrics.turns.labels(brand).inc()
    for stage, ms in latency_ms.items():
        metrics.turn_duration.labels(brand, stage).observe(max(ms, 0.0) / 1000)


def record_handoff(brand: str, workflow: str | None, reason: str) -> None:
    _metrics().handoffs.labels(brand, workflow or "", reason).inc()


def record_outcome(brand: str, workflow: str | None, outcome: str) -> None:
    _metrics().outcomes.labels(brand, workflow or "", outcome).inc()


def record_model_request(backend: str, result: str) -> None:
    """One model of a route tried or passed over: `result` is one of the constants above."""
    _metrics().model_requests.labels(backend, result).inc()


def record_model_tokens(backend: str, prompt_tokens: int, completion_tokens: int) -> None:
    metrics = _metrics()
    metrics.model_tokens.labels(backend, "prompt").inc(prompt_tokens)
    metrics.model_tokens.labels(backend, "completion").inc(completion_tokens)


def time_retrieval(brand: str) -> AbstractContextManager[Any]:
    """A context that observes the time of one knowledge search of `brand`."""
    timer: AbstractContextManager[Any] = _metrics().retrieval.labels(brand).time()
    return timer


def record_tool_call(tool: str, result: str, seconds: float) -> None:
    metrics = _metrics()
    metrics.tool_calls.labels(tool, result).inc()
    metrics.tool_duration.labels(tool).observe(seconds)


def record_webhook_delivery(result: str) -> None:
    _metrics().webhook_deliveries.labels(result).inc()


def record_job_run(job: str, result: str, finished_unix: float) -> None:
    """One run of `job`; an "ok" run also sets the job's last success time."""
    metrics = _metrics()
    metrics.job_runs.labels(job, result).inc()
    if result == "ok":
        metrics.job_last_success.labels(job).set(finished_unix)


def prepare_multiprocess(directory: Path) -> None:
    """Empty `directory` and name it in PROMETHEUS_MULTIPROC_DIR for this process and the
    workers it forks. Call before anything records a metric; files of an earlier run would
    otherwise be added to this one's counts."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess directory "
                           "was set; its metrics would stay in each process")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(directory)


def worker_exited(server: Any, worker: Any) -> None:
    """gunicorn's child_exit hook: drop the live gauges of a worker that exited."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def exposition() -> tuple[bytes, str]:
    """The metrics in the text exposition format, with its content type: every worker's
    values added up under gunicorn, this process's otherwise."""
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        generate_latest,
    )
    from prometheus_client.multiprocess import MultiProcessCollector

    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    _metrics()  # one process: its families are listed before their first event
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def serve_on(host: str, port: int) -> None:
    """Serve this process's metrics over HTTP on host:port from a daemon thread (the
    scheduler process). Raises OSError when the port is taken."""
    from prometheus_client import start_http_server

    _metrics()
    start_http_server(port, addr=host)
