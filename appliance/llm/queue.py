"""A bounded queue in front of each model, per process.

At most `slots` generations run at once on a model (1 for in-process llama.cpp, whose context
runs one generation at a time; more for an HTTP server that batches) and at most `depth` more
wait. A call that finds the queue full, or whose expected wait (the calls ahead of it times the
recent generation time, over the slots) exceeds what is left of its budget, is refused at once
with Overloaded and a Retry-After: a clear "busy, retry" instead of a timeout.

Per process, not per box: each gunicorn worker loads its own llama.cpp copy, so a model's
capacity is a worker's, and the queue matches it without a shared lock. For an HTTP model the
box admits `slots` x workers; the server's own queue takes what is beyond.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from appliance.errors import Overloaded

#: Weight of the newest generation time in the running average the wait is estimated from.
_SMOOTHING = 0.3


class ModelQueue:
    """Admission to one model in this process (thread-safe)."""

    def __init__(self, model_id: str, slots: int, depth: int) -> None:
        self.model_id = model_id
        self._slots = threading.Semaphore(slots)
        self._capacity = slots
        self._depth = depth
        self._lock = threading.Lock()
        self._admitted = 0
        #: Running average of a generation's seconds; 0 until one finished.
        self._average_s = 0.0

    @property
    def admitted(self) -> int:
        """Calls generating or waiting now."""
        return self._admitted

    @property
    def full(self) -> bool:
        """Every slot generating and every waiting place taken: a call now is refused."""
        return self._admitted >= self._capacity + self._depth

    def expected_wait_s(self, ahead: int) -> float:
        """Seconds a call with `ahead` calls in front of it waits for a slot."""
        return math.floor(ahead / self._capacity) * self._average_s

    @contextmanager
    def admitted_within(self, budget_s: float) -> Iterator[None]:
        """Hold a slot for the block, waiting for one if the queue allows; raise Overloaded
        when it is full or the wait would exceed `budget_s`."""
        with self._lock:
            ahead = self._admitted
            wait = self.expected_wait_s(ahead)
            if ahead >= self._capacity + self._depth or wait > budget_s:
                retry = self.expected_wait_s(ahead - self._capacity + 1) or self._average_s
                raise Overloaded(f"model {self.model_id} is busy; retry shortly",
                                 retry_after_s=math.ceil(retry))
            self._admitted += 1
        try:
            if not self._slots.acquire(timeout=budget_s):
                raise Overloaded(f"model {self.model_id} is busy; retry shortly",
                                 retry_after_s=math.ceil(self._average_s))
            started = time.monotonic()
            try:
                yield
            finally:
                self._slots.release()
                self._record(time.monotonic() - started)
        finally:
            with self._lock:
                self._admitted -= 1

    def _record(self, seconds: float) -> None:
        with self._lock:
            self._average_s = (seconds if self._average_s == 0
                               else (1 - _SMOOTHING) * self._average_s + _SMOOTHING * seconds)
