"""The sandbox's control API (`/_sandbox/...`) and the chart repository's routes, on the control server.

Faults, pod policies, outages, latency, access policy and AWS behaviour of a running sandbox are set here;
`sandbox.control` and the tests call it over HTTP.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING

from aiohttp import web

from sandbox.aws import AwsFault
from sandbox.chartrepo import OSS_PATH, basic_auth_ok
from sandbox.kube.controllers import PodPolicy, node_ready
from sandbox.kube.server import FaultRule

if TYPE_CHECKING:
    from sandbox.runner import ClusterHandle, Sandbox


class ControlApi:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb

    def add_routes(self, app: web.Application) -> None:
        r = app.router

        async def index(request: web.Request) -> web.Response:
            if not basic_auth_ok(request.headers.get("Authorization"), self.sb.repo.auth):
                return web.Response(
                    status=401, text="unauthorized", headers={"WWW-Authenticate": 'Basic realm="charts"'}
                )
            repo = self.sb.repo.sub(request.match_info.get("repo"))
            if repo is None:
                return web.Response(status=404, text="no such chart repository")
            return web.Response(text=repo.index_yaml(), content_type="text/yaml")

        r.add_get("/charts/index.yaml", index)
        r.add_get("/charts/{file}", self._chart_file)
        # The vendored open-source charts: a second repository at <chart repo>/oss (sandbox/chartrepo.py).
        r.add_get(f"/charts/{{repo:{OSS_PATH}}}/index.yaml", index)
        r.add_get(f"/charts/{{repo:{OSS_PATH}}}/{{file}}", self._chart_file)
        r.add_get("/_sandbox/status", self._status)
        r.add_post("/_sandbox/clusters/{name}/faults", self._add_fault)
        r.add_delete("/_sandbox/clusters/{name}/faults", self._clear_faults)
        r.add_post("/_sandbox/clusters/{name}/pod-policies", self._add_pod_policy)
        r.add_delete("/_sandbox/clusters/{name}/pod-policies", self._clear_pod_policies)
        r.add_post("/_sandbox/clusters/{name}/outage", self._outage)
        r.add_post("/_sandbox/clusters/{name}/latency", self._latency)
        r.add_post("/_sandbox/clusters/{name}/access", self._access)
        r.add_post("/_sandbox/clusters/{name}/aws", self._aws_behaviour)
        r.add_get("/_sandbox/clusters/{name}/requests", self._requests)

    async def _chart_file(self, request: web.Request) -> web.Response:
        if not basic_auth_ok(request.headers.get("Authorization"), self.sb.repo.auth):
            return web.Response(status=401, text="unauthorized", headers={"WWW-Authenticate": 'Basic realm="charts"'})
        repo = self.sb.repo.sub(request.match_info.get("repo"))
        data = repo.archives.get(request.match_info["file"]) if repo is not None else None
        if data is None:
            return web.Response(status=404, text="no such chart archive")
        return web.Response(body=data, content_type="application/gzip")

    def _handle(self, request: web.Request) -> ClusterHandle:
        name = request.match_info["name"]
        if name not in self.sb.clusters:
            raise web.HTTPNotFound(text=f"no sandbox cluster {name!r}; clusters: {', '.join(self.sb.clusters)}")
        return self.sb.clusters[name]

    async def _status(self, request: web.Request) -> web.Response:
        out = {}
        for name, h in self.sb.clusters.items():
            nodes = h.emulator.store.list(("", "nodes"))
            out[name] = {
                "port": h.port,
                "requests": h.emulator.request_count,
                "objects": sum(len(b) for b in h.emulator.store.objects.values()),
                "nodes": len(nodes),
                "ready_nodes": sum(1 for n in nodes if node_ready(n)),
                "faults": [asdict(f) for f in h.emulator.faults if f.count != 0],
                "pod_policies": [asdict(p) for p in h.controllers.config.pod_policies],
            }
        return web.json_response(
            {"clusters": out, "aws_endpoint": self.sb.aws.endpoint_url, "chart_repo": self.sb.chart_repo_url}
        )

    async def _add_fault(self, request: web.Request) -> web.Response:
        h = self._handle(request)
        rule = FaultRule(**await request.json())
        h.emulator.faults.append(rule)
        return web.json_response(asdict(rule), status=201)

    async def _clear_faults(self, request: web.Request) -> web.Response:
        self._handle(request).emulator.faults.clear()
        return web.json_response({})

    async def _add_pod_policy(self, request: web.Request) -> web.Response:
        h = self._handle(request)
        try:
            policy = PodPolicy(**await request.json())
        except ValueError:
            raise web.HTTPBadRequest(text="mode must be crashloop or pending") from None
        h.controllers.config.pod_policies.append(policy)
        h.emulator.store.changed.set()
        return web.json_response(asdict(policy), status=201)

    async def _clear_pod_policies(self, request: web.Request) -> web.Response:
        h = self._handle(request)
        h.controllers.config.pod_policies.clear()
        h.emulator.store.changed.set()
        return web.json_response({})

    async def _outage(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._handle(request).emulator.unavailable_until = time.time() + float(body.get("seconds", 5))
        return web.json_response({})

    async def _latency(self, request: web.Request) -> web.Response:
        body = await request.json()
        self._handle(request).emulator.latency_seconds = float(body.get("seconds", 0))
        return web.json_response({})

    async def _access(self, request: web.Request) -> web.Response:
        body = await request.json()
        access = self._handle(request).emulator.access
        for key in ("allowed", "reject_tokens", "token_ttl_seconds"):
            if key in body:
                setattr(access, key, body[key])
        return web.json_response(
            {
                "allowed": access.allowed,
                "reject_tokens": access.reject_tokens,
                "token_ttl_seconds": access.token_ttl_seconds,
            }
        )

    async def _aws_behaviour(self, request: web.Request) -> web.Response:
        name = self._handle(request).name
        body = await request.json()
        beh = self.sb.aws.behaviours[name]
        if "creating_polls" in body:
            beh.creating_polls = beh.describe_calls + int(body["creating_polls"])
            self.sb.aws.backend().clusters[name].status = "CREATING" if body["creating_polls"] else "ACTIVE"
        if "addons" in body:
            beh.addons = list(body["addons"])
        for key, value in (body.get("nodegroup") or {}).items():
            setattr(beh.nodegroup, key, value)
        for fault in body.get("faults") or []:
            self.sb.aws.faults.append(AwsFault(**fault))
        return web.json_response(
            {"creating_polls": beh.creating_polls, "addons": beh.addons, "nodegroup": asdict(beh.nodegroup)}
        )

    async def _requests(self, request: web.Request) -> web.Response:
        h = self._handle(request)
        return web.json_response({"count": h.emulator.request_count, "log": list(h.emulator.request_log)})
