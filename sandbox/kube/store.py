"""In-memory object store: numeric resourceVersions, per-resource event logs for watch resume, subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from sandbox.kube.selectors import Matcher

EVENT_LOG_CAP = 4000  # per resource type; older resourceVersions answer 410 Gone


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class WatchEvent:
    rv: int
    type: str
    obj: dict[str, Any]


class Watcher:
    def __init__(self, key: tuple[str, str], namespace: str | None, match: Matcher) -> None:
        self.key = key
        self.namespace = namespace
        self.match = match
        self.queue: asyncio.Queue[WatchEvent] = asyncio.Queue(maxsize=10000)

    def offer(self, ev: WatchEvent) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a watcher that stopped reading loses events
            self.queue.put_nowait(ev)


class Conflict(Exception):
    pass


class Store:
    """Objects keyed by (group, plural) -> {(namespace, name): object}."""

    def __init__(self) -> None:
        self.rv = 1
        self.objects: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        self.logs: dict[tuple[str, str], deque[WatchEvent]] = {}
        self.watchers: list[Watcher] = []
        self.changed = asyncio.Event()

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def bucket(self, key: tuple[str, str]) -> dict[tuple[str, str], dict[str, Any]]:
        return self.objects.setdefault(key, {})

    def get(self, key: tuple[str, str], namespace: str, name: str) -> dict[str, Any] | None:
        return self.bucket(key).get((namespace, name))

    def list(self, key: tuple[str, str], namespace: str | None = None) -> list[dict[str, Any]]:
        items = self.bucket(key).values()
        if namespace:
            return [o for o in items if o["metadata"].get("namespace") == namespace]
        return list(items)

    def _emit(self, key: tuple[str, str], type_: str, obj: dict[str, Any]) -> None:
        ev = WatchEvent(int(obj["metadata"]["resourceVersion"]), type_, copy.deepcopy(obj))
        log = self.logs.setdefault(key, deque(maxlen=EVENT_LOG_CAP))
        log.append(ev)
        ns = obj["metadata"].get("namespace", "")
        for w in self.watchers:
            if w.key == key and (not w.namespace or w.namespace == ns) and w.match(ev.obj):
                w.offer(ev)
        self.changed.set()

    def create(self, key: tuple[str, str], obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        ns, name = meta.get("namespace", ""), meta["name"]
        if (ns, name) in self.bucket(key):
            raise Conflict(name)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta["resourceVersion"] = str(self.next_rv())
        meta.setdefault("creationTimestamp", now_iso())
        meta["generation"] = 1
        self.bucket(key)[(ns, name)] = obj
        self._emit(key, "ADDED", obj)
        return obj

    def update(self, key: tuple[str, str], obj: dict[str, Any], *, bump_generation: bool) -> dict[str, Any]:
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        if bump_generation:
            meta["generation"] = int(meta.get("generation", 1)) + 1
        meta["resourceVersion"] = str(self.next_rv())
        self.bucket(key)[(ns, name)] = obj
        self._emit(key, "MODIFIED", obj)
        return obj

    def delete(self, key: tuple[str, str], namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.bucket(key).pop((namespace, name), None)
        if obj is None:
            return None
        obj["metadata"]["resourceVersion"] = str(self.next_rv())
        self._emit(key, "DELETED", obj)
        return obj

    def uids(self) -> set[str]:
        return {o["metadata"]["uid"] for b in self.objects.values() for o in b.values()}
