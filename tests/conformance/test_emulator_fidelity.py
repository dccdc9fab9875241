"""Where the emulator behaves as the real API server and kube-controller-manager do, driven by real kubectl, helm
and the kubernetes client: what every namespace holds, scheduling constraints, strict field validation, tables."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client, config

from tests.support.commands import kubectl


@pytest.fixture
def kubeconfig(sandbox):
    return str(sandbox.clusters["isovalent-demo"].kubeconfig)


def eventually(fn, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _exactly(got, want):
    assert got == want
    return got


ROOT_CA = "kube-root-ca.crt"


def test_every_namespace_has_the_default_service_account_and_the_root_ca(sandbox, kubeconfig):
    kubectl(kubeconfig, "create", "namespace", "later")
    api = client.CoreV1Api(config.new_client_from_config(kubeconfig))
    # The server that speaks TLS for the emulator publishes its CA to it; the ConfigMaps follow it.
    sandbox.clusters["isovalent-demo"].emulator.objects.root_ca_pem = ca = sandbox.certs.ca_pem.decode()
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease", "later"):
        sa = eventually(lambda ns=ns: api.read_namespaced_service_account("default", ns))
        assert sa.metadata.name == "default"
        cm = eventually(lambda ns=ns: api.read_namespaced_config_map(ROOT_CA, ns))
        eventually(lambda ns=ns: _exactly(api.read_namespaced_config_map(ROOT_CA, ns).data, {"ca.crt": ca}))
        assert cm.metadata.annotations["kubernetes.io/description"].startswith("Contains a CA bundle")
    out = json.loads(kubectl(kubeconfig, "get", "sa,cm", "-n", "later", "-o", "json").stdout)
    assert sorted((o["kind"], o["metadata"]["name"]) for o in out["items"]) == [
        ("ConfigMap", "kube-root-ca.crt"),
        ("ServiceAccount", "default"),
    ]
    # A deleted namespace goes away with them (the namespace controller empties it first).
    kubectl(kubeconfig, "delete", "namespace", "later", "--wait=true", "--timeout=20s")
    assert "later" not in kubectl(kubeconfig, "get", "ns", "-o", "name").stdout
