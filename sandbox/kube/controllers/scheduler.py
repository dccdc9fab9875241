"""The scheduler: each unbound Pod goes to the fitting node with the fewest Pods, or is marked Unschedulable
with the scheduler's message (pods under a `pending` pod policy never fit)."""

from __future__ import annotations

import copy

from sandbox.kube.controllers.base import K_NODE, K_POD, Context, cond, schedulable_on
from sandbox.kube.controllers.config import PodFaultMode, PodPolicy
from sandbox.kube.objects import Obj


def unschedulable_message(nodes: int, reasons: dict[str, int], policy: PodPolicy | None) -> str:
    if policy is not None:
        return f"0/{nodes} nodes are available: {policy.message}."
    if not nodes:
        return "no nodes available to schedule pods"
    return f"0/{nodes} nodes are available: " + ", ".join(f"{c} node(s) {w}" for w, c in sorted(reasons.items())) + "."


class Scheduler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self) -> None:
        nodes = self.ctx.store.list(K_NODE)
        for pod in self.ctx.store.list(K_POD):
            if pod.get("spec", {}).get("nodeName") or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                continue
            policy = self.ctx.config.policy_for(pod)
            reasons: dict[str, int] = {}
            chosen = None
            if policy is None or policy.mode != PodFaultMode.PENDING:
                chosen = self._choose(pod, nodes, reasons)
            if chosen:
                self._bind(pod, chosen)
            else:
                self._unschedulable(pod, unschedulable_message(len(nodes), reasons, policy))

    def _pods_per_node(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.ctx.store.list(K_POD):
            if p["spec"].get("nodeName"):
                counts[p["spec"]["nodeName"]] = counts.get(p["spec"]["nodeName"], 0) + 1
        return counts

    def _choose(self, pod: Obj, nodes: list[Obj], reasons: dict[str, int]) -> str | None:
        """The least loaded node that fits; the reasons the others do not fit are counted into `reasons`."""
        counts = self._pods_per_node()
        for node in sorted(nodes, key=lambda n: counts.get(n["metadata"]["name"], 0)):
            ok, why = schedulable_on(pod.get("spec", {}), node)
            if ok:
                return str(node["metadata"]["name"])
            reasons[why] = reasons.get(why, 0) + 1
        return None

    def _bind(self, pod: Obj, node: str) -> None:
        new = copy.deepcopy(pod)
        new["spec"]["nodeName"] = node
        new["status"]["conditions"] = [cond("PodScheduled", "True", lastProbeTime=None)]
        self.ctx.store.update(K_POD, new, bump_generation=False)
        where = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        self.ctx.events.record(pod, "Pod", "Scheduled", f"Successfully assigned {where} to {node}")

    def _unschedulable(self, pod: Obj, msg: str) -> None:
        old = (pod.get("status", {}).get("conditions") or [{}])[0]
        if old.get("message") == msg:
            return
        new = copy.deepcopy(pod)
        condition = cond("PodScheduled", "False", "Unschedulable", msg, lastProbeTime=None)
        new["status"] = {"phase": "Pending", "qosClass": "BestEffort", "conditions": [condition]}
        self.ctx.store.update(K_POD, new, bump_generation=False)
        self.ctx.events.record(pod, "Pod", "FailedScheduling", msg, "Warning")
