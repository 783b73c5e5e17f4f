"""Concurrent conversations on the CPU default: throughput, latency per turn kind, the share
of 429/503, and /healthz under load; on one node or on several sharing one PostgreSQL, with
PostgreSQL's work per turn.

Starts `appliance serve` (real gunicorn with its default workers and threads, the tiny model)
on a free loopback port over a fresh data dir with the demo brands, waits until it is warm,
then for each client count runs that many clients for `--seconds`. Each client is a customer of
the public widget: it opens a conversation (a widget token) and sends one message, alternating
between a model answer (small talk, "Hello, how are you today?") and a workflow step ("I'd like
to cancel order #W3657213", which the order workflow answers from its template); `--kinds
workflow` sends only the workflow step: template turns, no model. A 429 or 503 is counted and
honoured as the widget does: the client waits Retry-After, then goes on. A prober reads
/healthz twice a second throughout, both on the app's port (a request thread answers it) and
from the health listener (gunicorn's master, `health_bind`).

With `--database-url` the nodes use a database of the benchmark's own on that PostgreSQL
server (postgres.DATABASE, made afresh for each group of nodes and dropped after; the URL's own
database is only read for statistics). Each `--nodes` value starts that many nodes (node-a,
node-b, ...: a data dir each, one secret key, the demo brands seeded once), and every request
goes to the next node in turn, with no stickiness, as a load balancer would. pg_stat_database
is read before and after each level: transactions, rows written and connections made per
answered turn (the turn's conversation opening included).

With several `--niceness` values, each gets its own server with that `llm_decode_niceness`
(how much lower the model generates than requests are served) and runs every level; several
`--nodes` values run one after the other the same way: the ratio is measured in one run.

    .venv/bin/python scripts/bench/load.py --clients 1 8 32 128 --seconds 60 \\
        --out bench-results/load.json
    .venv/bin/python scripts/bench/load.py --database-url "$(scripts/test-postgres.sh start)" \\
        --nodes 1 2 --kinds workflow --clients 8 32 128 --seconds 60 \\
        --out bench-results/nodes.json
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import postgres
from machine import machine
from stats import pct
from workflows import stop_backend

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "appliance"]
BRAND = "lumen-goods"
MESSAGES = {"model": "Hello, how are you today?",
            "workflow": "I'd like to cancel order #W3657213"}
#: What a client waits, at most, when told to retry (the level's end comes first anyway).
MAX_WAIT_S = 10.0
HEALTH_EVERY_S = 0.5


@dataclass(frozen=True)
class Node:
    """A running `appliance serve`: its URL and its health listener's /healthz."""

    url: str
    health_url: str


@dataclass
class Tally:
    """What the clients of one level saw (appended under a lock)."""

    turn_ms: dict[str, list[float]] = field(default_factory=lambda: {"model": [],
                                                                      "workflow": []})
    #: Turns answered before the level's end (the throughput's); the turns still in flight
    #: then are waited for, and count in turn_ms and in the database's work.
    in_time: Counter[str] = field(default_factory=Counter)
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


def _round_robin(urls: list[str]) -> Callable[[], str]:
    """The node for each next request, in turn: a load balancer without stickiness."""
    count = itertools.count()  # next() on it is atomic: every client thread shares it
    return lambda: urls[next(count) % len(urls)]


