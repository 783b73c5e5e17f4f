"""Whether a process has loaded and run once everything a customer's turn uses.

A web worker starts its warm-up as soon as it is built: the reply model loads and evaluates each
brand's fixed prompt, the embedder, the classifiers, the knowledge indexes and the workflow
matchers load and run once. Until that is done `/readyz` answers 503 and customers' turns wait
for it, so the first customer's message is no slower than the tenth. Processes that never warm
up (the CLI, the scheduler, tests) load each part on first use, as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Parts load on first use: nothing to wait for.
LAZY = "lazy"
WARMING, WARM, FAILED = "warming", "warm", "failed"


class WarmUp:
    """The warm-up's state; `wait()` blocks while it runs."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._done.set()
        self.state = LAZY
        self.seconds: float | None = None

    def start(self, work: Callable[[], None]) -> None:
        """Run `work` on a thread of its own; `wait()` blocks until it ends."""
        self._done.clear()
        self.state = WARMING
        threading.Thread(target=self._run, args=(work,), name="warm-up", daemon=True).start()

    def _run(self, work: Callable[[], None]) -> None:
        started = time.monotonic()
        try:
            work()
            self.state = WARM
        except Exception:  # a part that fails to warm loads (or fails) on first use instead
            log.exception("warm-up failed; parts load on first use")
            self.state = FAILED
        finally:
            self.seconds = round(time.monotonic() - started, 2)
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the warm-up has ended (at once when there is none); False on timeout."""
        return self._done.wait(timeout)

    @property
    def ready(self) -> bool:
        return self._done.is_set()
