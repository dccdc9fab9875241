"""Running work concurrently in threads that keep the calling flow run's context (its Prefect settings, API URL
and logger live in contextvars, which plain threads would not inherit). Standard library only."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_in_threads(
    fn: Callable[[T], R], items: Sequence[T], max_workers: int | None = None, name: str = "worker"
) -> list[R]:
    """fn(item) for every item, at most `max_workers` at a time (default: all at once); results in item order."""
    if len(items) <= 1:
        return [fn(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(max_workers or len(items), len(items)), thread_name_prefix=name) as pool:
        futures = [pool.submit(contextvars.copy_context().run, fn, i) for i in items]
        return [f.result() for f in futures]
