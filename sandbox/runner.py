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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from sandbox.aws import FAKE_CREDENTIALS, AwsSandbox, ClusterBehaviour, NodegroupBehaviour
from sandbox.chartrepo import ChartRepo
from sandbox.control_api import ControlApi
from sandbox.kube.controllers import Controllers, NodegroupView, SimConfig, node_ready
from sandbox.kube.server import Emulator
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
        ControlApi(self).add_routes(control)
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
        # Every namespace's kube-root-ca.crt carries the CA that signs this API server's certificate.
        emu.objects.root_ca_pem = self.certs.ca_pem.decode()
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
            if group and node_ready(n):
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
