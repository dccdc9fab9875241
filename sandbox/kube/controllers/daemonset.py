"""The DaemonSet controller: one Pod per eligible node (node selector, required node affinity, taints with the
default DaemonSet tolerations), replaced when the template changes, removed from nodes it no longer fits; the
scheduling counts in status."""

from __future__ import annotations

from typing import Any

from sandbox.kube.controllers.base import (
    K_DS,
    K_NODE,
    K_POD,
    Controller,
    labels_of,
    pod_ready,
    spec_hash,
    suffix,
)
from sandbox.kube.controllers.scheduler import node_fits
from sandbox.kube.objects import Obj, set_status

REVISION_HASH = "controller-revision-hash"
DS_DEFAULT_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
HOST_NETWORK_TOLERATION = {
    "key": "node.kubernetes.io/network-unavailable",
    "operator": "Exists",
    "effect": "NoSchedule",
}


def default_tolerations(tpl_spec: dict[str, Any]) -> list[dict[str, Any]]:
    tolerations = list(DS_DEFAULT_TOLERATIONS)
    if tpl_spec.get("hostNetwork"):
        tolerations.append(HOST_NETWORK_TOLERATION)
    return tolerations


class DaemonSetController(Controller):
    key = K_DS

    def sync(self, ds: Obj) -> None:
        tpl = ds.get("spec", {}).get("template", {})
        h = spec_hash(tpl)
        tpl_spec = tpl.get("spec", {})
        tolerations = default_tolerations(tpl_spec)
        eff_spec = {**tpl_spec, "tolerations": (tpl_spec.get("tolerations") or []) + tolerations}
        by_node: dict[str, list[Obj]] = {}
        for p in self.ctx.owned(K_POD, ds):
            by_node.setdefault(p["spec"].get("nodeName", ""), []).append(p)
        for node in self.ctx.store.list(K_NODE):
            name = node["metadata"]["name"]
            mine = by_node.pop(name, [])
            if not node_fits(eff_spec, node)[0]:
                self._delete_all(mine)
                continue
            stale = [p for p in mine if labels_of(p).get(REVISION_HASH) != h]
            self._delete_all(stale)
            if len(mine) == len(stale):
                self._create_pod(ds, tpl, h, name, tolerations)
        for leftovers in by_node.values():
            self._delete_all(leftovers)

    def _delete_all(self, pods: list[Obj]) -> None:
        for p in pods:
            self.ctx.delete(K_POD, p)

    def _create_pod(self, ds: Obj, tpl: Obj, h: str, node: str, tolerations: list[dict[str, Any]]) -> None:
        labels = {REVISION_HASH: h, "pod-template-generation": str(ds["metadata"].get("generation", 1))}
        name = f"{ds['metadata']['name']}-{suffix()}"
        self.ctx.new_pod(tpl, ds, ("apps/v1", "DaemonSet"), name, labels, node=node, extra_tolerations=tolerations)

    def status(self, ds: Obj) -> None:
        h = spec_hash(ds.get("spec", {}).get("template", {}))
        pods = self.ctx.owned(K_POD, ds)
        desired = len({p["spec"].get("nodeName") for p in pods if p["spec"].get("nodeName")})
        ready = sum(1 for p in pods if pod_ready(p))
        status = {
            "currentNumberScheduled": len(pods),
            "desiredNumberScheduled": desired,
            "numberMisscheduled": 0,
            "numberReady": ready,
            "updatedNumberScheduled": sum(1 for p in pods if labels_of(p).get(REVISION_HASH) == h),
            "numberAvailable": ready,
            "numberUnavailable": max(0, desired - ready),
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
        set_status(self.ctx.store, K_DS, ds, status)
