"""The cluster lock's Lease as the tests read and forge it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from tasks.adapters.kube import Kube
from tasks.lease import ANNOTATIONS, LEASE_NAME, LEASE_NAMESPACE, micro_time, read_lease
from tests.support.flows import CLUSTER, mutations

LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{LEASE_NAMESPACE}/leases/{LEASE_NAME}"


def kubeconfig(sb) -> str:
    return str(sb.clusters[CLUSTER].kubeconfig)


def current_lease(sb) -> dict | None:
    with Kube(kubeconfig(sb)) as kube:
        return kube.get_lease(LEASE_NAMESPACE, LEASE_NAME)


def wait_for_holder(sb, timeout: float = 180, pid: int | None = None) -> dict:
    """The Lease once a run holds it (observed, not assumed from a head start: a loaded machine starts runs slower)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lease = current_lease(sb)
        view = read_lease(lease) if lease else None
        if view is not None and view.holder and (pid is None or view.pid == pid):
            return lease  # type: ignore[return-value]
        time.sleep(0.1)
    raise AssertionError(f"no run took the lock within {timeout:.0f} s (Lease: {current_lease(sb)})")


def lease_requests(sb, since: float, method: str | None = None) -> list[dict]:
    return [
        r
        for r in list(sb.clusters[CLUSTER].emulator.request_log)
        if r.get("path") == LEASE_PATH and r.get("t", 0) >= since and (method is None or r.get("method") == method)
    ]


def changes_besides_the_lock(sb, since: float) -> list[str]:
    return [m for m in mutations(sb, since) if "/leases" not in m]


@contextlib.contextmanager
def nodes_held_back(sb) -> Iterator[None]:
    """A first run that holds the lock until the test lets its nodes join (its nodes-Ready sensor waits)."""
    config = sb.clusters[CLUSTER].controllers.config
    config.node_join_seconds = 3600.0
    try:
        yield
    finally:
        config.node_join_seconds = 0.0


def write_foreign_lease(sb, *, holder: str, host: str, pid: int, renewed_ago: float, transitions: int = 5) -> dict:
    """A Lease as another machine's run leaves it: its host and pid, its last renewal `renewed_ago` seconds ago."""
    now = time.time()
    body = {
        "metadata": {
            "name": LEASE_NAME,
            "namespace": LEASE_NAMESPACE,
            "annotations": {
                ANNOTATIONS + "host": host,
                ANNOTATIONS + "pid": str(pid),
                ANNOTATIONS + "flow-run-id": "00000000-0000-4000-8000-000000000000",
            },
        },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 60,
            "acquireTime": micro_time(now - renewed_ago - 120),
            "renewTime": micro_time(now - renewed_ago),
            "leaseTransitions": transitions,
        },
    }
    with Kube(kubeconfig(sb)) as kube:
        return kube.create_lease(LEASE_NAMESPACE, body)
