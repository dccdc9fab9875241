"""What every simulated controller shares: resource keys, the clock, timers, the event recorder, pod creation
and the scheduling predicates."""

from __future__ import annotations

import copy
import hashlib
import json
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sandbox.kube.controllers.config import SimConfig
from sandbox.kube.controllers.events import EventRecorder
from sandbox.kube.objects import Obj, Objects, controlled_by, owner_ref
from sandbox.kube.registry import Registry
from sandbox.kube.store import Store, now_iso

K_NS, K_NODE, K_POD, K_EVENT, K_SECRET = (
    ("", "namespaces"),
    ("", "nodes"),
    ("", "pods"),
    ("", "events"),
    ("", "secrets"),
)
K_DEPLOY, K_RS, K_DS, K_STS = (
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "daemonsets"),
    ("apps", "statefulsets"),
)
K_JOB = ("batch", "jobs")
PULL_LOG_CAP = 2000


class Clock:
    """Real time; the unit tests pass a clock they move by hand."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def iso(self) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time()))


class ManualClock(Clock):
    """A clock that moves only when told to (`advance`): deterministic simulations and the unit tests."""

    def __init__(self, wall: float = 1_700_000_000.0, mono: float = 1_000.0) -> None:
        self.wall, self.mono = wall, mono

    def monotonic(self) -> float:
        return self.mono

    def time(self) -> float:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@dataclass
class Context:
    """One cluster's simulation state, handed to every controller."""

    objects: Objects
    config: SimConfig = field(default_factory=SimConfig)
    clock: Clock = field(default_factory=Clock)
    timers: dict[str, float] = field(default_factory=dict)  # "[kind:]id" -> monotonic time something may progress
    # (wall time, namespace, pod, image pull delay): what the benchmarks' critical path is computed from.
    pulls: deque[tuple[float, str, str, float]] = field(default_factory=lambda: deque(maxlen=PULL_LOG_CAP))

    def __post_init__(self) -> None:
        self.events = EventRecorder(self.objects)

    @classmethod
    def fresh(cls, config: SimConfig | None = None, clock: Clock | None = None) -> Context:
        """A new cluster of its own (store, registry, initial namespaces), without the HTTP server."""
        return cls(Objects(Store(), Registry()).bootstrap(), config or SimConfig(), clock or Clock())

    @property
    def store(self) -> Store:
        return self.objects.store

    def owned(self, key: tuple[str, str], owner: Obj) -> list[Obj]:
        return controlled_by(self.store, key, owner)

    def delete(self, key: tuple[str, str], obj: Obj) -> None:
        self.store.delete(key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])

    def new_pod(
        self,
        template: Obj,
        owner: Obj,
        owner_kind: tuple[str, str],
        name: str,
        extra_labels: dict[str, str] | None = None,
        node: str | None = None,
        extra_tolerations: list[dict[str, Any]] | None = None,
    ) -> Obj:
        """Create a Pod from a template, controlled by `owner` ((apiVersion, kind) of the owner)."""
        tpl = copy.deepcopy(template)
        meta = tpl.get("metadata") or {}
        meta = {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": {**(meta.get("labels") or {}), **(extra_labels or {})},
            "annotations": meta.get("annotations") or {},
            "ownerReferences": [owner_ref(owner, *owner_kind)],
        }
        spec = tpl.get("spec") or {}
        if node:
            spec["nodeName"] = node
        if extra_tolerations:
            own = spec.get("tolerations") or []
            spec["tolerations"] = own + [t for t in extra_tolerations if t not in own]
        return self.objects.create_kind("v1", "Pod", {"metadata": meta, "spec": spec}, owner["metadata"]["namespace"])


class Controller:
    """A controller of one kind: `sync` each object of `key` in a pass; `status` each in the status pass."""

    key: tuple[str, str] = ("", "")

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self) -> None:
        for obj in list(self.ctx.store.list(self.key)):
            self.sync(obj)

    def update_status(self) -> None:
        for obj in list(self.ctx.store.list(self.key)):
            self.status(obj)

    def sync(self, obj: Obj) -> None:
        raise NotImplementedError

    def status(self, obj: Obj) -> None:
        raise NotImplementedError


def spec_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


def suffix() -> str:
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))


def cond(type_: str, status: str, reason: str = "", message: str = "", **extra: Any) -> dict[str, Any]:
    c = {"type": type_, "status": status, "lastTransitionTime": now_iso(), **extra}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def labels_of(obj: Obj) -> dict[str, str]:
    return obj["metadata"].get("labels") or {}


def _ready(obj: Obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in obj.get("status", {}).get("conditions") or [])


def pod_ready(pod: Obj) -> bool:
    return pod.get("status", {}).get("phase") == "Running" and _ready(pod)


def node_ready(node: Obj) -> bool:
    return _ready(node)


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for t in tolerations or []:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("operator") == "Exists":
            if not t.get("key") or t.get("key") == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def schedulable_on(pod_spec: dict[str, Any], node: Obj) -> tuple[bool, str]:
    """Whether the pod fits the node by node selector and taints, else why not (the scheduler's wording)."""
    node_labels = labels_of(node)
    if not all(node_labels.get(k) == v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False, "didn't match Pod's node affinity/selector"
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(
            pod_spec.get("tolerations") or [], taint
        ):
            return False, f"had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
    return True, ""
