"""Caps on the event streams a web worker holds, so that they never take every request thread.

Each stream holds one of the worker's threads for up to 30 s. A worker holds at most
`events_streams_max` of them (then 503 overloaded) and at most `events_streams_per_caller` for
one API key or widget token (then 429 rate_limited); both carry Retry-After. The caps are per
worker because the threads they protect are: a worker's streams cannot starve another's.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from flask import current_app

from appliance.errors import Overloaded, RateLimited
from appliance.web import services_of_app

_EXTENSION_KEY = "appliance.event_streams"
#: Seconds a refused client waits: streams end within 30 s, most much sooner.
RETRY_AFTER_S = 5


class StreamCaps:
    """Counts open streams, in total and per caller (thread-safe)."""

    def __init__(self, total: int, per_caller: int) -> None:
        self._total, self._per_caller = total, per_caller
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def open(self, caller: str) -> Callable[[], None]:
        """Count a stream of `caller`; return the function that ends it (once, however often
        it is called). Raises Overloaded or RateLimited over a cap."""
        with self._lock:
            if sum(self._open.values()) >= self._total:
                raise Overloaded("too many event streams open; reconnect shortly",
                                 retry_after_s=RETRY_AFTER_S)
            if self._open[caller] >= self._per_caller:
                raise RateLimited("too many event streams open for this caller",
                                  retry_after_s=RETRY_AFTER_S)
            self._open[caller] += 1
        closed = threading.Event()

        def close() -> None:
            if closed.is_set():
                return
            closed.set()
            with self._lock:
                self._open[caller] -= 1
                if not self._open[caller]:
                    del self._open[caller]

        return close


def event_streams() -> StreamCaps:
    """This worker's caps, made on first use from the settings."""
    caps: StreamCaps | None = current_app.extensions.get(_EXTENSION_KEY)
    if caps is None:
        settings = services_of_app().settings
        caps = current_app.extensions.setdefault(_EXTENSION_KEY, StreamCaps(
            settings.events_streams_max, settings.events_streams_per_caller))
    return caps
