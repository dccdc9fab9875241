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


def _wait_until_a_run_holds_the_lock(sandbox, timeout: float = 180) -> str:
    """The first run's lock, observed (not assumed from a head start: a loaded machine may start it slower)."""
    from prefect.variables import Variable

    from tasks.locking import holder_variable, lock_name

    var = holder_variable(lock_name(stack_for(sandbox)))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = Variable.get(var, default=None)
        if isinstance(held, dict) and held.get("holder"):
            return str(held["holder"])
        time.sleep(0.1)
    raise AssertionError(f"no run took the lock within {timeout:.0f} s")


def test_second_mutating_run_gives_up_naming_the_holder(sandbox, prefect_harness):
    results: dict[str, object] = {}
    # The first run must hold the lock for a while (an instant sandbox install takes ~5 s, and the Prefect API can
    # take seconds to answer the second run's acquire on a loaded machine): its nodes join only after 10 s.
    sandbox.clusters["isovalent-demo"].controllers.config.node_join_seconds = 10.0

    def first():
        results["first"] = run_install(stack_for(sandbox), options())

    t = threading.Thread(target=first)
    t.start()
    try:
        holder = _wait_until_a_run_holds_the_lock(sandbox)
        t0 = time.monotonic()
        with pytest.raises(PermanentError) as e:
            run_install(stack_for(sandbox), options(lock_wait_seconds=1))
    finally:
        t.join(300)
    text = str(e.value)
    assert "is being changed by another run" in text and f"lock cluster:us-east-1:isovalent-demo is held by {holder}" in text
    assert holder.startswith("install-stack/")
    assert time.monotonic() - t0 < 60
    assert results["first"]["ok"] is True


def test_second_mutating_run_waits_and_never_interleaves_helm(sandbox, prefect_harness):
    results: dict[str, dict] = {}

    def run(key: str) -> None:
        results[key] = run_install(stack_for(sandbox), options(lock_wait_seconds=300))

    a_thread, b_thread = threading.Thread(target=run, args=("a",)), threading.Thread(target=run, args=("b",))
    a_thread.start()
    try:
        _wait_until_a_run_holds_the_lock(sandbox)
        b_thread.start()
    finally:
        a_thread.join(400)
        if b_thread.is_alive() or b_thread.ident is not None:
            b_thread.join(400)
    assert results["a"]["ok"] and results["b"]["ok"]
    a, b = _helm_intervals(results["a"]), _helm_intervals(results["b"])
    assert a, "the first run ran helm"
    for s1, e1 in a:
        for s2, e2 in b:
            assert e1 <= s2 or e2 <= s1, "helm operations of two runs overlapped"
    assert {r["action"] for r in results["b"]["releases"].values()} == {"unchanged"}
    # b did its first step (endpoint discovery, inside the lock) only after a's last helm operation ended
    assert min(e["t"] for e in results["b"]["timeline"]) >= max(end for _, end in a)
