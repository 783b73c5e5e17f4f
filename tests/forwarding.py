"""A loopback HTTP proxy in front of a demo backend, for tests that must see, hold or log what
the appliance's tools send: every request goes on to the backend unchanged, its answer comes
back unchanged."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

#: Called before a request goes on: (method, path, body).
Before = Callable[[str, str, bytes], None]
#: Called once the backend answered: (method, path, body, status).
After = Callable[[str, str, bytes, int], None]


@contextmanager
def forwarding(upstream: str, before: Before | None = None,
               after: After | None = None) -> Iterator[str]:
    """The proxy's URL while the block runs."""

    class Forward(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if before is not None:
                before(self.command, self.path, body)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("host", "content-length", "connection")}
            answer = httpx.request(self.command, f"{upstream}{self.path}", content=body,
                                   headers=headers, timeout=30)
            if after is not None:
                after(self.command, self.path, body, answer.status_code)
            self.send_response(answer.status_code)
            self.send_header("Content-Type", answer.headers.get("content-type", ""))
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        def log_message(self, format: str, *args: Any) -> None:
            pass  # tests read what the hooks saw, not stderr

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
