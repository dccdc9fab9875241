"""One mutating run per cluster, through the cluster's own Lease (kube-system/eks-cilium-lock): a second run waits
for the lock, or gives up after `lock_wait_seconds` naming the run that holds it; a holder that never comes back
loses the lock when its lease expires; the wait logs at most one line per 10 s."""

from __future__ import annotations

import re
import threading
import time

import pytest

from flows.install_stack import run_install
from tasks.errors import PermanentError
from tasks.lease import ANNOTATIONS, read_lease
from tests.support.flows import CLUSTER, aws_nodegroups, options, stack_for
from tests.support.leases import (
    changes_besides_the_lock,
    current_lease,
    lease_requests,
    nodes_held_back,
    wait_for_holder,
    write_foreign_lease,
)


def test_second_mutating_run_gives_up_within_lock_wait_seconds_naming_the_holder(sandbox, prefect_harness, lock_log):
    results: dict[str, object] = {}
    wait = 5.0
    with nodes_held_back(sandbox):
        first = threading.Thread(target=lambda: results.update(first=run_install(stack_for(sandbox), options())))
        first.start()
        try:
            holder = read_lease(wait_for_holder(sandbox)).holder
            since = time.time()
            with pytest.raises(PermanentError) as e:
                run_install(stack_for(sandbox), options(lock_wait_seconds=wait))
            gave_up = time.time()
        finally:
            sandbox.clusters[CLUSTER].controllers.config.node_join_seconds = 0.0
            first.join(300)
    text = str(e.value)
    assert re.search(r"is being changed by another run; gave up after [56] s", text), text
    assert f"the lock (Lease kube-system/eks-cilium-lock) is held by {holder}" in text, text
    assert holder.startswith("install-stack/") and " pid " in holder
    assert "eks-cilium unlock --confirm isovalent-demo" in text
    # Bounded by lock_wait_seconds: from the second run's first look at the Lease to the error, measured.
    reads = lease_requests(sandbox, since, "GET")
    assert reads, "the second run read the Lease"
    waited = gave_up - reads[0]["t"]
    assert wait - 0.5 <= waited <= wait + 5, f"waited {waited:.1f} s for a {wait:.0f} s lock_wait_seconds"
    assert len(reads) <= wait + 3, f"{len(reads)} reads of the Lease in {waited:.1f} s: the wait must not spin"
    waiting_lines = [m for _, m in lock_log if "waiting for the cluster lock" in m]
    assert len(waiting_lines) == 1, waiting_lines
    assert results["first"]["ok"] is True  # type: ignore[index]
    assert read_lease(current_lease(sandbox)).holder == "", "the first run released the lock"  # type: ignore[arg-type]


def test_second_mutating_run_waits_and_never_interleaves_helm(sandbox, prefect_harness):
    results: dict[str, dict] = {}

    def run(key: str) -> None:
        results[key] = run_install(stack_for(sandbox), options(lock_wait_seconds=300))

    a_thread, b_thread = threading.Thread(target=run, args=("a",)), threading.Thread(target=run, args=("b",))
    with nodes_held_back(sandbox):
        a_thread.start()
        try:
            wait_for_holder(sandbox)
            b_thread.start()
            # b is waiting (it read the Lease) before a may finish: the two runs really overlap
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and len(lease_requests(sandbox, 0, "GET")) < 3:
                time.sleep(0.2)
        finally:
            sandbox.clusters[CLUSTER].controllers.config.node_join_seconds = 0.0
            a_thread.join(400)
            if b_thread.ident is not None:
                b_thread.join(400)
    assert results["a"]["ok"] and results["b"]["ok"]
    a = _helm_intervals(results["a"])
    b = _helm_intervals(results["b"])
    assert a, "the first run ran helm"
    for s1, e1 in a:
        for s2, e2 in b:
            assert e1 <= s2 or e2 <= s1, "helm operations of two runs overlapped"
    assert {r["action"] for r in results["b"]["releases"].values()} == {"unchanged"}
    # b went past endpoint discovery (before the lock: the lock lives in the cluster) only after a's last helm ended
    after_lock = [e["t"] for e in results["b"]["timeline"] if not e["step"].startswith("EKS cluster")]
    assert min(after_lock) >= max(end for _, end in a)


def _helm_intervals(result) -> list[tuple[float, float]]:
    t = result["timeline"]
    starts = {e["step"]: e["t"] for e in t if e["event"] == "start" and e["step"].startswith("helm ")}
    ends = {e["step"]: e["t"] for e in t if e["event"] == "done" and e["step"].startswith("helm ")}
    return [(starts[s], ends[s]) for s in starts if s in ends]


def test_an_expired_lease_of_a_holder_that_never_comes_back_is_taken_over_once(sandbox, prefect_harness, lock_log):
    gone = "install-stack/lost-run (00000000-0000-4000-8000-000000000000) on build-agent-7 pid 4242"
    write_foreign_lease(sandbox, holder=gone, host="build-agent-7", pid=4242, renewed_ago=300)
    started = time.monotonic()
    result = run_install(stack_for(sandbox), options(lock_wait_seconds=30))
    assert result["ok"] is True
    assert time.monotonic() - started < 120
    takeovers = [m for _, m in lock_log if m.startswith("took over the cluster lock")]
    assert len(takeovers) == 1, lock_log
    assert gone in takeovers[0] and "its lease was not renewed: it expired 24" in takeovers[0], takeovers[0]
    assert not [m for _, m in lock_log if "waiting for the cluster lock" in m], "an expired lease is taken at once"
    after = current_lease(sandbox)
    assert after is not None
    view = read_lease(after)
    assert view.holder == "" and view.transitions == 6, after
    assert after["metadata"]["annotations"][ANNOTATIONS + "last-holder"].startswith("install-stack/")


def test_a_fresh_lease_of_another_host_bounds_the_wait_and_logs_at_most_once_per_10_s(
    sandbox, prefect_harness, lock_log
):
    other = "install-stack/busy-run (00000000-0000-4000-8000-000000000000) on build-agent-7 pid 4242"
    write_foreign_lease(sandbox, holder=other, host="build-agent-7", pid=4242, renewed_ago=0)
    wait = 25.0
    since = time.time()
    with pytest.raises(PermanentError) as e:
        run_install(stack_for(sandbox), options(lock_wait_seconds=wait))
    gave_up = time.time()
    text = str(e.value)
    assert re.search(r"gave up after 2[5-9] s", text) and f"is held by {other}" in text, text
    reads = lease_requests(sandbox, since, "GET")
    waited = gave_up - reads[0]["t"]
    assert wait - 0.5 <= waited <= wait + 5, f"waited {waited:.1f} s for a {wait:.0f} s lock_wait_seconds"
    assert len(reads) <= wait + 3, f"{len(reads)} reads of the Lease in {waited:.1f} s"
    lines = [(t, m) for t, m in lock_log if "waiting for the cluster lock" in m]
    assert 2 <= len(lines) <= 1 + wait / 10, lines
    assert all(b - a >= 9.5 for (a, _), (b, _) in zip(lines, lines[1:], strict=False)), lines
    assert other in lines[0][1]
    # The lock comes before preflight and any change: nothing was written besides the Lease reads.
    assert changes_besides_the_lock(sandbox, since) == [] and aws_nodegroups(sandbox) == []
    assert read_lease(current_lease(sandbox)).holder == other  # type: ignore[arg-type]
