"""Watch: initial events (or resume from a resourceVersion), then live events; bookmarks; timeoutSeconds."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from sandbox.kube.apiserver.routing import Call
from sandbox.kube.errors import bad_request, status_body
from sandbox.kube.objects import Obj, Objects
from sandbox.kube.selectors import field_matcher, label_matcher
from sandbox.kube.store import Watcher, WatchEvent
from sandbox.kube.tables import table

MAX_TIMEOUT_SECONDS = 3600
DEFAULT_TIMEOUT_SECONDS = 1800
IDLE_SECONDS = 5.0  # how long to wait for an event before a bookmark (when asked for) and a deadline check
INITIAL_EVENTS_END = {"k8s.io/initial-events-end": "true"}


class WatchStream:
    """One watch request: a chunked stream of JSON events."""

    def __init__(self, objects: Objects, call: Call) -> None:
        self.objects = objects
        self.store = objects.store
        self.call = call
        self.rt = call.rt
        q = call.query
        match_l, match_f = label_matcher(q.get("labelSelector")), field_matcher(q.get("fieldSelector"))
        self.watcher = Watcher(
            self.rt.key, call.ns if self.rt.namespaced else None, lambda o: match_l(o) and match_f(o)
        )
        timeout = min(float(q.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS), MAX_TIMEOUT_SECONDS)
        self.deadline = time.monotonic() + timeout
        self.as_table = "as=Table" in call.request.headers.get("Accept", "")
        self.bookmarks = q.get("allowWatchBookmarks") == "true"
        self.last_sent = 0
        self.resp = web.StreamResponse(
            status=200, headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        )

    async def run(self) -> web.StreamResponse:
        q = self.call.query
        rv_param = q.get("resourceVersion") or ""
        send_initial = q.get("sendInitialEvents") == "true"
        await self.resp.prepare(self.call.request)
        self.store.watchers.append(self.watcher)
        try:
            if send_initial or rv_param in ("", "0"):
                await self._initial_events(send_initial)
            elif not await self._resume(rv_param):
                return self.resp
            await self._live()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            if self.watcher in self.store.watchers:
                self.store.watchers.remove(self.watcher)
        return self.resp

    async def send(self, type_: str, obj: Obj) -> None:
        if self.as_table and type_ not in ("BOOKMARK", "ERROR"):
            include = self.call.query.get("includeObject", "Metadata")
            obj = table(self.rt.kind, [obj], obj["metadata"]["resourceVersion"], include)
        await self.resp.write(json.dumps({"type": type_, "object": obj}, separators=(",", ":")).encode() + b"\n")

    async def _event(self, ev: WatchEvent) -> None:
        await self.send(ev.type, self.objects.public(self.rt, ev.obj))
        self.last_sent = ev.rv

    def _bookmark(self, rv: int, annotations: dict[str, str] | None = None) -> Obj:
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if annotations:
            meta["annotations"] = annotations
        return {"kind": self.rt.kind, "apiVersion": self.rt.api_version, "metadata": meta}

    async def _initial_events(self, send_initial: bool) -> None:
        """The current state as ADDED events, in resourceVersion order; with sendInitialEvents, the end bookmark."""
        snapshot_rv = self.store.rv
        items = [o for o in self.store.list(self.rt.key, self.watcher.namespace) if self.watcher.match(o)]
        for o in sorted(items, key=lambda o: int(o["metadata"]["resourceVersion"])):
            await self.send("ADDED", self.objects.public(self.rt, o))
        self.last_sent = snapshot_rv
        if send_initial:
            await self.send("BOOKMARK", self._bookmark(snapshot_rv, INITIAL_EVENTS_END))

    def _wanted(self, ev: WatchEvent, since: int) -> bool:
        ns = self.watcher.namespace
        return ev.rv > since and (not ns or ev.obj["metadata"].get("namespace") == ns) and self.watcher.match(ev.obj)

    async def _resume(self, rv_param: str) -> bool:
        """Replay the events after `rv_param` from the log; False (after a 410 ERROR event) when it is too old."""
        try:
            since = int(rv_param)
        except ValueError:
            raise bad_request(f"invalid resourceVersion {rv_param!r}") from None
        log = self.store.logs.get(self.rt.key)
        if log and since < log[0].rv - 1 and len(log) == log.maxlen:
            await self.send("ERROR", status_body(410, "Expired", f"too old resource version: {since} ({log[0].rv})"))
            return False
        for ev in list(log or []):
            if self._wanted(ev, since):
                await self._event(ev)
        self.last_sent = max(self.last_sent, since)
        return True

    async def _live(self) -> None:
        while (remaining := self.deadline - time.monotonic()) > 0:
            try:
                ev = await asyncio.wait_for(self.watcher.queue.get(), timeout=min(remaining, IDLE_SECONDS))
            except TimeoutError:
                if self.bookmarks:
                    await self.send("BOOKMARK", self._bookmark(self.store.rv))
                continue
            if ev.rv > self.last_sent:
                await self._event(ev)
