"""One mutating run per cluster: a Prefect global concurrency limit named `cluster:<region>:<name>` (limit 1),
held through a lease, plus a Prefect Variable recording who holds it (run, host, pid, lease).

The record lets a waiting run say who has the lock and, when that holder is provably gone (its flow run is in a
final state, or its process on this host no longer exists: a crashed or killed run), release the dead holder's
lease at once instead of waiting for it to expire. A holder that vanishes without a trace elsewhere frees the
lock when its lease expires (LEASE_SECONDS, the server's minimum; the live holder renews it).

(Prefect rejects '/' in limit names, hence ':' between region and cluster.)"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from prefect import get_run_logger
from prefect.runtime import flow_run

from tasks.errors import PermanentError
from tasks.model import Stack
from tasks.processes import pid_alive

LEASE_SECONDS = 60.0  # the Prefect server's minimum lease
RENEW_EVERY_SECONDS = 15.0
RETRY_SECONDS = 1.0
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def lock_name(stack: Stack) -> str:
    return f"cluster:{stack.cluster.region}:{stack.cluster.name}"


def holder_variable(name: str) -> str:
    return "eks-cilium-lock-" + re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")


@dataclass(frozen=True)
class HolderFacts:
    """What a waiting run knows about the recorded holder of a lock."""

    record: dict[str, Any]
    my_host: str
    pid_alive: bool | None  # None: the holder runs on another host (cannot tell)
    run_state: str | None  # the holder flow run's state type, None when unknown


@dataclass(frozen=True)
class Gone:
    """Why a recorded holder cannot still hold the lock: its process ended ("process") or its run did ("run")."""

    kind: Literal["process", "run"]
    reason: str


def holder_gone(facts: HolderFacts) -> Gone | None:
    """Why the recorded holder can no longer be holding the lock, or None when it may still be alive."""
    rec = facts.record
    if not rec.get("lease_id"):
        return None
    if rec.get("host") == facts.my_host and facts.pid_alive is False:
        return Gone("process", f"its process {rec.get('pid')} on {rec.get('host')} no longer exists")
    if facts.run_state in FINAL_STATES:
        return Gone("run", f"its flow run is {facts.run_state.lower()}")
    return None


def ensure_limit(name: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another run created it meanwhile
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


def _try_acquire(client: Any, name: str, holder: Any) -> UUID | None:
    import httpx

    # No client-side timeout: on a busy server this call can take seconds (the client retries 503s itself), and a
    # request we gave up on may still be granted, leaving a lease nobody renews or releases for LEASE_SECONDS.
    try:
        response = client.increment_concurrency_slots_with_lease(names=[name], slots=1, mode="concurrency",
                                                                 lease_duration=LEASE_SECONDS, holder=holder)
    except httpx.HTTPStatusError as e:
        if e.response.status_code == 423:  # all slots taken
            return None
        raise
    return UUID(response.json()["lease_id"])


def _facts(client: Any, record: dict[str, Any]) -> HolderFacts:
    host = socket.gethostname()
    alive = pid_alive(int(record["pid"])) if record.get("host") == host and record.get("pid") else None
    state = None
    if record.get("flow_run_id"):
        with contextlib.suppress(Exception):  # an unknown or deleted run tells nothing
            run = client.read_flow_run(UUID(record["flow_run_id"]))
            state = run.state.type.value if run.state else None
    return HolderFacts(record=record, my_host=host, pid_alive=alive, run_state=state)


def _take_over(client: Any, record: dict[str, Any], gone: Gone, me: str, logger: Any) -> None:
    """Release a dead holder's lease; mark its still-running flow run Crashed so the UI tells the truth."""
    from prefect.states import Crashed

    logger.warning("the lock's holder %s is gone (%s): releasing its lease", record.get("holder"), gone.reason)
    with contextlib.suppress(Exception):  # already expired or released by another waiter
        client.release_concurrency_slots_with_lease(UUID(record["lease_id"]))
    run_id = record.get("flow_run_id")
    if run_id and gone.kind == "process":  # a run that ended on its own already shows its final state
        with contextlib.suppress(Exception):
            run = client.read_flow_run(UUID(run_id))
            if run.state and run.state.type.value not in FINAL_STATES:
                client.set_flow_run_state(UUID(run_id), Crashed(message=f"process gone ({gone.reason}); lock taken over by {me}"),
                                          force=True)


def _renew(lease_id: UUID, stop: threading.Event, logger: Any) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        while not stop.wait(RENEW_EVERY_SECONDS):
            try:
                client.renew_concurrency_lease(lease_id=lease_id, lease_duration=LEASE_SECONDS)
            except Exception as e:  # transient: the lease outlives several missed renewals
                logger.warning("could not renew the cluster lock's lease (will retry): %s", e)


@contextmanager
def cluster_lock(stack: Stack, wait_seconds: float) -> Iterator[None]:
    """Hold the cluster's lock for the block; after `wait_seconds` fail naming the run that holds it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.variables import Variable

    name = lock_name(stack)
    logger = get_run_logger()
    ensure_limit(name)
    var = holder_variable(name)
    run_id = flow_run.get_id()
    me = f"{flow_run.get_flow_name() or 'flow'}/{flow_run.get_name() or '?'} ({run_id or 'no id'})"
    holder = ConcurrencyLeaseHolder(type="flow_run", id=UUID(run_id)) if run_id else None
    deadline = time.monotonic() + wait_seconds
    announced = False
    with get_client(sync_client=True) as client:
        while (lease_id := _try_acquire(client, name, holder)) is None:
            held: Any = Variable.get(var, default=None) or {}
            record = held if isinstance(held, dict) else {}
            gone = holder_gone(_facts(client, record))
            if gone:
                _take_over(client, record, gone, me, logger)
                continue
            if time.monotonic() >= deadline:
                raise PermanentError(
                    f"cluster {stack.cluster.name} ({stack.cluster.region}) is being changed by another run; gave up after {wait_seconds:.0f} s",
                    observed=f"lock {name} is held by {record.get('holder') or 'an unknown run'}",
                    hint="wait for that run to finish (or cancel it in the Prefect UI), then run again; raise lock_wait_seconds to queue instead",
                )
            if not announced:
                logger.info("waiting for the lock %s, held by %s (up to %.0f s)", name, record.get("holder") or "another run", wait_seconds)
                announced = True
            time.sleep(min(RETRY_SECONDS, max(0.0, deadline - time.monotonic())))

        Variable.set(var, {"holder": me, "flow_run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(),
                           "lease_id": str(lease_id), "since": time.time()}, overwrite=True)
        logger.info("holding the lock %s", name)
        stop = threading.Event()
        # The thread needs this run's Prefect settings (API URL) and logger context.
        renewer = threading.Thread(target=contextvars.copy_context().run, args=(_renew, lease_id, stop, logger),
                                   name="cluster-lock-lease", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join(timeout=5)
            Variable.set(var, {"holder": None, "since": time.time()}, overwrite=True)
            try:
                client.release_concurrency_slots_with_lease(lease_id)
            except Exception as e:
                logger.warning("could not release the cluster lock %s (it expires within %.0f s): %s", name, LEASE_SECONDS, e)
