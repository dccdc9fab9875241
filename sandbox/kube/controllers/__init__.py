"""Simulated controllers, scheduler, kubelet and node lifecycle, running in the emulator's loop, one module
each: Deployments -> ReplicaSets -> Pods, DaemonSets -> one Pod per eligible node, StatefulSets, Jobs -> Pod ->
Complete (and TTL after finished), owner-reference garbage collection, namespace deletion. Nodes come from the
(moto) nodegroups, start NotReady ("cni plugin not initialized") and turn Ready only when a Cilium agent Pod
runs on them. `Controllers` (manager) runs them all; every controller works on the store through
`sandbox.kube.objects`, with an injectable clock.
"""

from sandbox.kube.controllers.base import (
    K_DEPLOY,
    K_DS,
    K_EVENT,
    K_JOB,
    K_NODE,
    K_NS,
    K_POD,
    K_RS,
    K_STS,
    Clock,
    Context,
    ManualClock,
    node_ready,
    schedulable_on,
    tolerates,
)
from sandbox.kube.controllers.config import NodegroupSource, NodegroupView, PodFaultMode, PodPolicy, SimConfig
from sandbox.kube.controllers.manager import Controllers

__all__ = [
    "K_DEPLOY",
    "K_DS",
    "K_EVENT",
    "K_JOB",
    "K_NODE",
    "K_NS",
    "K_POD",
    "K_RS",
    "K_STS",
    "Clock",
    "Context",
    "Controllers",
    "ManualClock",
    "NodegroupSource",
    "NodegroupView",
    "PodFaultMode",
    "PodPolicy",
    "SimConfig",
    "node_ready",
    "schedulable_on",
    "tolerates",
]
