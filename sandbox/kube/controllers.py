"""Simulated controllers, scheduler and kubelet, running in the emulator's loop.

Deployments -> ReplicaSets -> Pods, DaemonSets -> one Pod per eligible node, StatefulSets, Jobs -> Pod ->
Complete, owner-reference garbage collection, namespace deletion. Nodes come from the (moto) nodegroups,
start NotReady ("cni plugin not initialized") and turn Ready only when a Cilium agent Pod runs on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.kube.store import now_iso

if TYPE_CHECKING:
    from sandbox.kube.server import Emulator

NOT_READY_MSG = (
    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
    "message:Network plugin returns error: cni plugin not initialized"
)
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
AGENT_NOT_READY_TAINT = "node.cilium.io/agent-not-ready"
DS_DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]

K_NS, K_NODE, K_POD, K_EVENT = ("", "namespaces"), ("", "nodes"), ("", "pods"), ("", "events")
K_DEPLOY, K_RS, K_DS, K_STS = (
    ("apps", "deployments"),
    ("apps", "replicasets"),
    ("apps", "daemonsets"),
    ("apps", "statefulsets"),
)
CREATES_SECRETS = "sandbox.eks-cilium.dev/creates-secrets"
K_JOB, K_CRONJOB = ("batch", "jobs"), ("batch", "cronjobs")


@dataclass
class PodPolicy:
    """Fault injection for pods: those matching `selector` (and `namespace`) crash-loop or stay Pending."""

    selector: dict[str, str]
    mode: str  # "crashloop" | "pending"
    namespace: str | None = None
    message: str = "injected fault"
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def matches(self, pod: dict[str, Any]) -> bool:
        labels = pod["metadata"].get("labels") or {}
        return self.namespace in (None, pod["metadata"].get("namespace")) and all(
            labels.get(k) == v for k, v in self.selector.items()
        )


@dataclass
class SimConfig:
    """Delays (seconds) that make the simulation realistic when asked; instant by default."""

    pod_start_seconds: tuple[float, float] = (0.0, 0.0)  # image pull + start, uniform in [min, max]
    # With a seed, a pod's pull time is a function of (seed, image, node) instead of a fresh draw: two runs of
    # different orchestrations see the same delays (the benchmarks compare them), as a real node would.
    pull_seed: int | None = None
    job_run_seconds: float = 0.0
    node_join_seconds: float = 0.0  # nodegroup created -> node objects registered
    node_ready_seconds: float = 0.0  # agent running -> node Ready
    agent_selector: dict[str, str] = field(default_factory=lambda: {"k8s-app": "cilium"})
    pod_policies: list[PodPolicy] = field(default_factory=list)


@dataclass
class NodegroupView:
    """What the emulator needs to know about one nodegroup of the cluster (from the AWS side)."""

    name: str
    desired: int
    instance_type: str
    labels: dict[str, str]
    taints: list[dict[str, str]]
    created_at: float
    zones: list[str] = field(default_factory=lambda: ["us-east-1a", "us-east-1b"])


NodegroupSource = Callable[[], list[NodegroupView]]


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]


def _suffix() -> str:
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))


def _cond(type_: str, status: str, reason: str = "", message: str = "", **extra: Any) -> dict[str, Any]:
    c = {"type": type_, "status": status, "lastTransitionTime": now_iso(), **extra}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


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


def node_ready(node: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions") or [])


def _node_selector_ok(pod_spec: dict[str, Any], node: dict[str, Any]) -> bool:
    labels = node["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in (pod_spec.get("nodeSelector") or {}).items())


def schedulable_on(pod_spec: dict[str, Any], node: dict[str, Any]) -> tuple[bool, str]:
    if not _node_selector_ok(pod_spec, node):
        return False, "didn't match Pod's node affinity/selector"
    for taint in node.get("spec", {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(
            pod_spec.get("tolerations") or [], taint
        ):
            return False, f"had untolerated taint {{{taint['key']}: {taint.get('value', '')}}}"
    return True, ""


class Controllers:
    def __init__(
        self, emu: Emulator, config: SimConfig | None = None, nodegroups: NodegroupSource | None = None
    ) -> None:
        self.emu = emu
        self.store = emu.store
        self.config = config or SimConfig()
        self.nodegroups = nodegroups
        self.timers: dict[str, float] = {}  # uid -> monotonic time when the pod may progress
        # (wall time, namespace, pod, image pull delay): what the benchmarks' critical path is computed from.
        self.pulls: deque[tuple[float, str, str, float]] = deque(maxlen=2000)
        self.node_seq = 0
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self.on_reconciled: Callable[[], None] | None = None

    # ---- loop ---------------------------------------------------------------------------------------
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
                import traceback

                traceback.print_exc()
                self.emu.request_log.append({"t": time.time(), "controller_error": repr(e)})
            await asyncio.sleep(0)

    def _next_wakeup(self) -> float:
        now = time.monotonic()
        pending = [t - now for t in self.timers.values() if t > now]
        wake = min(pending) if pending else 1.0
        if self.nodegroups is not None:
            wake = min(wake, 0.1)
        return max(0.005, min(wake, 1.0))

    def reconcile(self) -> None:
        self.passes += 1
        self._sync_nodes()
        self._namespaces()
        self._garbage_collect()
        for d in list(self.store.list(K_DEPLOY)):
            self._deployment(d)
        for rs in list(self.store.list(K_RS)):
            self._replicaset(rs)
        for ds in list(self.store.list(K_DS)):
            self._daemonset(ds)
        for sts in list(self.store.list(K_STS)):
            self._statefulset(sts)
        for job in list(self.store.list(K_JOB)):
            self._job(job)
        self._schedule()
        self._kubelet()
        self._node_conditions()
        for d in list(self.store.list(K_DEPLOY)):
            self._deployment_status(d)
        for ds in list(self.store.list(K_DS)):
            self._daemonset_status(ds)
        self._ttl()
        if self.passes % 100 == 0:
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

    # ---- helpers ----------------------------------------------------------------------------------------
    def _put(self, key: tuple[str, str], new: dict[str, Any]) -> None:
        live = self.store.get(key, new["metadata"].get("namespace", ""), new["metadata"]["name"])
        if live is not None and live != new:
            self.store.update(key, new, bump_generation=False)

    def _set_status(self, key: tuple[str, str], obj: dict[str, Any], status: dict[str, Any]) -> None:
        if obj.get("status") != status:
            new = copy.deepcopy(obj)
            new["status"] = status
            self.store.update(key, new, bump_generation=False)

    def _owned(self, key: tuple[str, str], owner: dict[str, Any]) -> list[dict[str, Any]]:
        uid = owner["metadata"]["uid"]
        return [
            o
            for o in self.store.list(key, owner["metadata"].get("namespace"))
            if any(r.get("uid") == uid and r.get("controller") for r in o["metadata"].get("ownerReferences") or [])
        ]

    @staticmethod
    def _owner_ref(owner: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
        return {
            "apiVersion": api_version,
            "kind": kind,
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def event(self, obj: dict[str, Any], kind: str, reason: str, message: str, type_: str = "Normal") -> None:
        ns = obj["metadata"].get("namespace") or "default"
        name = f"{obj['metadata']['name']}.{uuid.uuid4().hex[:16]}"
        # Events repeat: keep one per (object, reason) and bump its count, like the real event recorder.
        for ev in self.store.list(K_EVENT, ns):
            io = ev.get("involvedObject", {})
            if (
                io.get("uid") == obj["metadata"].get("uid")
                and ev.get("reason") == reason
                and ev.get("message") == message
            ):
                new = copy.deepcopy(ev)
                new["count"] = int(ev.get("count", 1)) + 1
                new["lastTimestamp"] = now_iso()
                self.store.update(K_EVENT, new, bump_generation=False)
                return
        if not self.emu.namespace_exists(ns):
            return
        self.store.create(
            K_EVENT,
            {
                "metadata": {"name": name, "namespace": ns},
                "involvedObject": {
                    "kind": kind,
                    "namespace": obj["metadata"].get("namespace", ""),
                    "name": obj["metadata"]["name"],
                    "uid": obj["metadata"].get("uid", ""),
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "count": 1,
                "source": {"component": "sandbox"},
                "firstTimestamp": now_iso(),
                "lastTimestamp": now_iso(),
                "reportingComponent": "sandbox",
            },
        )

    def _new_pod(
        self,
        template: dict[str, Any],
        owner: dict[str, Any],
        owner_api: str,
        owner_kind: str,
        name: str,
        extra_labels: dict[str, str] | None = None,
        node: str | None = None,
        extra_tolerations: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        tpl = copy.deepcopy(template)
        meta = tpl.get("metadata") or {}
        meta = {
            "name": name,
            "namespace": owner["metadata"]["namespace"],
            "labels": {**(meta.get("labels") or {}), **(extra_labels or {})},
            "annotations": meta.get("annotations") or {},
            "ownerReferences": [self._owner_ref(owner, owner_api, owner_kind)],
        }
        spec = tpl.get("spec") or {}
        if node:
            spec["nodeName"] = node
        if extra_tolerations:
            spec["tolerations"] = (spec.get("tolerations") or []) + [
                t for t in extra_tolerations if t not in (spec.get("tolerations") or [])
            ]
        pod = {"metadata": meta, "spec": spec}
        rt = self.emu.registry.by_kind("v1", "Pod")
        assert rt is not None
        return self.emu.create_object(rt, pod, owner["metadata"]["namespace"])

    # ---- nodes --------------------------------------------------------------------------------------------
    def _sync_nodes(self) -> None:
        if self.nodegroups is None:
            return
        groups = {g.name: g for g in self.nodegroups()}
        nodes = self.store.list(K_NODE)
        by_group: dict[str, list[dict[str, Any]]] = {}
        for n in nodes:
            g = (n["metadata"].get("labels") or {}).get("eks.amazonaws.com/nodegroup")
            if g:
                by_group.setdefault(g, []).append(n)
        for gname, members in by_group.items():
            want = groups[gname].desired if gname in groups else 0
            for n in sorted(members, key=lambda n: n["metadata"]["creationTimestamp"], reverse=True)[
                : max(0, len(members) - want)
            ]:
                self._delete_node(n)
        now = time.time()
        for g in groups.values():
            have = len(by_group.get(g.name, []))
            if have >= g.desired or now - g.created_at < self.config.node_join_seconds:
                continue
            for _ in range(g.desired - have):
                self._register_node(g)

    def _register_node(self, g: NodegroupView) -> None:
        self.node_seq += 1
        n = self.node_seq
        zone = g.zones[n % len(g.zones)]
        name = f"ip-10-0-{(n % 2) * 64 + 10}-{n + 20}.ec2.internal"
        taints = [{"key": NOT_READY_TAINT, "effect": "NoSchedule"}, {"key": NOT_READY_TAINT, "effect": "NoExecute"}]
        effect = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
        for t in g.taints:
            taints.append(
                {
                    "key": t["key"],
                    "value": t.get("value", ""),
                    "effect": effect.get(t.get("effect", ""), t.get("effect", "")),
                }
            )
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": g.instance_type,
            "topology.kubernetes.io/zone": zone,
            "topology.kubernetes.io/region": zone[:-1],
            "eks.amazonaws.com/nodegroup": g.name,
            "eks.amazonaws.com/capacityType": "ON_DEMAND",
            **g.labels,
        }
        ts = now_iso()
        node = {
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": {
                    "node.alpha.kubernetes.io/ttl": "0",
                    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                },
            },
            "spec": {"providerID": f"aws:///{zone}/i-{uuid.uuid4().hex[:17]}", "taints": taints},
            "status": {
                "conditions": [
                    _cond(
                        "MemoryPressure",
                        "False",
                        "KubeletHasSufficientMemory",
                        "kubelet has sufficient memory available",
                        lastHeartbeatTime=ts,
                    ),
                    _cond(
                        "DiskPressure",
                        "False",
                        "KubeletHasNoDiskPressure",
                        "kubelet has no disk pressure",
                        lastHeartbeatTime=ts,
                    ),
                    _cond(
                        "PIDPressure",
                        "False",
                        "KubeletHasSufficientPID",
                        "kubelet has sufficient PID available",
                        lastHeartbeatTime=ts,
                    ),
                    _cond("Ready", "False", "KubeletNotReady", NOT_READY_MSG, lastHeartbeatTime=ts),
                ],
                "addresses": [
                    {"type": "InternalIP", "address": f"10.0.{(n % 2) * 64 + 10}.{n + 20}"},
                    {"type": "Hostname", "address": name},
                    {"type": "InternalDNS", "address": name},
                ],
                "capacity": {"cpu": "4", "memory": "15896988Ki", "pods": "110", "ephemeral-storage": "83873772Ki"},
                "allocatable": {
                    "cpu": "3920m",
                    "memory": "15136156Ki",
                    "pods": "110",
                    "ephemeral-storage": "76224326324",
                },
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": str(uuid.uuid4()),
                    "containerRuntimeVersion": "containerd://1.7.27",
                    "kernelVersion": "6.1.134-152.225.amzn2023.x86_64",
                    "kubeProxyVersion": "",
                    "kubeletVersion": "v1.33.5-eks-sandbox",
                    "machineID": uuid.uuid4().hex,
                    "operatingSystem": "linux",
                    "osImage": "Amazon Linux 2023.7.20250512",
                    "systemUUID": str(uuid.uuid4()),
                },
            },
        }
        rt = self.emu.registry.by_kind("v1", "Node")
        assert rt is not None
        self.emu.create_object(rt, node, None)

    def _delete_node(self, node: dict[str, Any]) -> None:
        name = node["metadata"]["name"]
        self.store.delete(K_NODE, "", name)
        for p in self.store.list(K_POD):
            if p.get("spec", {}).get("nodeName") == name:
                self.store.delete(K_POD, p["metadata"]["namespace"], p["metadata"]["name"])

    def _node_conditions(self) -> None:
        agent = self.config.agent_selector
        running_on = {
            p["spec"].get("nodeName")
            for p in self.store.list(K_POD)
            if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in agent.items())
            and p.get("status", {}).get("phase") == "Running"
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])
        }
        now = time.monotonic()
        for node in self.store.list(K_NODE):
            name = node["metadata"]["name"]
            want_ready = name in running_on
            if want_ready and self.config.node_ready_seconds:
                due = self.timers.setdefault("node-ready:" + name, now + self.config.node_ready_seconds)
                want_ready = now >= due
            elif not want_ready:
                self.timers.pop("node-ready:" + name, None)
            if want_ready == node_ready(node):
                continue
            new = copy.deepcopy(node)
            conds = [c for c in new["status"]["conditions"] if c["type"] != "Ready"]
            ts = now_iso()
            if want_ready:
                conds.append(
                    _cond("Ready", "True", "KubeletReady", "kubelet is posting ready status", lastHeartbeatTime=ts)
                )
                # The node lifecycle controller lifts not-ready; Cilium's operator lifts its agent-not-ready taint.
                new["spec"]["taints"] = [
                    t
                    for t in new["spec"].get("taints") or []
                    if t["key"] not in (NOT_READY_TAINT, AGENT_NOT_READY_TAINT)
                ]
            else:
                conds.append(_cond("Ready", "False", "KubeletNotReady", NOT_READY_MSG, lastHeartbeatTime=ts))
                taints = new["spec"].get("taints") or []
                for eff in ("NoSchedule", "NoExecute"):
                    if not any(t["key"] == NOT_READY_TAINT and t["effect"] == eff for t in taints):
                        taints.append({"key": NOT_READY_TAINT, "effect": eff})
                new["spec"]["taints"] = taints
            new["status"]["conditions"] = conds
            self.store.update(K_NODE, new, bump_generation=False)

    # ---- namespaces and GC --------------------------------------------------------------------------------
    def _namespaces(self) -> None:
        for ns in self.store.list(K_NS):
            if ns.get("status", {}).get("phase") != "Terminating":
                continue
            name = ns["metadata"]["name"]
            remaining = 0
            for key, bucket in list(self.store.objects.items()):
                for o in list(bucket.values()):
                    if o["metadata"].get("namespace") == name:
                        self.store.delete(key, name, o["metadata"]["name"])
                        remaining += 1
            if remaining == 0:
                self.store.delete(K_NS, "", name)

    def _garbage_collect(self) -> None:
        uids = self.store.uids()
        for key, bucket in list(self.store.objects.items()):
            for o in list(bucket.values()):
                refs = o["metadata"].get("ownerReferences") or []
                if refs and not any(r.get("uid") in uids for r in refs):
                    self.store.delete(key, o["metadata"].get("namespace", ""), o["metadata"]["name"])

    def _ttl(self) -> None:
        now = time.time()
        import calendar

        for job in self.store.list(K_JOB):
            ttl = job.get("spec", {}).get("ttlSecondsAfterFinished")
            done = job.get("status", {}).get("completionTime")
            if ttl is None or not done:
                continue
            finished = calendar.timegm(time.strptime(done, "%Y-%m-%dT%H:%M:%SZ"))
            if now - finished >= ttl:
                self.store.delete(K_JOB, job["metadata"]["namespace"], job["metadata"]["name"])
            else:
                self.timers["ttl:" + job["metadata"]["uid"]] = time.monotonic() + (finished + ttl - now)

    # ---- workloads ---------------------------------------------------------------------------------------
    def _deployment(self, d: dict[str, Any]) -> None:
        spec = d.get("spec", {})
        tpl = spec.get("template", {})
        h = _hash(tpl)
        owned = self._owned(K_RS, d)
        current = next((rs for rs in owned if (rs["metadata"].get("labels") or {}).get("pod-template-hash") == h), None)
        replicas = int(spec.get("replicas", 1))
        if current is None:
            rs_tpl = copy.deepcopy(tpl)
            rs_tpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
            sel = copy.deepcopy(spec.get("selector") or {"matchLabels": {}})
            sel.setdefault("matchLabels", {})["pod-template-hash"] = h
            rs = {
                "metadata": {
                    "name": f"{d['metadata']['name']}-{h}",
                    "namespace": d["metadata"]["namespace"],
                    "labels": {**(tpl.get("metadata", {}).get("labels") or {}), "pod-template-hash": h},
                    "annotations": {
                        "deployment.kubernetes.io/revision": str(len(owned) + 1),
                        "deployment.kubernetes.io/desired-replicas": str(replicas),
                    },
                    "ownerReferences": [self._owner_ref(d, "apps/v1", "Deployment")],
                },
                "spec": {"replicas": replicas, "selector": sel, "template": rs_tpl},
            }
            rt = self.emu.registry.by_kind("apps/v1", "ReplicaSet")
            assert rt is not None
            self.emu.create_object(rt, rs, d["metadata"]["namespace"])
            self.event(
                d,
                "Deployment",
                "ScalingReplicaSet",
                f"Scaled up replica set {rs['metadata']['name']} from 0 to {replicas}",
            )
        elif current["spec"].get("replicas") != replicas:
            new = copy.deepcopy(current)
            new["spec"]["replicas"] = replicas
            self.store.update(K_RS, new, bump_generation=True)
        for rs in owned:
            if (
                rs is not current
                and (rs["metadata"].get("labels") or {}).get("pod-template-hash") != h
                and rs["spec"].get("replicas", 0)
            ):
                new = copy.deepcopy(rs)
                new["spec"]["replicas"] = 0
                self.store.update(K_RS, new, bump_generation=True)

    def _replicaset(self, rs: dict[str, Any]) -> None:
        pods = [p for p in self._owned(K_POD, rs) if not p["metadata"].get("deletionTimestamp")]
        want = int(rs["spec"].get("replicas", 1))
        for p in pods[want:]:
            self.store.delete(K_POD, p["metadata"]["namespace"], p["metadata"]["name"])
        for _ in range(want - len(pods)):
            self._new_pod(rs["spec"]["template"], rs, "apps/v1", "ReplicaSet", f"{rs['metadata']['name']}-{_suffix()}")
        pods = self._owned(K_POD, rs)
        ready = sum(1 for p in pods if _pod_ready(p))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        self._set_status(K_RS, rs, status)

    def _deployment_status(self, d: dict[str, Any]) -> None:
        h = _hash(d.get("spec", {}).get("template", {}))
        owned = self._owned(K_RS, d)
        new_rs = next((rs for rs in owned if (rs["metadata"].get("labels") or {}).get("pod-template-hash") == h), None)
        replicas = int(d.get("spec", {}).get("replicas", 1))
        total = sum(int(rs.get("status", {}).get("replicas", 0)) for rs in owned)
        ready = sum(int(rs.get("status", {}).get("readyReplicas", 0)) for rs in owned)
        ns = new_rs.get("status", {}) if new_rs else {}
        updated = int(ns.get("replicas", 0))
        available = sum(int(rs.get("status", {}).get("availableReplicas", 0)) for rs in owned)
        complete = (
            new_rs is not None
            and updated == replicas
            and int(ns.get("availableReplicas", 0)) == replicas
            and total == replicas
        )
        old = {c["type"]: c for c in d.get("status", {}).get("conditions") or []}

        def keep(c: dict[str, Any]) -> dict[str, Any]:
            prev = old.get(c["type"])
            if prev and prev["status"] == c["status"] and prev.get("reason") == c.get("reason"):
                return prev
            return c

        avail_ok = available >= replicas - _max_unavailable(d, replicas)
        conds = [
            keep(
                _cond(
                    "Available",
                    "True" if avail_ok else "False",
                    "MinimumReplicasAvailable" if avail_ok else "MinimumReplicasUnavailable",
                    "Deployment has minimum availability."
                    if avail_ok
                    else "Deployment does not have minimum availability.",
                    lastUpdateTime=now_iso(),
                )
            ),
            keep(
                _cond(
                    "Progressing",
                    "True",
                    "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                    f'ReplicaSet "{new_rs["metadata"]["name"] if new_rs else ""}" '
                    + ("has successfully progressed." if complete else "is progressing."),
                    lastUpdateTime=now_iso(),
                )
            ),
        ]
        status = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": max(0, replicas - available),
            "conditions": conds,
        }
        self._set_status(K_DEPLOY, d, status)

    def _daemonset(self, ds: dict[str, Any]) -> None:
        spec = ds.get("spec", {})
        tpl = spec.get("template", {})
        h = _hash(tpl)
        tpl_spec = tpl.get("spec", {})
        tolerations = list(DS_DEFAULT_TOLERATIONS)
        if tpl_spec.get("hostNetwork"):
            tolerations.append(
                {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}
            )
        eff_spec = {**tpl_spec, "tolerations": (tpl_spec.get("tolerations") or []) + tolerations}
        pods = self._owned(K_POD, ds)
        by_node: dict[str, list[dict[str, Any]]] = {}
        for p in pods:
            by_node.setdefault(p["spec"].get("nodeName", ""), []).append(p)
        for node in self.store.list(K_NODE):
            name = node["metadata"]["name"]
            ok, _ = schedulable_on(eff_spec, node)
            mine = by_node.pop(name, [])
            if not ok:
                for p in mine:
                    self.store.delete(K_POD, p["metadata"]["namespace"], p["metadata"]["name"])
                continue
            stale = [p for p in mine if (p["metadata"].get("labels") or {}).get("controller-revision-hash") != h]
            for p in stale:
                self.store.delete(K_POD, p["metadata"]["namespace"], p["metadata"]["name"])
            if len(mine) - len(stale) == 0:
                self._new_pod(
                    tpl,
                    ds,
                    "apps/v1",
                    "DaemonSet",
                    f"{ds['metadata']['name']}-{_suffix()}",
                    {
                        "controller-revision-hash": h,
                        "pod-template-generation": str(ds["metadata"].get("generation", 1)),
                    },
                    node=name,
                    extra_tolerations=tolerations,
                )
        for leftovers in by_node.values():
            for p in leftovers:
                self.store.delete(K_POD, p["metadata"]["namespace"], p["metadata"]["name"])

    def _daemonset_status(self, ds: dict[str, Any]) -> None:
        h = _hash(ds.get("spec", {}).get("template", {}))
        pods = self._owned(K_POD, ds)
        desired = len({p["spec"].get("nodeName") for p in pods if p["spec"].get("nodeName")})
        ready = sum(1 for p in pods if _pod_ready(p))
        updated = sum(1 for p in pods if (p["metadata"].get("labels") or {}).get("controller-revision-hash") == h)
        status = {
            "currentNumberScheduled": len(pods),
            "desiredNumberScheduled": desired,
            "numberMisscheduled": 0,
            "numberReady": ready,
            "updatedNumberScheduled": updated,
            "numberAvailable": ready,
            "numberUnavailable": max(0, desired - ready),
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
        self._set_status(K_DS, ds, status)

    def _statefulset(self, sts: dict[str, Any]) -> None:
        want = int(sts["spec"].get("replicas", 1))
        h = _hash(sts["spec"].get("template", {}))
        pods = {p["metadata"]["name"]: p for p in self._owned(K_POD, sts)}
        base = sts["metadata"]["name"]
        for i in range(want):
            n = f"{base}-{i}"
            if n in pods and (pods[n]["metadata"].get("labels") or {}).get("controller-revision-hash") != f"{base}-{h}":
                self.store.delete(K_POD, sts["metadata"]["namespace"], n)
                pods.pop(n)
            if n not in pods:
                self._new_pod(
                    sts["spec"]["template"],
                    sts,
                    "apps/v1",
                    "StatefulSet",
                    n,
                    {"controller-revision-hash": f"{base}-{h}", "statefulset.kubernetes.io/pod-name": n},
                )
        for n, p in pods.items():
            if int(n.rsplit("-", 1)[-1]) >= want:
                self.store.delete(K_POD, p["metadata"]["namespace"], n)
        pods_now = self._owned(K_POD, sts)
        ready = sum(1 for p in pods_now if _pod_ready(p))
        status = {
            "replicas": len(pods_now),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": len(pods_now),
            "updatedReplicas": len(pods_now),
            "currentRevision": f"{base}-{h}",
            "updateRevision": f"{base}-{h}",
            "observedGeneration": sts["metadata"].get("generation", 1),
            "collisionCount": 0,
        }
        self._set_status(K_STS, sts, status)

    def _job(self, job: dict[str, Any]) -> None:
        status = copy.deepcopy(job.get("status") or {})
        conds = {c["type"]: c for c in status.get("conditions") or []}
        if conds.get("Complete", {}).get("status") == "True" or conds.get("Failed", {}).get("status") == "True":
            return
        pods = self._owned(K_POD, job)
        succeeded = sum(1 for p in pods if p.get("status", {}).get("phase") == "Succeeded")
        failed = sum(1 for p in pods if p.get("status", {}).get("phase") == "Failed")
        active = [p for p in pods if p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
        spec = job["spec"]
        if spec.get("suspend"):
            return
        status.setdefault("startTime", now_iso())
        if succeeded >= int(spec.get("completions", 1)):
            ts = now_iso()
            status.update(
                {
                    "succeeded": succeeded,
                    "active": 0,
                    "completionTime": ts,
                    "ready": 0,
                    "terminating": 0,
                    "conditions": [
                        _cond(
                            t,
                            "True",
                            "CompletionsReached",
                            "Reached expected number of succeeded pods",
                            lastProbeTime=ts,
                        )
                        for t in ("SuccessCriteriaMet", "Complete")
                    ],
                }
            )
            status.pop("failed", None) if not failed else status.update(failed=failed)
            self._set_status(K_JOB, job, status)
            self.event(job, "Job", "Completed", "Job completed")
            return
        if failed > int(spec.get("backoffLimit", 6)):
            ts = now_iso()
            status.update(
                {
                    "failed": failed,
                    "active": 0,
                    "conditions": [
                        _cond(
                            t,
                            "True",
                            "BackoffLimitExceeded",
                            "Job has reached the specified backoff limit",
                            lastProbeTime=ts,
                        )
                        for t in ("FailureTarget", "Failed")
                    ],
                }
            )
            self._set_status(K_JOB, job, status)
            self.event(job, "Job", "BackoffLimitExceeded", "Job has reached the specified backoff limit", "Warning")
            return
        if not active:
            self._new_pod(spec["template"], job, "batch/v1", "Job", f"{job['metadata']['name']}-{_suffix()}")
            active = self._owned(K_POD, job)
        status.update({"active": len(active), "ready": sum(1 for p in active if _pod_ready(p)), "terminating": 0})
        if failed:
            status["failed"] = failed
        self._set_status(K_JOB, job, status)

    # ---- scheduler and kubelet ----------------------------------------------------------------------------
    def _policy(self, pod: dict[str, Any]) -> PodPolicy | None:
        return next((p for p in self.config.pod_policies if p.matches(pod)), None)

    def _schedule(self) -> None:
        nodes = self.store.list(K_NODE)
        for pod in self.store.list(K_POD):
            spec = pod.get("spec", {})
            if spec.get("nodeName") or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                continue
            policy = self._policy(pod)
            reasons: dict[str, int] = {}
            chosen = None
            if policy is None or policy.mode != "pending":
                counts: dict[str, int] = {}
                for p in self.store.list(K_POD):
                    if p["spec"].get("nodeName"):
                        counts[p["spec"]["nodeName"]] = counts.get(p["spec"]["nodeName"], 0) + 1
                for node in sorted(nodes, key=lambda n: counts.get(n["metadata"]["name"], 0)):
                    ok, why = schedulable_on(spec, node)
                    if ok:
                        chosen = node["metadata"]["name"]
                        break
                    reasons[why] = reasons.get(why, 0) + 1
            if chosen:
                new = copy.deepcopy(pod)
                new["spec"]["nodeName"] = chosen
                new["status"]["conditions"] = [_cond("PodScheduled", "True", lastProbeTime=None)]
                self.store.update(K_POD, new, bump_generation=False)
                self.event(
                    pod,
                    "Pod",
                    "Scheduled",
                    f"Successfully assigned {pod['metadata']['namespace']}/{pod['metadata']['name']} to {chosen}",
                )
                continue
            if policy is not None:
                msg = f"0/{len(nodes)} nodes are available: {policy.message}."
            elif not nodes:
                msg = "no nodes available to schedule pods"
            else:
                msg = (
                    f"0/{len(nodes)} nodes are available: "
                    + ", ".join(f"{c} node(s) {w}" for w, c in sorted(reasons.items()))
                    + "."
                )
            cond = _cond("PodScheduled", "False", "Unschedulable", msg, lastProbeTime=None)
            old = (pod.get("status", {}).get("conditions") or [{}])[0]
            if old.get("message") != msg:
                new = copy.deepcopy(pod)
                new["status"] = {"phase": "Pending", "qosClass": "BestEffort", "conditions": [cond]}
                self.store.update(K_POD, new, bump_generation=False)
                self.event(pod, "Pod", "FailedScheduling", msg, "Warning")

    def _kubelet(self) -> None:
        nodes = {n["metadata"]["name"]: n for n in self.store.list(K_NODE)}
        now = time.monotonic()
        lo, hi = self.config.pod_start_seconds
        for pod in self.store.list(K_POD):
            node_name = pod.get("spec", {}).get("nodeName")
            phase = pod.get("status", {}).get("phase", "Pending")
            uid = pod["metadata"]["uid"]
            if not node_name or phase in ("Succeeded", "Failed"):
                continue
            node = nodes.get(node_name)
            if node is None:
                continue
            spec = pod["spec"]
            containers = spec.get("containers") or []
            if not spec.get("hostNetwork") and not node_ready(node):
                # No CNI on the node yet: the sandbox cannot be created.
                self._pod_status(pod, "Pending", False, waiting=("ContainerCreating", ""), node=node)
                if not self._has_event(pod, "FailedCreatePodSandBox"):
                    self.event(
                        pod,
                        "Pod",
                        "FailedCreatePodSandBox",
                        'Failed to create pod sandbox: plugin type="cilium-cni" failed: unable to '
                        "connect to Cilium agent",
                        "Warning",
                    )
                continue
            missing = self._missing_secrets(pod)
            if missing:
                self._pod_status(pod, "Pending", False, waiting=("ContainerCreating", ""), node=node)
                msg = f'MountVolume.SetUp failed for volume "{missing[0]}" : secret "{missing[1]}" not found'
                if not self._has_event(pod, "FailedMount"):
                    self.event(pod, "Pod", "FailedMount", msg, "Warning")
                continue
            due = self.timers.get(uid)
            if due is None:
                # A pod that already runs pulled its image: only a pod that has not started yet waits for one.
                delay = self._pull_delay(pod, node_name, lo, hi) if hi > 0 and phase != "Running" else 0.0
                due = now + delay
                self.timers[uid] = due
                if delay:
                    self.pulls.append((time.time(), pod["metadata"]["namespace"], pod["metadata"]["name"], delay))
            if now < due:
                self._pod_status(pod, "Pending", False, waiting=("ContainerCreating", ""), node=node)
                continue
            policy = self._policy(pod)
            if policy is not None and policy.mode == "crashloop":
                restarts = int(
                    max(
                        [c.get("restartCount", 0) for c in pod.get("status", {}).get("containerStatuses") or [{}]]
                        or [0]
                    )
                )
                if phase != "Running" or now - due > 0.5 * (restarts + 1):
                    self._pod_status(
                        pod,
                        "Running",
                        False,
                        waiting=("CrashLoopBackOff", f"back-off restarting failed container: {policy.message}"),
                        node=node,
                        restarts=restarts + (1 if phase == "Running" else 0),
                    )
                    if not self._has_event(pod, "BackOff"):
                        first = containers[0]["name"] if containers else ""
                        self.event(
                            pod,
                            "Pod",
                            "BackOff",
                            f"Back-off restarting failed container {first}: {policy.message}",
                            "Warning",
                        )
                    self.timers[uid] = due
                continue
            is_job = any(r.get("kind") == "Job" for r in pod["metadata"].get("ownerReferences") or [])
            if is_job:
                started = self.timers.setdefault("run:" + uid, now)
                if now - started >= self.config.job_run_seconds:
                    self._write_secrets(pod)
                    self._pod_status(pod, "Succeeded", False, node=node, terminated=True)
                    self.timers.pop(uid, None)
                    self.timers.pop("run:" + uid, None)
                else:
                    self._pod_status(pod, "Running", True, node=node)
                    self.timers["run:" + uid] = started
                    self.timers[uid] = started + self.config.job_run_seconds
                continue
            self._pod_status(pod, "Running", True, node=node)
            self.timers.pop(uid, None)

    def _pull_delay(self, pod: dict[str, Any], node_name: str, lo: float, hi: float) -> float:
        if self.config.pull_seed is None:
            return random.uniform(lo, hi)
        image = ((pod["spec"].get("containers") or [{}])[0]).get("image", "")
        return random.Random(f"{self.config.pull_seed}:{image}:{node_name}").uniform(lo, hi)

    def _missing_secrets(self, pod: dict[str, Any]) -> tuple[str, str] | None:
        ns = pod["metadata"]["namespace"]
        for vol in pod["spec"].get("volumes") or []:
            refs = []
            if "secret" in vol:
                refs.append(vol["secret"])
            for src in (vol.get("projected") or {}).get("sources") or []:
                if "secret" in src:
                    refs.append({"secretName": src["secret"].get("name"), "optional": src["secret"].get("optional")})
            for ref in refs:
                name = ref.get("secretName")
                if name and not ref.get("optional") and self.store.get(("", "secrets"), ns, name) is None:
                    return vol.get("name", ""), name
        return None

    def _write_secrets(self, pod: dict[str, Any]) -> None:
        """The simulated program of a Job pod: create the Secrets its annotation names (certificate generators)."""
        names = (pod["metadata"].get("annotations") or {}).get(CREATES_SECRETS, "")
        ns = pod["metadata"]["namespace"]
        rt = self.emu.registry.by_kind("v1", "Secret")
        assert rt is not None
        for name in filter(None, (n.strip() for n in names.split(","))):
            if self.store.get(("", "secrets"), ns, name) is None:
                fake = "c2FuZGJveA=="  # "sandbox": the sandbox never does TLS between simulated pods
                self.emu.create_object(
                    rt,
                    {
                        "metadata": {"name": name, "namespace": ns},
                        "type": "kubernetes.io/tls",
                        "data": {"ca.crt": fake, "tls.crt": fake, "tls.key": fake},
                    },
                    ns,
                )

    def _has_event(self, pod: dict[str, Any], reason: str) -> bool:
        uid = pod["metadata"]["uid"]
        return any(
            e.get("involvedObject", {}).get("uid") == uid and e.get("reason") == reason
            for e in self.store.list(K_EVENT, pod["metadata"]["namespace"])
        )

    def _pod_status(
        self,
        pod: dict[str, Any],
        phase: str,
        ready: bool,
        *,
        node: dict[str, Any],
        waiting: tuple[str, str] | None = None,
        restarts: int | None = None,
        terminated: bool = False,
    ) -> None:
        old = pod.get("status", {})
        old_cs = {c["name"]: c for c in old.get("containerStatuses") or []}
        statuses = []
        for c in pod["spec"].get("containers") or []:
            prev = old_cs.get(c["name"], {})
            if terminated:
                state: dict[str, Any] = {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": old.get("startTime", now_iso()),
                        "finishedAt": now_iso(),
                    }
                }
            elif waiting:
                state = {"waiting": {"reason": waiting[0], **({"message": waiting[1]} if waiting[1] else {})}}
            else:
                state = (
                    prev.get("state") if prev.get("state", {}).get("running") else {"running": {"startedAt": now_iso()}}
                )
            image = c.get("image", "")
            statuses.append(
                {
                    "name": c["name"],
                    "image": image,
                    "imageID": f"{image}@sha256:{_hash(image)}" if not waiting else "",
                    "ready": ready,
                    "started": phase == "Running" and not waiting,
                    "restartCount": restarts if restarts is not None else int(prev.get("restartCount", 0)),
                    "state": state,
                    "containerID": "" if waiting else f"containerd://{_hash(pod['metadata']['uid'] + c['name'])}",
                }
            )
        sched = _cond("PodScheduled", "True")
        status_flag = "True" if ready else "False"
        conds = [
            sched,
            _cond("Initialized", "True"),
            _cond("ContainersReady", status_flag),
            _cond("Ready", status_flag),
        ]
        old_conds = {c["type"]: c for c in old.get("conditions") or []}
        conds = [
            old_conds[c["type"]] if c["type"] in old_conds and old_conds[c["type"]]["status"] == c["status"] else c
            for c in conds
        ]
        host_ip = next((a["address"] for a in node["status"].get("addresses") or [] if a["type"] == "InternalIP"), "")
        pod_ip = (
            host_ip if pod["spec"].get("hostNetwork") else f"10.0.{random.randint(0, 127)}.{random.randint(2, 250)}"
        )
        status = {
            "phase": phase,
            "conditions": conds,
            "containerStatuses": statuses,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": old.get("podIP") or pod_ip,
            "podIPs": [{"ip": old.get("podIP") or pod_ip}],
            "qosClass": old.get("qosClass", "BestEffort"),
            "startTime": old.get("startTime") or now_iso(),
        }
        if waiting and waiting[0] == "ContainerCreating":
            status.pop("podIP")
            status.pop("podIPs")
        comparable_old = {k: v for k, v in old.items() if k not in ("startTime",)}
        comparable_new = {k: v for k, v in status.items() if k not in ("startTime",)}
        if comparable_old != comparable_new:
            self._set_status(K_POD, pod, status)


def _pod_ready(pod: dict[str, Any]) -> bool:
    st = pod.get("status", {})
    return st.get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or []
    )


def _max_unavailable(d: dict[str, Any], replicas: int) -> int:
    v = ((d.get("spec", {}).get("strategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(v, str) and v.endswith("%"):
        return int(replicas * int(v[:-1]) / 100)
    return int(v)
