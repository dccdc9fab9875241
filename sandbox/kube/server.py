"""The Kubernetes API emulator: the API-server pieces of `sandbox.kube.apiserver` on one aiohttp application,
over one store whose object rules are `sandbox.kube.objects`.

Requests are handled on one asyncio loop; the store is touched only from that loop, so no locks are needed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import yaml
from aiohttp import web

from sandbox.kube import protobuf
from sandbox.kube.apiserver import routing
from sandbox.kube.apiserver.auth import UNAUTHENTICATED_PATHS, AccessPolicy, Authenticator, check_eks_token
from sandbox.kube.apiserver.faults import FaultRule, take_fault
from sandbox.kube.apiserver.handlers import Handlers
from sandbox.kube.apiserver.patching import Patcher
from sandbox.kube.apiserver.routing import Call, Verb
from sandbox.kube.apiserver.watch import WatchStream
from sandbox.kube.apiserver.wire import json_response
from sandbox.kube.errors import ApiError, status_body
from sandbox.kube.objects import Obj, Objects
from sandbox.kube.patches import PatchError
from sandbox.kube.registry import SERVER_VERSION, Registry, ResourceType
from sandbox.kube.selectors import SelectorError
from sandbox.kube.store import Store

__all__ = ["AccessPolicy", "ApiError", "Emulator", "FaultRule", "check_eks_token", "status_body"]

REQUEST_LOG_CAP = 2000
BAD_REQUEST_ERRORS = (SelectorError, PatchError, protobuf.ProtobufError, yaml.YAMLError, json.JSONDecodeError)


class Emulator:
    def __init__(self, name: str = "sandbox") -> None:
        self.name = name
        self.registry = Registry()
        self.store = Store()
        self.objects = Objects(self.store, self.registry)
        self.faults: list[FaultRule] = []
        self.latency_seconds = 0.0
        self.unavailable_until = 0.0
        self.access = AccessPolicy()
        self.auth = Authenticator(self.access)
        self.tokens_seen = self.auth.tokens_seen
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_CAP)
        self.request_count = 0
        self.handlers = Handlers(self.objects, self.access)
        self.patcher = Patcher(self.handlers)
        self.app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._middleware])
        self._routes()
        self.objects.bootstrap()

    # ---- what the sandbox and the tests call -------------------------------------------------------------
    def create_object(self, rt: ResourceType, obj: Obj, namespace: str | None, dry_run: bool = False) -> Obj:
        return self.objects.create(rt, obj, namespace, dry_run)

    # ---- HTTP ----------------------------------------------------------------------------------------------
    def _routes(self) -> None:
        r = self.app.router

        def static(body: Any) -> Callable[[web.Request], Awaitable[web.Response]]:
            async def handler(_: web.Request) -> web.Response:
                return json_response(body() if callable(body) else body)

            return handler

        async def ok(_: web.Request) -> web.Response:
            return web.Response(text="ok")

        r.add_get("/version", static(SERVER_VERSION))
        r.add_get("/version/", static(SERVER_VERSION))
        for p in ("/healthz", "/livez", "/readyz"):
            r.add_get(p, ok)
        r.add_get("/api", static(self.registry.api_versions))
        r.add_get("/apis", static(self.registry.api_group_list))
        r.add_get("/openapi/v2", self._openapi_v2)
        r.add_get("/openapi/v3", static(self.registry.openapi_index))
        r.add_get("/openapi/v3/{path:.*}", self._openapi_doc)
        r.add_get("/api/v1/namespaces/{namespace}/pods/{name}/proxy/{path:.*}", self._pod_proxy)
        r.add_route("*", "/api/{tail:.*}", self._resource)
        r.add_route("*", "/apis/{tail:.*}", self._resource)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.request_count += 1
        entry = {"t": time.time(), "method": request.method, "path": request.path, "query": request.query_string}
        entry["status"] = 0
        self.request_log.append(entry)
        try:
            await self._admit(request)
            resp = await handler(request)
        except ApiError as e:
            resp = json_response(status_body(e.code, e.reason, e.message, e.details), e.code)
        except BAD_REQUEST_ERRORS as e:
            resp = json_response(status_body(400, "BadRequest", str(e)), 400)
        entry["status"] = resp.status
        return resp

    async def _admit(self, request: web.Request) -> None:
        """Injected outage, authentication, injected latency."""
        if time.time() < self.unavailable_until:
            raise ApiError(
                503, "ServiceUnavailable", "the server is currently unable to handle the request (injected outage)"
            )
        if request.path not in UNAUTHENTICATED_PATHS:
            why = self.auth.authenticate(request.headers.get("Authorization", ""))
            if why is not None:
                self.request_log.append({"t": time.time(), "auth_error": why})
                raise ApiError(401, "Unauthorized", "Unauthorized")
        if self.latency_seconds:
            await asyncio.sleep(self.latency_seconds)

    async def _pod_proxy(self, request: web.Request) -> web.Response:
        """GET pods/NAME[:PORT]/proxy/PATH: what the Pod's program answers (the simulated agent's metrics)."""
        from sandbox.kube.images import agent

        namespace = request.match_info["namespace"]
        name, _, port = request.match_info["name"].partition(":")
        pod = self.store.get(("", "pods"), namespace, name)
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"})
        text = agent.metrics(self.store, pod, port or "80", request.match_info["path"])
        if text is None:
            ip = (pod.get("status") or {}).get("podIP") or "?"
            raise ApiError(
                503, "ServiceUnavailable", f"error trying to reach service: dial tcp {ip}:{port}: connect: refused"
            )
        return web.Response(text=text, content_type="text/plain")

    async def _openapi_v2(self, _: web.Request) -> web.Response:
        body = protobuf.openapi_v2_document(SERVER_VERSION["gitVersion"])
        return web.Response(body=body, content_type="application/com.github.proto-openapi.spec.v2.v1.0+protobuf")

    async def _openapi_doc(self, request: web.Request) -> web.Response:
        gv = routing.openapi_group_version(self.registry, request.match_info["path"])
        return json_response(self.registry.openapi_doc(gv.group, gv.version))

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        target = routing.resolve(self.registry, request.path)
        if isinstance(target, routing.GroupVersion):
            return json_response(routing.discovery(self.registry, target))
        rt, ns, name, sub = target
        verb = routing.verb_of(request.method, name, request.query)
        await self._inject_fault(verb or "", rt, name or "")
        if verb is None or not routing.allowed(rt, verb, sub):
            raise routing.not_allowed(rt, verb or "")
        return await self._dispatch(Call(request, rt, ns, name, sub, verb))

    async def _inject_fault(self, verb: str, rt: ResourceType, name: str) -> None:
        rule = take_fault(self.faults, verb, rt.plural, name)
        if rule is None:
            return
        if rule.delay_seconds:
            await asyncio.sleep(rule.delay_seconds)
        error = rule.error()
        if error is not None:
            raise error

    def _dispatch(self, call: Call) -> Awaitable[web.StreamResponse]:
        h = self.handlers
        handler: dict[Verb, Callable[[Call], Awaitable[web.StreamResponse]]] = {
            Verb.WATCH: lambda c: WatchStream(self.objects, c).run(),
            Verb.LIST: h.list,
            Verb.GET: h.get,
            Verb.CREATE: h.create,
            Verb.UPDATE: h.update,
            Verb.PATCH: self.patcher.patch,
            Verb.DELETE: h.delete,
            Verb.DELETECOLLECTION: h.deletecollection,
        }
        return handler[call.verb](call)
