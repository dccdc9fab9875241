"""The garbage collector: objects whose owners are all gone are deleted (background propagation)."""

from __future__ import annotations

from sandbox.kube.controllers.base import Context
from sandbox.kube.objects import orphaned


class GarbageCollector:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self) -> None:
        for key, obj in orphaned(self.ctx.store):
            self.ctx.delete(key, obj)
