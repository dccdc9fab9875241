"""The Deployment controller: one ReplicaSet per pod template (by hash), old ones scaled to 0; status and the
Available / Progressing conditions that `kubectl rollout status` and helm's waiters read."""

from __future__ import annotations

import copy
from typing import Any

from sandbox.kube.controllers.base import K_DEPLOY, K_RS, Controller, cond, labels_of, spec_hash
from sandbox.kube.objects import Obj, owner_ref, set_status
from sandbox.kube.store import now_iso

TEMPLATE_HASH = "pod-template-hash"


def max_unavailable(d: Obj, replicas: int) -> int:
    v = ((d.get("spec", {}).get("strategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable", "25%")
    if isinstance(v, str) and v.endswith("%"):
        return int(replicas * int(v[:-1]) / 100)
    return int(v)


def _with_hash(rs: Obj, h: str) -> bool:
    return labels_of(rs).get(TEMPLATE_HASH) == h


class DeploymentController(Controller):
    key = K_DEPLOY

    def sync(self, d: Obj) -> None:
        spec = d.get("spec", {})
        h = spec_hash(spec.get("template", {}))
        owned = self.ctx.owned(K_RS, d)
        current = next((rs for rs in owned if _with_hash(rs, h)), None)
        replicas = int(spec.get("replicas", 1))
        if current is None:
            self._create_replicaset(d, h, replicas, revision=len(owned) + 1)
        elif current["spec"].get("replicas") != replicas:
            self._scale(current, replicas)
        for rs in owned:
            if rs is not current and not _with_hash(rs, h) and rs["spec"].get("replicas", 0):
                self._scale(rs, 0)

    def _scale(self, rs: Obj, replicas: int) -> None:
        new = copy.deepcopy(rs)
        new["spec"]["replicas"] = replicas
        self.ctx.store.update(K_RS, new, bump_generation=True)

    def _create_replicaset(self, d: Obj, h: str, replicas: int, revision: int) -> None:
        tpl = d.get("spec", {}).get("template", {})
        rs_tpl = copy.deepcopy(tpl)
        rs_tpl.setdefault("metadata", {}).setdefault("labels", {})[TEMPLATE_HASH] = h
        sel = copy.deepcopy(d["spec"].get("selector") or {"matchLabels": {}})
        sel.setdefault("matchLabels", {})[TEMPLATE_HASH] = h
        name = f"{d['metadata']['name']}-{h}"
        rs = {
            "metadata": {
                "name": name,
                "namespace": d["metadata"]["namespace"],
                "labels": {**(tpl.get("metadata", {}).get("labels") or {}), TEMPLATE_HASH: h},
                "annotations": {
                    "deployment.kubernetes.io/revision": str(revision),
                    "deployment.kubernetes.io/desired-replicas": str(replicas),
                },
                "ownerReferences": [owner_ref(d, "apps/v1", "Deployment")],
            },
            "spec": {"replicas": replicas, "selector": sel, "template": rs_tpl},
        }
        self.ctx.objects.create_kind("apps/v1", "ReplicaSet", rs, d["metadata"]["namespace"])
        self.ctx.events.record(
            d, "Deployment", "ScalingReplicaSet", f"Scaled up replica set {name} from 0 to {replicas}"
        )

    def status(self, d: Obj) -> None:
        h = spec_hash(d.get("spec", {}).get("template", {}))
        owned = self.ctx.owned(K_RS, d)
        new_rs = next((rs for rs in owned if _with_hash(rs, h)), None)
        replicas = int(d.get("spec", {}).get("replicas", 1))

        def total(field: str) -> int:
            return sum(int(rs.get("status", {}).get(field, 0)) for rs in owned)

        new_status = new_rs.get("status", {}) if new_rs else {}
        updated = int(new_status.get("replicas", 0))
        available = total("availableReplicas")
        complete = (
            new_rs is not None
            and updated == replicas
            and int(new_status.get("availableReplicas", 0)) == replicas
            and total("replicas") == replicas
        )
        rs_name = new_rs["metadata"]["name"] if new_rs else ""
        status = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": total("replicas"),
            "updatedReplicas": updated,
            "readyReplicas": total("readyReplicas"),
            "availableReplicas": available,
            "unavailableReplicas": max(0, replicas - available),
            "conditions": self._conditions(d, available >= replicas - max_unavailable(d, replicas), complete, rs_name),
        }
        set_status(self.ctx.store, K_DEPLOY, d, status)

    @staticmethod
    def _conditions(d: Obj, avail_ok: bool, complete: bool, rs_name: str) -> list[dict[str, Any]]:
        old = {c["type"]: c for c in d.get("status", {}).get("conditions") or []}

        def keep(c: dict[str, Any]) -> dict[str, Any]:
            prev = old.get(c["type"])
            if prev and prev["status"] == c["status"] and prev.get("reason") == c.get("reason"):
                return prev
            return c

        available = cond(
            "Available",
            "True" if avail_ok else "False",
            "MinimumReplicasAvailable" if avail_ok else "MinimumReplicasUnavailable",
            "Deployment has minimum availability." if avail_ok else "Deployment does not have minimum availability.",
            lastUpdateTime=now_iso(),
        )
        progressing = cond(
            "Progressing",
            "True",
            "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
            f'ReplicaSet "{rs_name}" ' + ("has successfully progressed." if complete else "is progressing."),
            lastUpdateTime=now_iso(),
        )
        return [keep(available), keep(progressing)]
