"""Node objects as an EKS managed nodegroup's instances register them: labels, taints, addresses, capacity,
nodeInfo, and conditions that start NotReady ("cni plugin not initialized")."""

from __future__ import annotations

import uuid
from typing import Any

from sandbox.kube.controllers.base import cond
from sandbox.kube.controllers.config import NodegroupView
from sandbox.kube.objects import Obj
from sandbox.kube.store import now_iso

NOT_READY_MSG = (
    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
    "message:Network plugin returns error: cni plugin not initialized"
)
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
AGENT_NOT_READY_TAINT = "node.cilium.io/agent-not-ready"
EKS_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}
PRESSURE_CONDITIONS = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)
CAPACITY = {"cpu": "4", "memory": "15896988Ki", "pods": "110", "ephemeral-storage": "83873772Ki"}
ALLOCATABLE = {"cpu": "3920m", "memory": "15136156Ki", "pods": "110", "ephemeral-storage": "76224326324"}


def not_ready_taints() -> list[dict[str, str]]:
    return [{"key": NOT_READY_TAINT, "effect": "NoSchedule"}, {"key": NOT_READY_TAINT, "effect": "NoExecute"}]


def not_ready_condition(ts: str) -> dict[str, Any]:
    return cond("Ready", "False", "KubeletNotReady", NOT_READY_MSG, lastHeartbeatTime=ts)


def _taints(g: NodegroupView) -> list[dict[str, str]]:
    taints = not_ready_taints()
    for t in g.taints:
        effect = t.get("effect", "")
        taints.append({"key": t["key"], "value": t.get("value", ""), "effect": EKS_EFFECTS.get(effect, effect)})
    return taints


def _labels(g: NodegroupView, name: str, zone: str) -> dict[str, str]:
    return {
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


def _node_info() -> dict[str, str]:
    return {
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
    }


def _status(name: str, ip: str) -> dict[str, Any]:
    ts = now_iso()
    pressure = [cond(t, "False", reason, msg, lastHeartbeatTime=ts) for t, reason, msg in PRESSURE_CONDITIONS]
    return {
        "conditions": [*pressure, not_ready_condition(ts)],
        "addresses": [
            {"type": "InternalIP", "address": ip},
            {"type": "Hostname", "address": name},
            {"type": "InternalDNS", "address": name},
        ],
        "capacity": dict(CAPACITY),
        "allocatable": dict(ALLOCATABLE),
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        "nodeInfo": _node_info(),
    }


def node_object(g: NodegroupView, n: int) -> Obj:
    """The `n`-th node of the cluster, an instance of nodegroup `g`."""
    zone = g.zones[n % len(g.zones)]
    subnet = (n % 2) * 64 + 10
    name = f"ip-10-0-{subnet}-{n + 20}.ec2.internal"
    annotations = {
        "node.alpha.kubernetes.io/ttl": "0",
        "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    }
    return {
        "metadata": {"name": name, "labels": _labels(g, name, zone), "annotations": annotations},
        "spec": {"providerID": f"aws:///{zone}/i-{uuid.uuid4().hex[:17]}", "taints": _taints(g)},
        "status": _status(name, f"10.0.{subnet}.{n + 20}"),
    }
