"""The real Cilium 1.18.4 chart (vendored, from the sandbox repository's /oss) installed by helm into the emulator
with 2 nodes: the simulated images converge it (certgen's Secrets for hubble-relay, the operator's CRDs)."""

from __future__ import annotations

import json
import time

from tests.conformance.test_sandbox_conformance import create_nodegroup
from tests.support.commands import helm, kubectl, run

CRDS = (
    "ciliumnodes",
    "ciliumidentities",
    "ciliumendpoints",
    "ciliumnetworkpolicies",
    "ciliumclusterwidenetworkpolicies",
)


def _eventually(check, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_the_real_cilium_chart_converges_with_certgen_secrets_and_the_cilium_crds(sandbox, helm_binary):
    kubeconfig = str(sandbox.clusters["isovalent-demo"].kubeconfig)
    create_nodegroup(sandbox, 2)
    run(helm_binary, "repo", "add", "oss", f"{sandbox.chart_repo_url}/oss")
    flags = ["--set", "k8sServiceHost=127.0.0.1", "--set", "k8sServicePort=443"]
    flags += ["--set", "hubble.relay.enabled=true", "--set", "hubble.tls.auto.method=cronJob"]
    helm(helm_binary, kubeconfig, "install", "cilium", "oss/cilium", "--version", "1.18.4", "-n", "kube-system", *flags)

    def secrets() -> set[str]:
        out = json.loads(kubectl(kubeconfig, "get", "secrets", "-n", "kube-system", "-o", "json").stdout)
        return {s["metadata"]["name"] for s in out["items"]}

    assert _eventually(lambda: {"hubble-relay-client-certs", "hubble-server-certs", "cilium-ca"} <= secrets())

    def crds() -> set[str]:
        out = json.loads(kubectl(kubeconfig, "get", "crd", "-o", "json").stdout)
        return {c["metadata"]["name"] for c in out["items"]}

    assert _eventually(lambda: {f"{p}.cilium.io" for p in CRDS} <= crds())
    nodes = _eventually(
        lambda: len(json.loads(kubectl(kubeconfig, "get", "ciliumnodes", "-o", "json").stdout)["items"]) == 2
    )
    assert nodes
    kubectl(kubeconfig, "wait", "--for=condition=Ready", "node", "--all", "--timeout=30s")
    kubectl(kubeconfig, "rollout", "status", "deployment/hubble-relay", "-n", "kube-system", "--timeout=30s")
