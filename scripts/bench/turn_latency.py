"""Turn latency through the HTTP API, and CPU decode speed against the memory-bandwidth bound.

Starts `appliance serve` (real gunicorn, one worker) on a free loopback port with a fresh data
dir and the demo brands, waits until it is ready (warmed up), sends N customer turns to one demo
brand, and reports the first turn's time beside the others' (a customer's first message must be
no slower than the tenth), and p50/p95 of:
- the whole turn as the client sees it,
- the LLM call (from each turn's trace),
- everything else in the server (signals, prompt, persistence: trace total minus LLM),
- HTTP + framework cost (client time minus the server's total).
Then loads the same model in-process and measures decode tokens/s against the bound set by
memory bandwidth (a large array copy measured in the same run): decoding reads every weight
once per token, so bandwidth / model bytes is the most tokens/s the machine allows.

    .venv/bin/python scripts/bench/turn_latency.py --turns 30 --out bench-results/turn_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from stats import summary

REPO = Path(__file__).resolve().parents[2]
QUESTIONS = (
    "Hi, can you help me with an order I placed last week?",
    "How long does shipping usually take?",
    "I want to change the address on my order.",
    "Do you sell lamps?",
    "What is your return policy?",
    "Thanks! That's all for today.",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_turns(turns: int, brand: str, reply_tokens: int) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-turns-"))
    env = {**os.environ, "APPLIANCE_DATA_DIR": str(data_dir), "APPLIANCE_WEB_WORKERS": "1",
           "APPLIANCE_LLM_MAX_REPLY_TOKENS": str(reply_tokens),
           "APPLIANCE_CONFIG": str(REPO / "tests" / "empty-config.toml")}
    cli = [sys.executable, "-m", "appliance"]
    subprocess.run([*cli, "db", "migrate"], env=env, check=True, capture_output=True)
    seeded = json.loads(subprocess.run([*cli, "demo", "seed", "--json"], env=env, check=True,
                                       capture_output=True, text=True).stdout)
    port = _free_port()
    server = subprocess.Popen([*cli, "serve", "--bind", f"127.0.0.1:{port}"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    client_ms: list[float] = []
    ids: list[str] = []
    try:
        with httpx.Client(base_url=url, timeout=120,
                          headers={"Authorization": f"Bearer {seeded['keys'][brand]}"}) as http:
            # Ready means warmed up: models, indexes and classifiers loaded before traffic.
            for _ in range(3000):
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            conversation = http.post("/v1/conversations", json={}).json()["id"]
            # Every turn counts, the first included: it must be no slower than the others.
            for index in range(turns):
                if index and index % len(QUESTIONS) == 0:
                    conversation = http.post("/v1/conversations", json={}).json()["id"]
                started = time.perf_counter()
                reply = http.post(f"/v1/conversations/{conversation}/messages",
                                  json={"text": QUESTIONS[index % len(QUESTIONS)]})
                client_ms.append((time.perf_counter() - started) * 1000)
                reply.raise_for_status()
                ids.append(reply.json()["message"]["id"])
    finally:
        server.terminate()
        server.wait(timeout=30)
    traces = _traces(data_dir / "appliance.db", ids)
    server_total = [t["total"] for t in traces]
    return {
        "turns": turns,
        "brand": brand,
        "reply_tokens_max": reply_tokens,
        "completion_tokens_mean": round(
            statistics.fmean(t["completion_tokens"] for t in traces), 1),
        "first_turn_ms": round(client_ms[0], 2),
        "later_turns_ms": summary(client_ms[1:]),
        "turn_ms": summary(client_ms),
        "llm_ms": summary([t["llm"] for t in traces]),
        "overhead_ms": summary([t["overhead"] for t in traces]),
        "http_ms": summary([c - s for c, s in zip(client_ms, server_total, strict=True)]),
    }


def _traces(db_path: Path, message_ids: list[str]) -> list[dict[str, float]]:
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT m.public_id, t.latency_ms, t.completion_tokens FROM turn_trace t "
            "JOIN message m ON m.id = t.agent_message_id"
        ).fetchall()
    by_id = {pid: {**json.loads(lat), "completion_tokens": tokens} for pid, lat, tokens in rows}
    return [by_id[mid] for mid in message_ids]


def memory_bandwidth_gbs(size_mb: int = 512, repeats: int = 5) -> float:
    """Best-of-N copy of a large array: bytes read + bytes written per second."""
    src = np.ones(size_mb * 1024 * 1024 // 8, dtype=np.float64)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - started)
    return 2 * src.nbytes / best / 1e9


def decode_speed(threads: int, tokens: int) -> dict[str, Any]:
    import llama_cpp

    from appliance.llm.manifest import load_manifest

    spec = load_manifest(REPO / "model_store").models["smollm2-135m-instruct"]
    assert spec.path is not None
    llm = llama_cpp.Llama(model_path=str(spec.path), n_ctx=2048, n_threads=threads,
                          verbose=False)
    messages = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]
    # The end-of-text token is banned so every run decodes exactly `tokens` tokens.
    no_eos = {llm.token_eos(): -1e9}
    runs = []
    for _ in range(3):
        first = last = None
        count = 0
        for _chunk in llm.create_chat_completion(messages, max_tokens=tokens, temperature=0.0,
                                                 logit_bias=no_eos, stream=True):
            last = time.perf_counter()
            first = first or last
            count += 1
        if first and last and count > 1:
            runs.append((count - 1) / (last - first))
    llm.close()
    size = spec.path.stat().st_size
    return {"model": spec.id, "model_bytes": size, "threads": threads,
            "decode_tokens_per_s": round(max(runs), 1)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--brand", default="lumen-goods")
    parser.add_argument("--reply-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "turn_latency.json")
    args = parser.parse_args()

    turns = run_turns(args.turns, args.brand, args.reply_tokens)
    bandwidth = memory_bandwidth_gbs()
    decode = decode_speed(args.threads, 128)
    bound = bandwidth * 1e9 / decode["model_bytes"]
    result = {
        "benchmark": "turn_latency",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "turns": turns,
        "decode": {**decode, "memory_bandwidth_gbs": round(bandwidth, 2),
                   "bandwidth_bound_tokens_per_s": round(bound, 1),
                   "fraction_of_bound": round(decode["decode_tokens_per_s"] / bound, 3)},
    }
    print(f"{'turn latency (ms)':<28}{'p50':>10}{'p95':>10}{'mean':>10}")
    for name in ("turn_ms", "later_turns_ms", "llm_ms", "overhead_ms", "http_ms"):
        row = turns[name]
        print(f"{name:<28}{row['p50']:>10}{row['p95']:>10}{row['mean']:>10}")
    print(f"{'first turn (ms)':<28}{turns['first_turn_ms']:>10}")
    d = result["decode"]
    print(f"\ndecode {d['decode_tokens_per_s']} tok/s; bound {d['bandwidth_bound_tokens_per_s']} "
          f"tok/s ({d['memory_bandwidth_gbs']} GB/s / {d['model_bytes']} B); "
          f"ratio {d['fraction_of_bound']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
