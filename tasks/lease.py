"""The cluster lock's pure part: what the Lease `kube-system/eks-cilium-lock` says, who may take it, and the
bodies that take and release it. No I/O; tasks/steps/lock.py reads, writes and renews the Lease with these.

The lock lives where every run against the cluster meets - the cluster's own API - so it holds across runs that
use different Prefect servers (two CLI runs with their own temporary servers, a CLI run and a deployment run,
two machines). Prefect's concurrency leases cannot: they live in the memory of the server that granted them.

A waiting run may take the lock (`may_take`) when it is free, when the holder's lease expired (renewTime +
leaseDurationSeconds in the past: the holder stopped renewing), or at once when the holder provably finished (its
process on this host no longer exists, or its Prefect flow run - if this run's API knows it - is in a final
state). `lease_body` carries the resourceVersion just read, so taking is a create or a conditional update and
two takers can never both win."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Literal

from tasks.names import KUBE_SYSTEM

LEASE_NAMESPACE = KUBE_SYSTEM
LEASE_NAME = "eks-cilium-lock"
LEASE_SECONDS = 60  # a holder that stops renewing loses the lock this long after its last renewal
RENEW_EVERY_SECONDS = 15.0  # three renewals may fail (API hiccups) before the lease expires
RETRY_SECONDS = 1.0  # how often a waiting run reads the Lease again
LOG_EVERY_SECONDS = 10.0  # at most one "waiting" line per this interval
RUN_STATE_EVERY_SECONDS = 5.0  # how often a waiting run asks Prefect about the holder's flow run
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
ANNOTATIONS = "eks-cilium.dev/"
MANAGED_BY = {"app.kubernetes.io/managed-by": "eks-cilium-flows"}


def micro_time(epoch: float) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, UTC."""
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epoch(value: Any) -> float | None:
    if not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)).timestamp()


# ---- who holds it (pure) ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Holder:
    """A run as it records itself in the Lease."""

    flow: str
    run_name: str
    run_id: str
    host: str
    pid: int
    prefect_api: str = ""

    @property
    def identity(self) -> str:
        return f"{self.flow}/{self.run_name} ({self.run_id}) on {self.host} pid {self.pid}"

    def annotations(self) -> dict[str, str]:
        facts = {
            "flow": self.flow,
            "flow-run-name": self.run_name,
            "flow-run-id": self.run_id,
            "host": self.host,
            "pid": str(self.pid),
            "prefect-api": self.prefect_api,
        }
        return {ANNOTATIONS + k: v for k, v in facts.items() if v}


@dataclass(frozen=True)
class LeaseView:
    """What a Lease says about its holder; `holder` "" = free."""

    holder: str
    resource_version: str
    renewed: float | None  # epoch seconds of renewTime (acquireTime when never renewed)
    acquired: float | None
    duration: float
    transitions: int
    host: str | None = None
    pid: int | None = None
    flow_run_id: str | None = None

    def expires(self) -> float | None:
        return None if self.renewed is None else self.renewed + self.duration

    def describe(self, now: float) -> str:
        if not self.holder:
            return "nobody (the lock is free)"
        since = (
            f", since {datetime.datetime.fromtimestamp(self.acquired, datetime.UTC):%Y-%m-%d %H:%M:%S} UTC"
            if self.acquired
            else ""
        )
        renewed = (
            f", renewed {max(0.0, now - self.renewed):.0f} s ago" if self.renewed is not None else ", never renewed"
        )
        return f"{self.holder}{since}{renewed} (lease {self.duration:.0f} s)"


def read_lease(obj: dict[str, Any]) -> LeaseView:
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    notes = meta.get("annotations") or {}
    holder = str(spec.get("holderIdentity") or "")
    pid = notes.get(ANNOTATIONS + "pid")
    acquired = _epoch(spec.get("acquireTime"))
    return LeaseView(
        holder=holder,
        resource_version=str(meta.get("resourceVersion") or ""),
        renewed=_epoch(spec.get("renewTime")) or acquired,
        acquired=acquired,
        duration=float(spec.get("leaseDurationSeconds") or LEASE_SECONDS),
        transitions=int(spec.get("leaseTransitions") or 0),
        host=notes.get(ANNOTATIONS + "host") if holder else None,
        pid=int(pid) if holder and pid and str(pid).isdigit() else None,
        flow_run_id=notes.get(ANNOTATIONS + "flow-run-id") if holder else None,
    )


@dataclass(frozen=True)
class Decision:
    """Whether this run may take the lock now, and why; `kind` says what a take-over is based on."""

    take: bool
    kind: Literal["free", "mine", "expired", "process", "run", "held"]
    reason: str


def may_take(
    lease: LeaseView | None, *, me: str, now: float, my_host: str, pid_alive: bool | None, run_state: str | None
) -> Decision:
    """Who may take the lock. `pid_alive`: whether the holder's pid exists on this host (None: another host, or not
    checked); `run_state`: the holder's flow-run state type on this run's Prefect API (None: unknown there)."""
    if lease is None or not lease.holder:
        return Decision(True, "free", "the lock is free")
    if lease.holder == me:
        return Decision(True, "mine", "this run holds it already")
    expires = lease.expires()
    if expires is None or now >= expires:
        ago = "it was never renewed" if expires is None else f"it expired {now - expires:.0f} s ago"
        return Decision(True, "expired", f"its lease was not renewed: {ago}")
    if lease.host == my_host and pid_alive is False:
        return Decision(True, "process", f"its process {lease.pid} on {lease.host} no longer exists")
    if run_state in FINAL_STATES:
        return Decision(True, "run", f"its flow run is {run_state.lower()}")
    return Decision(False, "held", f"held by {lease.holder}")


def lease_body(me: Holder, now: float, previous: dict[str, Any] | None) -> dict[str, Any]:
    """The Lease that says `me` holds the lock from `now`, replacing `previous` (its resourceVersion is the
    precondition of the update; annotations other tools put on it stay)."""
    meta = (previous or {}).get("metadata") or {}
    old = read_lease(previous) if previous else None
    notes = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(ANNOTATIONS)}
    metadata: dict[str, Any] = {
        "name": LEASE_NAME,
        "namespace": LEASE_NAMESPACE,
        "labels": {**(meta.get("labels") or {}), **MANAGED_BY},
        "annotations": {**notes, **me.annotations()},
    }
    if old is not None:
        metadata["resourceVersion"] = old.resource_version
    transitions = 0 if old is None else old.transitions + (0 if old.holder == me.identity else 1)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": me.identity,
            "leaseDurationSeconds": LEASE_SECONDS,
            "acquireTime": micro_time(now),
            "renewTime": micro_time(now),
            "leaseTransitions": transitions,
        },
    }


def released_body(current: dict[str, Any], me: Holder, now: float) -> dict[str, Any]:
    """`current` with nobody holding it (the record of the last holder stays for whoever looks)."""
    meta = current.get("metadata") or {}
    notes = {k: v for k, v in (meta.get("annotations") or {}).items() if not k.startswith(ANNOTATIONS)}
    notes[ANNOTATIONS + "last-holder"] = me.identity
    spec = {k: v for k, v in (current.get("spec") or {}).items() if k != "holderIdentity"}
    spec["renewTime"] = micro_time(now)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": LEASE_NAME,
            "namespace": LEASE_NAMESPACE,
            "labels": meta.get("labels") or {},
            "annotations": notes,
            "resourceVersion": str(meta.get("resourceVersion") or ""),
        },
        "spec": spec,
    }
