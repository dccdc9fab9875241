"""One mutating run per cluster: a `coordination.k8s.io/v1` Lease `kube-system/eks-cilium-lock` in the cluster.

The lock lives where every run against the cluster meets - the cluster's own API - so it holds across runs that
use different Prefect servers (two CLI runs with their own temporary servers, a CLI run and a deployment run,
two machines). Prefect's concurrency leases cannot: they live in the memory of the server that granted them.

The holder writes who it is (flow, run name and id, host, pid) into the Lease, renews `renewTime` every
RENEW_EVERY_SECONDS from a background thread and clears `holderIdentity` when it is done. A waiting run may take
the lock (`may_take`, pure) when it is free, when the holder's lease expired (renewTime + leaseDurationSeconds in
the past: the holder stopped renewing), or at once when the holder provably finished (its process on this host no
longer exists, or its Prefect flow run - if this run's API knows it - is in a final state). Taking is a create
(409 AlreadyExists: someone else has it) or an update with the resourceVersion just read (409 Conflict: someone
else won the race), so two takers can never both win. The wait is always bounded by `lock_wait_seconds` and logs
at most one line per LOG_EVERY_SECONDS; a take-over is logged once.

`force_unlock` is the operators' way out (`eks-cilium unlock --confirm CLUSTER`): it shows the holder and deletes
the Lease, without a Prefect server."""

from __future__ import annotations

import contextvars
import datetime
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tasks.adapters.kube import Conflict, Kube
from tasks.errors import ConfigError, PermanentError, TransientError
from tasks.model import Stack
from tasks.processes import pid_alive

LEASE_NAMESPACE = "kube-system"
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


# ---- facts about the holder (I/O) ------------------------------------------------------------------------------
def this_run() -> Holder:
    from prefect.runtime import flow_run
    from prefect.settings import PREFECT_API_URL

    run_id = flow_run.get_id()
    return Holder(
        flow=flow_run.get_flow_name() or "flow",
        run_name=flow_run.get_name() or "?",
        run_id=str(run_id) if run_id else f"no flow run, {os.urandom(4).hex()}",
        host=socket.gethostname(),
        pid=os.getpid(),
        prefect_api=str(PREFECT_API_URL.value() or ""),
    )


def _pid_alive(lease: LeaseView | None, my_host: str) -> bool | None:
    if lease is None or not lease.holder or lease.host != my_host or lease.pid is None:
        return None
    return pid_alive(lease.pid)


class _RunStates:
    """The holder's flow-run state on this run's Prefect API, asked at most every RUN_STATE_EVERY_SECONDS."""

    def __init__(self) -> None:
        self.cache: dict[str, tuple[float, str | None]] = {}

    def get(self, run_id: str | None) -> str | None:
        if not run_id:
            return None
        at, state = self.cache.get(run_id, (0.0, None))
        if time.monotonic() - at >= RUN_STATE_EVERY_SECONDS:
            state = _read_run_state(run_id)
            self.cache[run_id] = (time.monotonic(), state)
        return state


def _read_run_state(run_id: str) -> str | None:
    """None when this run's API does not know that run (another server's run) or cannot say right now."""
    from uuid import UUID

    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(run_id))
    except (ObjectNotFound, ValueError, httpx.HTTPError, OSError):
        return None
    return run.state.type.value if run.state else None


def _mark_crashed(run_id: str | None, reason: str, me: Holder, logger: Any) -> None:
    """A dead holder's flow run that still shows Running on this API is marked Crashed, so the UI tells the truth."""
    from uuid import UUID

    import httpx
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Crashed

    if not run_id:
        return
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(run_id))
            if run.state and run.state.type.value not in FINAL_STATES:
                client.set_flow_run_state(
                    UUID(run_id), Crashed(message=f"{reason}; lock taken over by {me.identity}"), force=True
                )
    except (ObjectNotFound, ValueError):
        return  # a run of another Prefect server: that server's UI is not ours to fix
    except (httpx.HTTPError, OSError) as e:
        logger.warning("could not mark the dead holder's flow run %s Crashed: %s", run_id, e)


