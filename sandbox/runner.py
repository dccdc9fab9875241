"""Starting and stopping a whole sandbox: moto, one Kubernetes API emulator per cluster, the chart repository
and the control API, all on 127.0.0.1, state in one directory.

Used in-process by the tests (`Sandbox(...).start()`) and by `eks-cilium sandbox up` (foreground or detached).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from sandbox.aws import FAKE_CREDENTIALS, AwsFault, AwsSandbox, ClusterBehaviour, NodegroupBehaviour
from sandbox.chartrepo import ChartRepo, basic_auth_ok
from sandbox.kube.controllers import Controllers, NodegroupView, PodPolicy, SimConfig, node_ready
from sandbox.kube.server import Emulator, FaultRule
from sandbox.tls import make_certs

STATIC_TOKEN = "sandbox-admin-token"
SERVICEMONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {
            "kind": "ServiceMonitor",
            "listKind": "ServiceMonitorList",
            "plural": "servicemonitors",
            "singular": "servicemonitor",
            "shortNames": ["smon"],
            "categories": ["prometheus-operator"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


@dataclass
class ClusterProfile:
    """What the cluster looks like before the install; the defaults are the runbook's starting point."""

    default_addons: bool = False  # aws-node + kube-proxy DaemonSets and the vpc-cni / kube-proxy managed add-ons
    servicemonitor_crd: bool = True
    preexisting_nodegroup: bool = False
    creating_polls: int = 0
    nodegroup: NodegroupBehaviour = field(default_factory=NodegroupBehaviour)


@dataclass
class SandboxConfig:
    clusters: list[str] = field(default_factory=lambda: ["isovalent-demo"])
    profile: ClusterProfile = field(default_factory=ClusterProfile)
    sim: SimConfig = field(default_factory=SimConfig)
    state_dir: Path = Path(".sandbox")
    region: str = "us-east-1"


@dataclass
class ClusterHandle:
    name: str
    emulator: Emulator
    controllers: Controllers
    port: int = 0
    kubeconfig: Path = Path()


