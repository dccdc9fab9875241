"""One mutating run per cluster: a Prefect global concurrency limit named `cluster:<region>:<name>`, created
when missing, plus a Prefect Variable naming the run that holds it (so a waiting run can say who has it).

(Prefect rejects '/' in limit names, hence ':' between region and cluster.)"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import get_run_logger
from prefect.concurrency.sync import concurrency
from prefect.runtime import flow_run

from tasks.errors import PermanentError
from tasks.model import Stack


def lock_name(stack: Stack) -> str:
    return f"cluster:{stack.cluster.region}:{stack.cluster.name}"


def _holder_variable(name: str) -> str:
    return "eks-cilium-lock-" + re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")


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


@contextmanager
def cluster_lock(stack: Stack, wait_seconds: float) -> Iterator[None]:
    """Hold the cluster's lock for the block; after `wait_seconds` fail naming the run that holds it."""
    from prefect.variables import Variable

    name = lock_name(stack)
    logger = get_run_logger()
    ensure_limit(name)
    var = _holder_variable(name)
    me = f"{flow_run.get_flow_name() or 'flow'}/{flow_run.get_name() or '?'} ({flow_run.get_id() or 'no id'})"
    logger.info("waiting for the lock %s (up to %.0f s)", name, wait_seconds)
    try:
        with concurrency(name, occupy=1, timeout_seconds=wait_seconds, strict=True):
            Variable.set(var, {"holder": me, "since": time.time()}, overwrite=True)
            logger.info("holding the lock %s", name)
            try:
                yield
            finally:
                Variable.set(var, {"holder": None, "since": time.time()}, overwrite=True)
    except TimeoutError:
        held: Any = Variable.get(var, default=None) or {}
        holder = held.get("holder") if isinstance(held, dict) else None
        raise PermanentError(
            f"cluster {stack.cluster.name} ({stack.cluster.region}) is being changed by another run; gave up after {wait_seconds:.0f} s",
            observed=f"lock {name} is held by {holder or 'an unknown run'}",
            hint="wait for that run to finish (or cancel it in the Prefect UI), then run again; raise lock_wait_seconds to queue instead",
        ) from None