def _client(next_node: Callable[[], str], index: int, kinds: list[str], until: float,
            tally: Tally) -> None:
    turn = index  # neighbouring clients start on different kinds
    with httpx.Client(timeout=120) as http:
        while time.monotonic() < until:
            kind = kinds[turn % len(kinds)]
            try:
                opened = http.post(f"{next_node()}/v1/widget/{BRAND}/conversations", json={})
                with tally.lock:
                    tally.statuses[opened.status_code] += 1
                if opened.status_code != 201:
                    time.sleep(_retry_after(opened))
                    continue
                body = opened.json()
                started = time.perf_counter()
                reply = http.post(f"{next_node()}/v1/conversations/{body['id']}/messages",
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
                    if time.monotonic() < until:
                        tally.in_time[answered] += 1
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


def run_level(nodes: list[Node], clients: int, seconds: float,
              kinds: list[str]) -> dict[str, Any]:
    tally = Tally()
    until = time.monotonic() + seconds
    next_node = _round_robin([node.url for node in nodes])
    # Daemons: a Ctrl-C leaves at once, without waiting for the level's end.
    threads = [threading.Thread(target=_client, args=(next_node, i, kinds, until, tally),
                                daemon=True) for i in range(clients)]
    for node in nodes:
        threads += [threading.Thread(target=_prober, daemon=True,
                                     args=("app", f"{node.url}/healthz", until, tally)),
                    threading.Thread(target=_prober, daemon=True,
                                     args=("listener", node.health_url, until, tally))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    requests = sum(tally.statuses.values()) + tally.transport_errors
    return {
        "clients": clients, "seconds": seconds,
        "drained_s": round(time.monotonic() - until, 1), "requests": requests,
        "turns": sum(len(v) for v in tally.turn_ms.values()),
        "turns_per_s": round(sum(tally.in_time.values()) / seconds, 2),
        "turns_per_s_by_kind": {kind: round(tally.in_time[kind] / seconds, 2)
                                for kind in tally.turn_ms},
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


@contextlib.contextmanager
def cluster(count: int, niceness: int, database_url: str | None) -> Iterator[list[Node]]:
    """`count` nodes (node-a, node-b, ...), a data dir each, over one database (the first
    node's SQLite without `database_url`), the demo brands seeded once, through the first.
    Yields once every node is ready; stops every process it started however it is left."""
    shared = {"APPLIANCE_CONFIG": str(REPO / "tests" / "empty-config.toml"),
              "APPLIANCE_LLM_DECODE_NICENESS": str(niceness),
              # A widget token signed by one node is read by the next.
              "APPLIANCE_SECRET_KEY": secrets.token_hex(32)}
    if database_url:
        shared["APPLIANCE_DATABASE_URL"] = database_url
    with contextlib.ExitStack() as stack:
        started = []
        for index in range(count):
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(
                prefix="bench-load-", ignore_cleanup_errors=True)))
            env = {**{k: v for k, v in os.environ.items() if k != "APPLIANCE_DATABASE_URL"},
                   **shared, "APPLIANCE_DATA_DIR": str(data_dir),
                   "APPLIANCE_NODE_NAME": f"node-{chr(ord('a') + index)}",
                   "APPLIANCE_HEALTH_BIND": _free_address()}
            if index == 0:
                subprocess.run([*CLI, "db", "migrate"], env=env, check=True,
                               capture_output=True)
                subprocess.run([*CLI, "demo", "seed", "--no-knowledge"], env=env, check=True,
                               capture_output=True)
            started.append(_start(env, stack))
        yield [_ready(server, node, log) for server, node, log in started]


def _start(env: dict[str, str],
           stack: contextlib.ExitStack) -> tuple[subprocess.Popen[bytes], Node, Path]:
    """`appliance serve` on a free port, stopped when `stack` closes; its output goes to
    serve.log in its data dir."""
    url = f"http://{_free_address()}"
    log = Path(env["APPLIANCE_DATA_DIR"]) / "serve.log"
    output = stack.enter_context(log.open("wb"))
    server = subprocess.Popen([*CLI, "serve", "--bind", url.removeprefix("http://")], env=env,
                              stdout=output, stderr=subprocess.STDOUT)
    stack.callback(stop_backend, server, timeout_s=30)
    return server, Node(url, f"http://{env['APPLIANCE_HEALTH_BIND']}/healthz"), log


def _ready(server: subprocess.Popen[bytes], node: Node, log: Path) -> Node:
    deadline = time.monotonic() + 300
    while server.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{node.url}/readyz", timeout=5).status_code == 200:
                return node
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("appliance serve did not become ready:\n"
                     + log.read_text(errors="replace")[-3000:])


def run_nodes(count: int, niceness: int, database_url: str | None, clients: list[int],
              seconds: float, kinds: list[str]) -> list[dict[str, Any]]:
    """Every level on `count` fresh nodes (on a fresh database of their own with
    `database_url`, whose work per answered turn each level records)."""
    with contextlib.ExitStack() as stack:
        database = stack.enter_context(postgres.fresh_database(database_url)) \
            if database_url else None
        nodes = stack.enter_context(cluster(count, niceness, database.url if database else None))
        levels = []
        for level_clients in clients:
            mark = database.mark() if database else None
            level = {"niceness": niceness, "nodes": count,
                     **run_level(nodes, level_clients, seconds, kinds)}
            if database and mark:
                work = database.work_since(mark)
                level["postgres"] = {"total": work, "per_turn": {
                    name: round(work[name] / level["turns"], 2) if level["turns"] else None
                    for name in postgres.COUNTERS}}
            levels.append(level)
        return levels


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds: every server is stopped on the way out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--niceness", type=int, nargs="+", default=[10],
                        help="llm_decode_niceness values to compare (default: the shipped 10)")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1],
                        help="node counts to compare, each on fresh nodes (more than one "
                        "needs --database-url)")
    parser.add_argument("--database-url",
                        help="a PostgreSQL server (postgresql://USER:PASS@HOST/DB, DB only "
                        f"read for statistics): the nodes share database "
                        f"{postgres.DATABASE} on it, made afresh and dropped after "
                        "(default: one node's own SQLite)")
    parser.add_argument("--kinds", nargs="+", choices=list(MESSAGES), default=list(MESSAGES),
                        help="turn kinds each client sends in turn (workflow alone: template "
                        "turns, no model)")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "load.json")
    args = parser.parse_args()
    if max(args.nodes) > 1 and not args.database_url:
        parser.error("several nodes share one PostgreSQL: give --database-url")
    signal.signal(signal.SIGTERM, _terminated)
    # Other work on the machine skews every number: the load is recorded beside them.
    load_before = os.getloadavg()[0]
    levels = [level for niceness in args.niceness for count in args.nodes
              for level in run_nodes(count, niceness, args.database_url, args.clients,
                                     args.seconds, args.kinds)]
    result = {"machine": machine(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
              "load_average_1m": {"before": round(load_before, 2),
                                  "after": round(os.getloadavg()[0], 2)},
              "database": postgres.server_version(args.database_url) if args.database_url
              else "sqlite", "kinds": args.kinds,
              "seconds_per_level": args.seconds, "levels": levels}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    _print(levels)


def _print(levels: list[dict[str, Any]]) -> None:
    print(f"{'nodes':>5} {'nice':>4} {'clients':>7} {'turns/s':>8} {'wf/s':>6} {'model/s':>7} "
          f"{'model p50/p95/p99 ms':>24} {'workflow p50/p95/p99 ms':>26} {'429':>6} "
          f"{'503':>6} {'healthz app p50/p99/max':>24} {'listener p50/p99/max':>22}")
    for level in levels:
        model, flow = level["turn_ms"]["model"], level["turn_ms"]["workflow"]
        app, listener = level["healthz_ms"]["app"], level["healthz_ms"]["listener"]
        by_kind = level["turns_per_s_by_kind"]
        print(f"{level['nodes']:>5} {level['niceness']:>4} {level['clients']:>7} "
              f"{level['turns_per_s']:>8} {by_kind['workflow']:>6} {by_kind['model']:>7} "
              f"{_triple(model):>24} {_triple(flow):>26} "
              f"{level['share_429']:>6.1%} {level['share_503']:>6.1%} "
              f"{_health(app):>24} {_health(listener):>22}")
    measured = [level for level in levels if "postgres" in level]
    if not measured:
        return
    print(f"\nPostgreSQL per answered turn\n{'nodes':>5} {'nice':>4} {'clients':>7} "
          f"{'turns':>6} {'commits':>8} {'rollbacks':>9} {'inserted':>8} {'updated':>8} "
          f"{'deleted':>8} {'sessions':>8} {'settled':>7}")
    for level in measured:
        per_turn = level["postgres"]["per_turn"]
        print(f"{level['nodes']:>5} {level['niceness']:>4} {level['clients']:>7} "
              f"{level['turns']:>6} {per_turn['xact_commit']!s:>8} "
              f"{per_turn['xact_rollback']!s:>9} {per_turn['tup_inserted']!s:>8} "
              f"{per_turn['tup_updated']!s:>8} {per_turn['tup_deleted']!s:>8} "
              f"{per_turn['sessions']!s:>8} {level['postgres']['total']['settled']!s:>7}")


def _health(values: dict[str, Any]) -> str:
    return f"{values['p50']}/{values['p99']}/{values['max']}"


def _triple(values: dict[str, Any]) -> str:
    return f"{values['p50']}/{values['p95']}/{values['p99']}"


if __name__ == "__main__":
    main()