class Sandbox:
    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.aws = AwsSandbox()
        self.aws.region = self.config.region
        self.clusters: dict[str, ClusterHandle] = {}
        self.repo = ChartRepo()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runners: list[web.AppRunner] = []
        self.control_url = ""
        self.chart_repo_url = ""
        self.network: dict[str, Any] = {}

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> Sandbox:
        state = self.config.state_dir
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.certs = make_certs(state / "pki")
        self.aws.start()
        self.network = self.aws.create_network()
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            try:
                self.loop.run_until_complete(self._astart())
            except BaseException as e:  # surfaced to the caller of start()
                errors.append(e)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, name="sandbox-loop", daemon=True)
        self._thread.start()
        ready.wait(60)
        if errors:
            raise errors[0]
        for name in self.config.clusters:
            self._create_cluster(name)
        self.write_env()
        return self

    async def _astart(self) -> None:
        for name in self.config.clusters:
            await self._start_emulator(name)
        control = web.Application(client_max_size=16 * 1024 * 1024)
        self._control_routes(control)
        runner = web.AppRunner(control, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        port = runner.addresses[0][1]
        self.control_url = f"http://127.0.0.1:{port}"
        self.chart_repo_url = f"{self.control_url}/charts"

    async def _start_emulator(self, name: str) -> ClusterHandle:
        emu = Emulator(name)
        emu.access.static_tokens.add(STATIC_TOKEN)
        handle = ClusterHandle(name, emu, Controllers(emu, self.config.sim, self._nodegroup_source(name)))
        handle.controllers.on_reconciled = lambda: self._report_ready(handle)
        runner = web.AppRunner(emu.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.certs.server_context())
        await site.start()
        self._runners.append(runner)
        handle.port = runner.addresses[0][1]
        handle.controllers.start()
        profile = self.config.profile
        if profile.servicemonitor_crd:
            rt = emu.registry.by_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition")
            assert rt is not None
            emu.create_object(rt, SERVICEMONITOR_CRD, None)
        if profile.default_addons:
            self._install_default_addons(emu)
        self.clusters[name] = handle
        return handle

    def _create_cluster(self, name: str) -> None:
        profile = self.config.profile
        behaviour = ClusterBehaviour(
            creating_polls=profile.creating_polls,
            nodegroup=profile.nodegroup,
            addons=["vpc-cni", "kube-proxy", "coredns"] if profile.default_addons else ["coredns"],
        )
        self.aws.create_cluster(name, self.network, behaviour)
        handle = self.clusters[name]
        cluster = self.aws.backend().clusters[name]
        cluster.endpoint = f"https://127.0.0.1:{handle.port}"
        cluster.certificate_authority = {"data": base64.b64encode(self.certs.ca_pem).decode()}
        if profile.preexisting_nodegroup:
            self.aws.create_preexisting_nodegroup(name, self.network)
            self.aws.backend().clusters[name].nodegroups["legacy"].status = "ACTIVE"
        handle.kubeconfig = self.config.state_dir / f"kubeconfig-{name}"
        self._write_kubeconfig(handle)

    def stop(self) -> None:
        if self.loop is not None:

            async def shutdown() -> None:
                for h in self.clusters.values():
                    await h.controllers.stop()
                for r in self._runners:
                    await r.cleanup()

            fut = asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
            with contextlib.suppress(Exception):  # best effort: the loop is stopped below either way
                fut.result(15)
            self.loop.call_soon_threadsafe(self.loop.stop)
            if self._thread:
                self._thread.join(10)
        self.aws.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- helpers -----------------------------------------------------------------------------------------------
    def call(self, fn: Any, *args: Any, timeout: float = 30) -> Any:
        """Run fn(*args) on the sandbox loop (the emulator's state is only touched there)."""
        assert self.loop is not None

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def _nodegroup_source(self, cluster: str) -> Any:
        def source() -> list[NodegroupView]:
            return [NodegroupView(**d) for d in self.aws.nodegroups_of(cluster)]

        return source

    def _report_ready(self, handle: ClusterHandle) -> None:
        ready: dict[str, int] = {}
        for n in handle.emulator.store.list(("", "nodes")):
            group = (n["metadata"].get("labels") or {}).get("eks.amazonaws.com/nodegroup")
            if group and any(
                c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions") or []
            ):
                ready[group] = ready.get(group, 0) + 1
        self.aws.report_ready(handle.name, ready)

    @staticmethod
    def _install_default_addons(emu: Emulator) -> None:
        """What EKS installs when default add-ons are not disabled: aws-node (VPC CNI) and kube-proxy."""
        rt = emu.registry.by_kind("apps/v1", "DaemonSet")
        assert rt is not None
        for name, image in (("aws-node", "amazon-k8s-cni:v1.19.2"), ("kube-proxy", "kube-proxy:v1.33.0-eksbuild.1")):
            emu.create_object(
                rt,
                {
                    "metadata": {"name": name, "namespace": "kube-system", "labels": {"k8s-app": name}},
                    "spec": {
                        "selector": {"matchLabels": {"k8s-app": name}},
                        "template": {
                            "metadata": {"labels": {"k8s-app": name}},
                            "spec": {
                                "hostNetwork": True,
                                "tolerations": [{"operator": "Exists"}],
                                "containers": [{"name": name, "image": image}],
                            },
                        },
                    },
                },
                "kube-system",
            )

    def _write_kubeconfig(self, handle: ClusterHandle) -> None:
        """A kubeconfig for people poking at the sandbox with kubectl (static token; the flows build their own)."""
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": handle.name,
            "clusters": [
                {
                    "name": handle.name,
                    "cluster": {
                        "server": f"https://127.0.0.1:{handle.port}",
                        "certificate-authority": str((self.config.state_dir / "pki" / "ca.crt").resolve()),
                    },
                }
            ],
            "users": [{"name": "sandbox-admin", "user": {"token": STATIC_TOKEN}}],
            "contexts": [{"name": handle.name, "context": {"cluster": handle.name, "user": "sandbox-admin"}}],
        }
        handle.kubeconfig.touch(mode=0o600)
        handle.kubeconfig.write_text(yaml.safe_dump(cfg))

    def env(self) -> dict[str, str]:
        """What a process needs to use this sandbox: AWS endpoint and fake credentials, chart repo, control URL."""
        first = next(iter(self.clusters.values()))
        return {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.aws.endpoint_url,
            "AWS_REGION": self.config.region,
            "AWS_DEFAULT_REGION": self.config.region,
            "EKS_CILIUM_CHART_REPO_URL": self.chart_repo_url,
            "EKS_CILIUM_SANDBOX_CONTROL": self.control_url,
            "KUBECONFIG": str(first.kubeconfig.resolve()),
        }

    def write_env(self) -> Path:
        path = self.config.state_dir / "sandbox.env"
        path.touch(mode=0o600)
        path.write_text("".join(f"export {k}={v}\n" for k, v in self.env().items()))
        state = {
            "pid": os.getpid(),
            "started": time.time(),
            "control_url": self.control_url,
            "env": self.env(),
            "clusters": {
                n: {"port": h.port, "kubeconfig": str(h.kubeconfig.resolve())} for n, h in self.clusters.items()
            },
        }
        (self.config.state_dir / "state.json").write_text(json.dumps(state, indent=2))
        return path

    # ---- control API -------------------------------------------------------------------------------------------
    def _control_routes(self, app: web.Application) -> None:
        r = app.router

        async def index(request: web.Request) -> web.Response:
            if not basic_auth_ok(request.headers.get("Authorization"), self.repo.auth):
                return web.Response(
                    status=401, text="unauthorized", headers={"WWW-Authenticate": 'Basic realm="charts"'}
                )
            return web.Response(text=self.repo.index_yaml(), content_type="text/yaml")

        r.add_get("/charts/index.yaml", index)
        r.add_get("/charts/{file}", self._chart_file)
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
        if not basic_auth_ok(request.headers.get("Authorization"), self.repo.auth):
            return web.Response(status=401, text="unauthorized", headers={"WWW-Authenticate": 'Basic realm="charts"'})
        data = self.repo.archives.get(request.match_info["file"])
        if data is None:
            return web.Response(status=404, text="no such chart archive")
        return web.Response(body=data, content_type="application/gzip")

    def _handle(self, request: web.Request) -> ClusterHandle:
        name = request.match_info["name"]
        if name not in self.clusters:
            raise web.HTTPNotFound(text=f"no sandbox cluster {name!r}; clusters: {', '.join(self.clusters)}")
        return self.clusters[name]

    async def _status(self, request: web.Request) -> web.Response:
        out = {}
        for name, h in self.clusters.items():
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
            {"clusters": out, "aws_endpoint": self.aws.endpoint_url, "chart_repo": self.chart_repo_url}
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
        beh = self.aws.behaviours[name]
        if "creating_polls" in body:
            beh.creating_polls = beh.describe_calls + int(body["creating_polls"])
            self.aws.backend().clusters[name].status = "CREATING" if body["creating_polls"] else "ACTIVE"
        if "addons" in body:
            beh.addons = list(body["addons"])
        for key, value in (body.get("nodegroup") or {}).items():
            setattr(beh.nodegroup, key, value)
        for fault in body.get("faults") or []:
            self.aws.faults.append(AwsFault(**fault))
        return web.json_response(
            {"creating_polls": beh.creating_polls, "addons": beh.addons, "nodegroup": asdict(beh.nodegroup)}
        )

    async def _requests(self, request: web.Request) -> web.Response:
        h = self._handle(request)
        return web.json_response({"count": h.emulator.request_count, "log": list(h.emulator.request_log)})
