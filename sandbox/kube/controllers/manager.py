"""The controller manager: runs every simulated controller, the scheduler, the kubelets and node lifecycle in
one pass, in a fixed order, whenever the store changes or a timer is due."""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from sandbox.kube.controllers.base import K_JOB, K_NODE, K_POD, Clock, Context
from sandbox.kube.controllers.config import NodegroupSource, SimConfig
from sandbox.kube.controllers.daemonset import DaemonSetController
from sandbox.kube.controllers.deployment import DeploymentController
from sandbox.kube.controllers.gc import GarbageCollector
from sandbox.kube.controllers.job import JobController
from sandbox.kube.controllers.kubelet import Kubelet
from sandbox.kube.controllers.namespace import NamespaceController
from sandbox.kube.controllers.nodelifecycle import NodeLifecycle
from sandbox.kube.controllers.replicaset import ReplicaSetController
from sandbox.kube.controllers.scheduler import Scheduler
from sandbox.kube.controllers.statefulset import StatefulSetController
from sandbox.kube.controllers.ttl import TtlAfterFinishedController
from sandbox.kube.objects import Objects

PRUNE_EVERY = 100  # passes
IDLE_WAKEUP = 1.0
NODEGROUP_POLL = 0.1
MIN_WAKEUP = 0.005


class Cluster(Protocol):
    """What the controllers need of the emulator: its objects and a log for their own errors."""

    objects: Objects
    request_log: deque[dict[str, Any]]


class Controllers:
    def __init__(
        self,
        emu: Cluster,
        config: SimConfig | None = None,
        nodegroups: NodegroupSource | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.emu = emu
        self.ctx = Context(emu.objects, config or SimConfig(), clock or Clock())
        self.store = self.ctx.store
        self.nodes = NodeLifecycle(self.ctx, nodegroups)
        self.namespaces = NamespaceController(self.ctx)
        self.gc = GarbageCollector(self.ctx)
        self.deployments = DeploymentController(self.ctx)
        self.replicasets = ReplicaSetController(self.ctx)
        self.daemonsets = DaemonSetController(self.ctx)
        self.statefulsets = StatefulSetController(self.ctx)
        self.jobs = JobController(self.ctx)
        self.scheduler = Scheduler(self.ctx)
        self.kubelet = Kubelet(self.ctx)
        self.ttl = TtlAfterFinishedController(self.ctx)
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self.on_reconciled: Callable[[], None] | None = None

    @property
    def config(self) -> SimConfig:
        return self.ctx.config

    @property
    def timers(self) -> dict[str, float]:
        return self.ctx.timers

    @property
    def pulls(self) -> deque[tuple[float, str, str, float]]:
        return self.ctx.pulls

    # ---- loop ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.store.changed.wait(), timeout=self._next_wakeup())
            self.store.changed.clear()
            try:
                self.reconcile()
            except Exception as e:  # a controller bug must not kill the emulator; it is logged and retried
                traceback.print_exc()
                self.emu.request_log.append({"t": time.time(), "controller_error": repr(e)})
            await asyncio.sleep(0)

    def _next_wakeup(self) -> float:
        now = self.ctx.clock.monotonic()
        pending = [t - now for t in self.timers.values() if t > now]
        wake = min(pending) if pending else IDLE_WAKEUP
        if self.nodes.nodegroups is not None:
            wake = min(wake, NODEGROUP_POLL)
        return max(MIN_WAKEUP, min(wake, IDLE_WAKEUP))

    def reconcile(self) -> None:
        """One pass of everything, in the order the simulation's behaviour depends on."""
        self.passes += 1
        self.nodes.sync_nodes()
        self.namespaces.reconcile()
        self.gc.reconcile()
        self.deployments.reconcile()
        self.replicasets.reconcile()
        self.daemonsets.reconcile()
        self.statefulsets.reconcile()
        self.jobs.reconcile()
        self.scheduler.reconcile()
        self.kubelet.reconcile()
        self.nodes.update_conditions()
        self.deployments.update_status()
        self.daemonsets.update_status()
        self.ttl.reconcile()
        if self.passes % PRUNE_EVERY == 0:
            self.prune_timers()
        if self.on_reconciled is not None:
            self.on_reconciled()

    def prune_timers(self) -> None:
        """Forget the timers of pods, Jobs and nodes that no longer exist (a long-running sandbox must not grow)."""
        live = {o["metadata"]["uid"] for key in (K_POD, K_JOB) for o in self.store.list(key)}
        nodes = {n["metadata"]["name"] for n in self.store.list(K_NODE)}
        for key in list(self.timers):
            kind, _, ident = key.rpartition(":")
            if (ident not in nodes) if kind == "node-ready" else (ident not in live):
                del self.timers[key]