# ---- holding it ------------------------------------------------------------------------------------------------
class _HeldLock:
    """The lock this run holds: renewed every RENEW_EVERY_SECONDS from a thread, released once (by the flow when its
    block ends, or by the CLI's signal handler through `release_held_locks`). It notices when the lock was taken
    away (deleted by `eks-cilium unlock`, or another holder) and stops renewing then. Renewal is a merge patch
    with the resourceVersion: unlike a PUT, it never re-creates a Lease an operator deleted."""

    def __init__(self, kube: Kube, current: dict[str, Any], me: Holder, logger: Any) -> None:
        self.kube, self.current, self.me, self.logger = kube, current, me, logger
        self.stop = threading.Event()
        self.mutex = threading.Lock()  # renewal and release never interleave
        self.done = False  # released, or lost
        self.lost: str | None = None
        self.thread = threading.Thread(
            target=contextvars.copy_context().run, args=(self._loop,), name="cluster-lock-renewer", daemon=True
        )

    def _loop(self) -> None:
        while not self.stop.wait(RENEW_EVERY_SECONDS):
            with self.mutex:
                if self.done:
                    return
                self._renew()

    def _renew(self) -> None:
        def patch(rv: str) -> dict[str, Any] | None:
            return self.kube.patch_lease(LEASE_NAMESPACE, LEASE_NAME, rv, {"renewTime": micro_time(time.time())})

        try:
            try:
                updated = patch(str(self.current["metadata"]["resourceVersion"]))
            except Conflict:  # someone touched the Lease (an annotation, or a take-over): is it still ours?
                updated = self.kube.get_lease(LEASE_NAMESPACE, LEASE_NAME)
                if updated is not None and read_lease(updated).holder == self.me.identity:
                    updated = patch(str(updated["metadata"]["resourceVersion"]))
        except (TransientError, Conflict) as e:
            self.logger.warning(
                "could not renew the cluster lock (will retry in %.0f s; the lease lasts %d s): %s",
                RENEW_EVERY_SECONDS,
                LEASE_SECONDS,
                e,
            )
            return
        if updated is None or read_lease(updated).holder != self.me.identity:
            self.done = True
            self.lost = (
                "the Lease was deleted (`eks-cilium unlock`?)"
                if updated is None
                else f"it is now held by {read_lease(updated).holder}"
            )
            self.logger.error("this run lost the cluster lock: %s; another run may be changing the cluster", self.lost)
            return
        self.current = updated

    def release(self) -> None:
        self.stop.set()
        with self.mutex:
            if self.done:
                return
            self.done = True
            current = self.current
            for _ in range(3):
                try:
                    self.kube.replace_lease(LEASE_NAMESPACE, released_body(current, self.me, time.time()))
                    self.logger.info("released the cluster lock")
                    return
                except Conflict:
                    fresh = self.kube.get_lease(LEASE_NAMESPACE, LEASE_NAME)
                    if fresh is None or read_lease(fresh).holder != self.me.identity:
                        return  # no longer ours: nothing to release
                    current = fresh
                except TransientError as e:
                    self.logger.warning(
                        "could not release the cluster lock (it expires %d s after its last renewal): %s",
                        LEASE_SECONDS,
                        e,
                    )
                    return
            self.logger.warning(
                "could not release the cluster lock: the Lease kept changing (it expires within %d s)", LEASE_SECONDS
            )


_HELD: set[_HeldLock] = set()
_HELD_LOCK = threading.Lock()


def release_held_locks(timeout: float) -> None:
    """Release every cluster lock this process holds, waiting at most `timeout` seconds: for the CLI's signal
    handler, which exits right after (a lock it cannot release in time is taken over by the next run on this host
    at once, its pid being gone, and elsewhere when its lease expires)."""
    with _HELD_LOCK:
        held = list(_HELD)
    threads = [threading.Thread(target=h.release, name="cluster-lock-release", daemon=True) for h in held]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))


def _gave_up(
    stack: Stack, waited: float, lease: LeaseView | None, error: Exception | None, now: float
) -> PermanentError:
    where = f"Lease {LEASE_NAMESPACE}/{LEASE_NAME}"
    if lease is not None and lease.holder:
        observed = f"the lock ({where}) is held by {lease.describe(now)}"
    elif error is not None:
        observed = f"the lock ({where}) could not be read or taken: {error}"
    else:
        observed = f"the lock ({where}) kept changing hands"
    return PermanentError(
        f"cluster {stack.cluster.name} ({stack.cluster.region}) is being changed by another run; gave up "
        f"after {waited:.0f} s",
        observed=observed,
        hint="wait for that run to finish (or cancel it), then run again; raise lock_wait_seconds to "
        "queue instead. A holder "
        f"that died frees the lock {LEASE_SECONDS} s after its last renewal; if you are sure it is gone, "
        f"`eks-cilium unlock --confirm {stack.cluster.name}` removes the lock now",
    )


@contextmanager
def cluster_lock(stack: Stack, kubeconfig: str, wait_seconds: float) -> Iterator[None]:
    """Hold the cluster's lock for the block; after `wait_seconds` fail naming the run that holds it."""
    from prefect import get_run_logger

    logger = get_run_logger()
    me = this_run()
    kube = Kube(kubeconfig)  # its own client: the renewer thread outlives the tasks' shared one by a moment
    try:
        current, taken, previous = _acquire(kube, stack, me, wait_seconds, logger)
        if taken.kind in ("expired", "process", "run") and previous is not None:
            logger.warning("took over the cluster lock from %s: %s", previous.describe(time.time()), taken.reason)
            if taken.kind == "process":  # a run that ended on its own already shows its final state
                _mark_crashed(previous.flow_run_id, taken.reason, me, logger)
        logger.info("holding the cluster lock (Lease %s/%s) as %s", LEASE_NAMESPACE, LEASE_NAME, me.identity)
        held = _HeldLock(kube, current, me, logger)
        with _HELD_LOCK:
            _HELD.add(held)
        held.thread.start()
        try:
            yield
        finally:
            held.release()
            with _HELD_LOCK:
                _HELD.discard(held)
    finally:
        kube.close()


