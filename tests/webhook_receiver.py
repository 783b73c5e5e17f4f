"""A brand's helpdesk on loopback for webhook tests: real HTTP, answers as scripted, keeps
what it received (tests/handoff, tests/evals)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    """A helpdesk on loopback that answers as scripted and keeps what it received."""

    url: str
    #: What to answer next: an HTTP status, "hang" (past the timeout) or "garbage" (not HTTP).
    #: The last answer repeats.
    answers: list[int | str] = field(default_factory=lambda: [200])
    received: list[dict[str, Any]] = field(default_factory=list)
    delay_s: float = 0.0
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self) -> int | str:
        with self.lock:
            return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A Receiver listening on a free loopback port until the block ends."""
    box: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver = box[0]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.lock:
                receiver.received.append({"path": self.path, "headers": dict(self.headers),
                                          "body": body})
            answer = receiver.next_answer()
            time.sleep(receiver.delay_s)
            try:
                if answer == "hang":
                    receiver.release.wait(10)
                    return
                if answer == "garbage":
                    self.wfile.write(b"\x00\x17 not http at all\r\n\r\n")
                    return
                self.send_response(int(answer))
                payload = b'{"ok": true}' if int(answer) < 300 else b"Not Found here"
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the sender gave up first
                pass

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(f"http://127.0.0.1:{httpd.server_address[1]}/hooks/switchboard"))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        box[0].release.set()
        httpd.shutdown()
        httpd.server_close()
