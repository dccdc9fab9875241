"""One mutating run per cluster: a second run waits for the lock, or gives up naming the run that holds it."""

from __future__ import annotations

import threading
import time

import pytest

from flows.install_stack import run_install
from tasks.errors import PermanentError
from tests.test_install_e2e import options, stack_for

pytestmark = pytest.mark.e2e


def _helm_intervals(result) -> list[tuple[float, float]]:
    t = result["timeline"]
    starts = {e["step"]: e["t"] for e in t if e["event"] == "start" and e["step"].startswith("helm ")}
    ends = {e["step"]: e["t"] for e in t if e["event"] == "done" and e["step"].startswith("helm ")}
    return [(starts[s], ends[s]) for s in starts if s in ends]


def test_second_mutating_run_gives_up_naming_the_holder(sandbox, prefect_harness):
    results: dict[str, object] = {}

    def first():
        results["first"] = run_install(stack_for(sandbox), options())

    t = threading.Thread(target=first)
    t.start()
    time.sleep(3.0)  # the first run holds the lock from preflight on
    t0 = time.monotonic()
    with pytest.raises(PermanentError) as e:
        run_install(stack_for(sandbox), options(lock_wait_seconds=1))
    t.join(300)
    text = str(e.value)
    assert "is being changed by another run" in text and "lock cluster:us-east-1:isovalent-demo is held by install-stack/" in text
    assert time.monotonic() - t0 < 60
    assert results["first"]["ok"] is True


def test_second_mutating_run_waits_and_never_interleaves_helm(sandbox, prefect_harness):
    results: dict[str, dict] = {}

    def run(key: str, delay: float) -> None:
        time.sleep(delay)
        results[key] = run_install(stack_for(sandbox), options(lock_wait_seconds=300))

    threads = [threading.Thread(target=run, args=("a", 0.0)), threading.Thread(target=run, args=("b", 2.0))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(400)
    assert results["a"]["ok"] and results["b"]["ok"]
    # Whichever run got the lock first installed (b starts 2 s later, but a loaded machine may start a slower);
    # the other one waited, then found everything in place.
    first, second = sorted(results.values(), key=lambda r: min(e["t"] for e in r["timeline"]))
    a, b = _helm_intervals(first), _helm_intervals(second)
    assert a, "the run that got the lock first ran helm"
    for s1, e1 in a:
        for s2, e2 in b:
            assert e1 <= s2 or e2 <= s1, "helm operations of two runs overlapped"
    assert {r["action"] for r in second["releases"].values()} == {"unchanged"}
    # the second run did its first step (endpoint discovery, inside the lock) only after the first's last helm operation ended
    assert min(e["t"] for e in second["timeline"]) >= max(end for _, end in a)