def _acquire(
    kube: Kube, stack: Stack, me: Holder, wait_seconds: float, logger: Any
) -> tuple[dict[str, Any], Decision, LeaseView | None]:
    """(the Lease as written, why it could be taken, what it said before). Every pass sleeps RETRY_SECONDS, so
    nothing here spins, and the deadline is checked after every attempt that did not get the lock."""
    started = time.monotonic()
    deadline = started + wait_seconds
    states = _RunStates()
    last_log: float | None = None
    while True:
        lease: LeaseView | None = None
        error: Exception | None = None
        try:
            raw = kube.get_lease(LEASE_NAMESPACE, LEASE_NAME)
            lease = read_lease(raw) if raw is not None else None
            facts = {"me": me.identity, "now": time.time(), "my_host": me.host, "pid_alive": _pid_alive(lease, me.host)}
            decision = may_take(lease, run_state=None, **facts)  # type: ignore[arg-type]
            if not decision.take and lease is not None:
                decision = may_take(lease, run_state=states.get(lease.flow_run_id), **facts)  # type: ignore[arg-type]
            if decision.take:
                try:
                    body = lease_body(me, time.time(), raw)
                    held = (
                        kube.create_lease(LEASE_NAMESPACE, body)
                        if raw is None
                        else kube.replace_lease(LEASE_NAMESPACE, body)
                    )
                except Conflict:
                    pass  # another run took it between our read and our write: read again
                else:
                    return held, decision, lease
        except TransientError as e:
            error = e
        now = time.monotonic()
        if now >= deadline:
            raise _gave_up(stack, now - started, lease, error, time.time())
        if last_log is None or now - last_log >= LOG_EVERY_SECONDS:
            what = (
                lease.describe(time.time())
                if lease is not None and lease.holder
                else f"nobody ({error or 'lost a race'})"
            )
            if last_log is None:
                logger.info(
                    "waiting for the cluster lock (Lease %s/%s), held by %s; up to %.0f s",
                    LEASE_NAMESPACE,
                    LEASE_NAME,
                    what,
                    wait_seconds,
                )
            else:
                logger.info(
                    "still waiting for the cluster lock (%.0f of %.0f s), held by %s", now - started, wait_seconds, what
                )
            last_log = now
        time.sleep(min(RETRY_SECONDS, max(0.0, deadline - time.monotonic())))


# ---- operators' way out ----------------------------------------------------------------------------------------
def cluster_kubeconfig(stack: Stack, workdir: Path) -> str:
    """A kubeconfig for the stack's cluster (exec credential plugin), as the flows build it, without Prefect."""
    import yaml

    from tasks import readiness
    from tasks.access import exec_kubeconfig
    from tasks.adapters.aws import Aws
    from tasks.render import write_private

    cluster = Aws(stack.cluster.region).describe_cluster(stack.cluster.name)
    verdict = readiness.cluster(cluster)
    if not verdict.ready or not cluster.get("endpoint"):
        raise PermanentError(
            f"cluster {stack.cluster.name} ({stack.cluster.region}) is not reachable yet",
            observed=verdict.summary,
            hint="run again once the cluster is ACTIVE",
        )
    cfg = exec_kubeconfig(
        stack.cluster.name,
        stack.cluster.region,
        cluster["endpoint"],
        (cluster.get("certificateAuthority") or {}).get("data", ""),
        cache_dir=str(workdir),
    )
    return str(write_private(workdir / "kubeconfig", yaml.safe_dump(cfg)))


def force_unlock(stack: Stack, confirm: str) -> list[str]:
    """Delete the cluster's lock whoever holds it (`confirm` must be the cluster name); lines to print."""
    name = stack.cluster.name
    if confirm != name:
        raise ConfigError(
            f"force-unlock of {name} was not confirmed",
            observed=f"--confirm {confirm!r}",
            hint=f"pass --confirm {name} to remove the lock of cluster {name} ({stack.cluster.region})",
        )
    with (
        tempfile.TemporaryDirectory(prefix="eks-cilium-unlock-") as tmp,
        Kube(cluster_kubeconfig(stack, Path(tmp))) as kube,
    ):
        raw = kube.get_lease(LEASE_NAMESPACE, LEASE_NAME)
        if raw is None:
            return [f"cluster {name}: no lock (Lease {LEASE_NAMESPACE}/{LEASE_NAME} does not exist); nothing to do"]
        lease = read_lease(raw)
        now = time.time()
        lines = [f"cluster {name}: the lock (Lease {LEASE_NAMESPACE}/{LEASE_NAME}) is held by {lease.describe(now)}"]
        expires = lease.expires()
        if lease.holder and expires is not None and expires > now:
            lines.append(
                f"warning: its holder renewed it within the last {lease.duration:.0f} s and may still be "
                "running; it will find its lock gone and stop renewing it"
            )
        try:
            kube.delete_lease(LEASE_NAMESPACE, LEASE_NAME, resource_version=lease.resource_version)
        except Conflict:
            raise PermanentError(
                f"the lock of {name} changed while it was being removed; nothing was deleted",
                hint="run the command again to see the new holder",
            ) from None
        lines.append(f"cluster {name}: lock removed")
        return lines
