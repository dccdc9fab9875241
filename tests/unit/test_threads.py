"""map_in_threads: the preflight's helm checks and the fleet's members run through it."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

from tasks.steps.threads import map_in_threads

RUN = contextvars.ContextVar("RUN", default="none")


def test_results_keep_the_order_of_the_items_and_the_callers_context():
    RUN.set("run-1")
    assert map_in_threads(lambda i: (i, RUN.get()), [3, 1, 2]) == [(3, "run-1"), (1, "run-1"), (2, "run-1")]


def test_at_most_max_workers_run_at_once():
    lock, running, peak = threading.Lock(), [0], [0]

    def work(_: int) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    map_in_threads(work, list(range(8)), max_workers=3)
    assert 1 <= peak[0] <= 3


def test_an_error_in_one_item_reaches_the_caller():
    def work(i: int) -> int:
        if i == 2:
            raise ValueError("item 2")
        return i

    with pytest.raises(ValueError, match="item 2"):
        map_in_threads(work, [1, 2, 3])
