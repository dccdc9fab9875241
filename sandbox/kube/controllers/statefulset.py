"""The StatefulSet controller: Pods `<name>-0 .. <name>-(n-1)`, each replaced when the template changes."""

from __future__ import annotations

from sandbox.kube.controllers.base import K_POD, K_STS, Controller, labels_of, pod_ready, spec_hash
from sandbox.kube.objects import Obj, set_status


class StatefulSetController(Controller):
    key = K_STS

    def sync(self, sts: Obj) -> None:
        want = int(sts["spec"].get("replicas", 1))
        base = sts["metadata"]["name"]
        revision = f"{base}-{spec_hash(sts['spec'].get('template', {}))}"
        pods = {p["metadata"]["name"]: p for p in self.ctx.owned(K_POD, sts)}
        for i in range(want):
            n = f"{base}-{i}"
            if n in pods and labels_of(pods[n]).get("controller-revision-hash") != revision:
                self.ctx.delete(K_POD, pods.pop(n))
            if n not in pods:
                labels = {"controller-revision-hash": revision, "statefulset.kubernetes.io/pod-name": n}
                self.ctx.new_pod(sts["spec"]["template"], sts, ("apps/v1", "StatefulSet"), n, labels)
        for n, p in pods.items():
            if int(n.rsplit("-", 1)[-1]) >= want:
                self.ctx.delete(K_POD, p)
        self._status(sts, revision)

    def _status(self, sts: Obj, revision: str) -> None:
        pods = self.ctx.owned(K_POD, sts)
        ready = sum(1 for p in pods if pod_ready(p))
        status = {
            "replicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": len(pods),
            "updatedReplicas": len(pods),
            "currentRevision": revision,
            "updateRevision": revision,
            "observedGeneration": sts["metadata"].get("generation", 1),
            "collisionCount": 0,
        }
        set_status(self.ctx.store, K_STS, sts, status)
