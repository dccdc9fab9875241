"""Fixtures of the end-to-end tier."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def lock_log() -> Iterator[list[tuple[float, str]]]:
    """(time, message) of every log line about the cluster lock, from the flow-run logger."""
    records: list[tuple[float, str]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            msg = record.getMessage()
            if "cluster lock" in msg:
                records.append((record.created, msg))

    handler = Collect(level=logging.INFO)
    logger = logging.getLogger("prefect.flow_runs")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
