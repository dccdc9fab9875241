"""The event recorder: one Event per (object, reason, message), its count bumped when it repeats."""

from __future__ import annotations

import copy
import uuid

from sandbox.kube.objects import Obj, Objects
from sandbox.kube.store import now_iso

K_EVENT = ("", "events")


class EventRecorder:
    def __init__(self, objects: Objects) -> None:
        self.objects = objects
        self.store = objects.store

    def record(self, obj: Obj, kind: str, reason: str, message: str, type_: str = "Normal") -> None:
        ns = obj["metadata"].get("namespace") or "default"
        for ev in self.store.list(K_EVENT, ns):
            io = ev.get("involvedObject", {})
            if (
                io.get("uid") == obj["metadata"].get("uid")
                and ev.get("reason") == reason
                and ev.get("message") == message
            ):
                new = copy.deepcopy(ev)
                new["count"] = int(ev.get("count", 1)) + 1
                new["lastTimestamp"] = now_iso()
                self.store.update(K_EVENT, new, bump_generation=False)
                return
        if not self.objects.namespace_exists(ns):
            return
        self.store.create(K_EVENT, self._event(obj, ns, kind, reason, message, type_))

    @staticmethod
    def _event(obj: Obj, ns: str, kind: str, reason: str, message: str, type_: str) -> Obj:
        return {
            "metadata": {"name": f"{obj['metadata']['name']}.{uuid.uuid4().hex[:16]}", "namespace": ns},
            "involvedObject": {
                "kind": kind,
                "namespace": obj["metadata"].get("namespace", ""),
                "name": obj["metadata"]["name"],
                "uid": obj["metadata"].get("uid", ""),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "source": {"component": "sandbox"},
            "firstTimestamp": now_iso(),
            "lastTimestamp": now_iso(),
            "reportingComponent": "sandbox",
        }

    def has(self, obj: Obj, reason: str) -> bool:
        """Whether an event of `reason` about `obj` was recorded."""
        uid = obj["metadata"]["uid"]
        return any(
            e.get("involvedObject", {}).get("uid") == uid and e.get("reason") == reason
            for e in self.store.list(K_EVENT, obj["metadata"]["namespace"])
        )
