"""The namespace controller: a Terminating Namespace is emptied, then removed; every other Namespace gets what
kube-controller-manager puts in each: the ServiceAccount `default` and the ConfigMap `kube-root-ca.crt` (key
`ca.crt`, the cluster CA's PEM, kept in sync as the root-CA publisher does)."""

from __future__ import annotations

import copy

from sandbox.kube.controllers.base import K_NS, Context
from sandbox.kube.objects import Obj

K_SA, K_CM = ("", "serviceaccounts"), ("", "configmaps")
ROOT_CA = "kube-root-ca.crt"
ROOT_CA_ANNOTATION = "kubernetes.io/description"
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as "
    "the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of "
    "Kubernetes clusters."
)


class NamespaceController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self) -> None:
        for ns in self.ctx.store.list(K_NS):
            if ns.get("status", {}).get("phase") == "Terminating":
                self._empty(ns["metadata"]["name"])
            else:
                self._populate(ns["metadata"]["name"])

    def _empty(self, name: str) -> None:
        store = self.ctx.store
        remaining = 0
        for key, bucket in list(store.objects.items()):
            for o in list(bucket.values()):
                if o["metadata"].get("namespace") == name:
                    store.delete(key, name, o["metadata"]["name"])
                    remaining += 1
        if remaining == 0:
            store.delete(K_NS, "", name)

    def _populate(self, name: str) -> None:
        store, objects = self.ctx.store, self.ctx.objects
        if store.get(K_SA, name, "default") is None:
            objects.create_kind("v1", "ServiceAccount", {"metadata": {"name": "default"}}, name)
        data = {"ca.crt": objects.root_ca_pem}
        live = store.get(K_CM, name, ROOT_CA)
        if live is None:
            objects.create_kind("v1", "ConfigMap", root_ca_configmap(data), name)
        elif live.get("data") != data:
            new: Obj = copy.deepcopy(live)
            new["data"] = data
            store.update(K_CM, new, bump_generation=False)


def root_ca_configmap(data: dict[str, str]) -> Obj:
    return {"metadata": {"name": ROOT_CA, "annotations": {ROOT_CA_ANNOTATION: ROOT_CA_DESCRIPTION}}, "data": data}
