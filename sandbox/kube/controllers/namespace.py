"""The namespace controller: a Terminating Namespace is emptied, then removed."""

from __future__ import annotations

from sandbox.kube.controllers.base import K_NS, Context


class NamespaceController:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self) -> None:
        store = self.ctx.store
        for ns in store.list(K_NS):
            if ns.get("status", {}).get("phase") != "Terminating":
                continue
            name = ns["metadata"]["name"]
            remaining = 0
            for key, bucket in list(store.objects.items()):
                for o in list(bucket.values()):
                    if o["metadata"].get("namespace") == name:
                        store.delete(key, name, o["metadata"]["name"])
                        remaining += 1
            if remaining == 0:
                store.delete(K_NS, "", name)
