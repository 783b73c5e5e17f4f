"""A circuit breaker per model backend.

After `failures` consecutive retryable failures (timeouts, unavailable) the circuit opens: the
router passes the model over without calling it, so a dead backend costs a turn nothing instead
of a connect or read timeout. After `cooldown_s` one trial call goes through (half-open); its
success closes the circuit, its failure opens it for another cooldown.

State is per process (each gunicorn worker learns on its own) and thread-safe. Time comes from
an injectable clock returning monotonic seconds, so tests need no sleeps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

Clock = Callable[[], float]
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    #: Consecutive retryable failures that open the circuit.
    failures: int = 3
    #: Seconds an open circuit waits before it lets one trial call through.
    cooldown_s: float = 30.0


@dataclass(frozen=True)
class BreakerState:
    state: str  # closed | open | half_open
    consecutive_failures: int
    #: Error code of the latest failure (kept after recovery, for ops), or None.
    last_error: str | None
    #: While open: seconds until a trial call is let through.
    retry_in_s: float | None


class Permit:
    """Leave for one call to go ahead. Report its outcome once: `success()`, `failure(code)`,
    or `release()` when the call ended without a verdict (e.g. the client went away)."""

    def __init__(self, breaker: CircuitBreaker, *, trial: bool) -> None:
        self._breaker = breaker
        self.trial = trial
        self._done = False

    def success(self) -> None:
        """The backend answered (an answer that refuses the request counts: it is up)."""
        if not self._done:
            self._done = True
            self._breaker._success()

    def failure(self, code: str) -> None:
        """A retryable failure: timeout or unavailable."""
        if not self._done:
            self._done = True
            self._breaker._failure(code, trial=self.trial)

    def release(self) -> None:
        if not self._done:
            self._done = True
            if self.trial:
                self._breaker._release_trial()


class CircuitBreaker:
    """One backend's circuit; `allow()` before each call."""

    def __init__(self, name: str, policy: BreakerPolicy, clock: Clock = time.monotonic) -> None:
        self.name = name
        self._policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._last_error: str | None = None
        self._opened_at = 0.0
        self._trial_out = False

    def allow(self) -> Permit | None:
        """A permit for one call, or None while the circuit is open. In half-open only one
        caller at a time gets a permit: the trial."""
        with self._lock:
            if self._state == CLOSED:
                return Permit(self, trial=False)
            if self._state == OPEN:
                if self._clock() - self._opened_at < self._policy.cooldown_s:
                    return None
                self._state = HALF_OPEN
                log.info("model %s: circuit half-open, letting one call through", self.name)
            if self._trial_out:
                return None
            self._trial_out = True
            return Permit(self, trial=True)

    def would_allow(self) -> bool:
        """Whether `allow()` would give a permit now, without taking one (for planning)."""
        with self._lock:
            if self._state == OPEN:
                return self._clock() - self._opened_at >= self._policy.cooldown_s
            return not (self._state == HALF_OPEN and self._trial_out)

    def state(self) -> BreakerState:
        with self._lock:
            retry_in = None
            if self._state == OPEN:
                retry_in = max(self._opened_at + self._policy.cooldown_s - self._clock(), 0.0)
            return BreakerState(self._state, self._failures, self._last_error, retry_in)

    def _success(self) -> None:
        with self._lock:
            if self._state != CLOSED:
                log.warning("model %s: circuit closed, the model answers again", self.name)
            self._state, self._failures, self._trial_out = CLOSED, 0, False

    def _failure(self, code: str, *, trial: bool) -> None:
        with self._lock:
            self._failures += 1
            self._last_error = code
            if self._state == OPEN or (self._state == HALF_OPEN and not trial):
                return  # a call from before the circuit opened; the cooldown or trial decides
            if self._state == CLOSED and self._failures < self._policy.failures:
                return
            self._state, self._opened_at, self._trial_out = OPEN, self._clock(), False
            log.warning(
                "model %s: circuit open after %d consecutive failures (last: %s); "
                "passing it over for %gs", self.name, self._failures, code,
                self._policy.cooldown_s,
            )

    def _release_trial(self) -> None:
        with self._lock:
            self._trial_out = False
