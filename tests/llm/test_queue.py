"""The bounded queue in front of a model: calls beyond its slots wait up to its depth; past
that, or when the expected wait exceeds the budget, they are refused at once (Overloaded with
Retry-After)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from server_support import wait_for

from appliance.errors import Overloaded
from appliance.llm.queue import ModelQueue

#: Bounds a thread's start, never asserted on.
START_S = 60.0


@contextmanager
def holding(queue: ModelQueue, budget_s: float = 3600.0) -> Iterator[threading.Event]:
    """A thread admitted to `queue` until the yielded event is set (it may wait first)."""
    release, admitted = threading.Event(), queue.admitted

    def hold() -> None:
        with queue.admitted_within(budget_s):
            release.wait(START_S)

    thread = threading.Thread(target=hold)
    thread.start()
    assert wait_for(lambda: queue.admitted > admitted, START_S)
    try:
        yield release
    finally:
        release.set()
        thread.join()


def test_calls_beyond_the_slots_and_the_depth_are_refused_at_once() -> None:
    queue = ModelQueue("m", slots=1, depth=1)
    with holding(queue) as generating, holding(queue):
        assert queue.admitted == 2
        with pytest.raises(Overloaded) as refused, queue.admitted_within(3600.0):
            pass
        generating.set()  # the waiting call goes on, then ends
    assert refused.value.status == 503 and refused.value.code == "overloaded"
    assert refused.value.retry_after_s >= 1
    assert queue.admitted == 0
    with queue.admitted_within(3600.0):
        assert queue.admitted == 1


def test_a_wait_longer_than_the_budget_is_refused() -> None:
    queue = ModelQueue("m", slots=1, depth=5)
    with holding(queue) as release:
        release.set()  # one call finishes: the queue now knows how long a call takes
    with holding(queue), pytest.raises(Overloaded), queue.admitted_within(0.0):
        pass


def test_free_slots_admit_without_waiting() -> None:
    queue = ModelQueue("m", slots=2, depth=0)
    with holding(queue), queue.admitted_within(3600.0):
        assert queue.admitted == 2
