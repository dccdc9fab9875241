"""The ReplicaSet controller: as many Pods as `spec.replicas`, and the replica counts in status."""

from __future__ import annotations

from sandbox.kube.controllers.base import K_POD, K_RS, Controller, pod_ready, suffix
from sandbox.kube.objects import Obj, set_status


class ReplicaSetController(Controller):
    key = K_RS

    def sync(self, rs: Obj) -> None:
        pods = [p for p in self.ctx.owned(K_POD, rs) if not p["metadata"].get("deletionTimestamp")]
        want = int(rs["spec"].get("replicas", 1))
        for p in pods[want:]:
            self.ctx.delete(K_POD, p)
        for _ in range(want - len(pods)):
            name = f"{rs['metadata']['name']}-{suffix()}"
            self.ctx.new_pod(rs["spec"]["template"], rs, ("apps/v1", "ReplicaSet"), name)
        pods = self.ctx.owned(K_POD, rs)
        ready = sum(1 for p in pods if pod_ready(p))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        set_status(self.ctx.store, K_RS, rs, status)
