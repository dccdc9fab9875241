"""One mutating run per cluster: holding the cluster's Lease (the decisions are tasks/lease.py's, pure).

The holder writes who it is (flow, run name and id, host, pid) into the Lease, renews `renewTime` every
RENEW_EVERY_SECONDS from a background thread and clears `holderIdentity` when it is done. Taking is a create
(409 AlreadyExists: someone else has it) or an update with the resourceVersion just read (409 Conflict: someone
else won the race), so two takers can never both win. The wait is always bounded by `lock_wait_seconds` and logs
at most one line per LOG_EVERY_SECONDS; a take-over is logged once.

`force_unlock` is the operators' way out (`eks-cilium unlock --confirm CLUSTER`): it shows the holder and deletes
the Lease, without a Prefect server."""

from __future__ import annotations

import contextvars
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tasks.adapters.kube import Conflict, Kube
from tasks.adapters.processes import pid_alive
from tasks.errors import ConfigError, PermanentError, TransientError
from tasks.lease import (
    FINAL_STATES,
    LEASE_NAME,
    LEASE_NAMESPACE,
    LEASE_SECONDS,
    LOG_EVERY_SECONDS,
    RENEW_EVERY_SECONDS,
    RETRY_SECONDS,
    RUN_STATE_EVERY_SECONDS,
    Decision,
    Holder,
    LeaseView,
    lease_body,
    may_take,
    micro_time,
    read_lease,
    released_body,
)
from tasks.model import Stack


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
    from tasks.results import ClusterEndpoint

    cluster = Aws(stack.cluster.region).describe_cluster(stack.cluster.name)
    verdict = readiness.cluster(cluster)
    if not verdict.ready or not cluster.get("endpoint"):
        raise PermanentError(
            f"cluster {stack.cluster.name} ({stack.cluster.region}) is not reachable yet",
            observed=verdict.summary,
            hint="run again once the cluster is ACTIVE",
        )
    endpoint = ClusterEndpoint.from_described(cluster)
    cfg = exec_kubeconfig(
        stack.cluster.name,
        stack.cluster.region,
        endpoint.endpoint,
        endpoint.ca,
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
