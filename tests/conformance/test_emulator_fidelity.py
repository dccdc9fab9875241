"""Where the emulator behaves as the real API server and kube-controller-manager do, driven by real kubectl, helm
and the kubernetes client: what every namespace holds, scheduling constraints, strict field validation, tables."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client, config

from tests.conformance.test_sandbox_conformance import ready_nodes
from tests.conftest import TOOLS
from tests.support.commands import kubectl, run


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


SPREAD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: operator, namespace: kube-system}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: operator}}
  template:
    metadata: {labels: {app: operator}}
    spec:
      nodeSelector: {kubernetes.io/os: linux}
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions: [{key: kubernetes.io/hostname, operator: Exists}]
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: operator}}
            topologyKey: kubernetes.io/hostname
      tolerations: [{operator: Exists}]
      containers: [{name: operator, image: "quay.io/cilium/operator-generic:v1.18.4"}]
"""


def test_required_pod_anti_affinity_spreads_replicas_and_a_third_stays_pending(sandbox, kubeconfig):
    ready_nodes(sandbox, kubeconfig, desired=2)
    run(TOOLS / "kubectl", "--kubeconfig", kubeconfig, "apply", "-f", "-", input_text=SPREAD.replace("REPLICAS", "2"))
    kubectl(kubeconfig, "-n", "kube-system", "rollout", "status", "deploy/operator", "--timeout=30s")
    pods = _pods(kubeconfig)
    assert len({p["spec"]["nodeName"] for p in pods}) == 2
    kubectl(kubeconfig, "-n", "kube-system", "scale", "deploy/operator", "--replicas=3")

    def one_pending():
        pending = [p for p in _pods(kubeconfig) if not p["spec"].get("nodeName")]
        assert len(pending) == 1
        (condition,) = [c for c in pending[0]["status"]["conditions"] if c["type"] == "PodScheduled"]
        return condition

    condition = eventually(one_pending)
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")
    assert condition["message"] == "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."
    args = ("-n", "kube-system", "get", "events", "--field-selector", "reason=FailedScheduling", "-o", "json")
    events = json.loads(kubectl(kubeconfig, *args).stdout)["items"]
    assert [e["message"] for e in events] == [condition["message"]]


def _pods(kubeconfig):
    out = kubectl(kubeconfig, "-n", "kube-system", "get", "pods", "-l", "app=operator", "-o", "json").stdout
    return json.loads(out)["items"]


def test_kubectl_prints_the_apiservers_columns_for_services_configmaps_secrets_and_events(sandbox, kubeconfig):
    kubectl(kubeconfig, "create", "configmap", "tables-cm", "--from-literal=a=1", "--from-literal=b=2")
    kubectl(kubeconfig, "create", "secret", "generic", "tables-secret", "--from-literal=k=v")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "tables-svc"},
        "spec": {
            "selector": {"app": "tables-svc"},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "https", "port": 443}],
        },
    }
    # `kubectl create service` speaks protobuf, which the emulator does not; apply sends JSON.
    run(str(TOOLS / "kubectl"), "--kubeconfig", kubeconfig, "apply", "-f", "-", input_text=json.dumps(service))

    def header_and_row(resource, name):
        lines = kubectl(kubeconfig, "get", resource, name).stdout.splitlines()
        return lines[0].split(), lines[1].split()

    head, row = header_and_row("configmap", "tables-cm")
    assert head == ["NAME", "DATA", "AGE"] and row[:2] == ["tables-cm", "2"]
    head, row = header_and_row("secret", "tables-secret")
    assert head == ["NAME", "TYPE", "DATA", "AGE"] and row[:3] == ["tables-secret", "Opaque", "1"]
    head, row = header_and_row("service", "tables-svc")
    assert head == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert row[0:2] == ["tables-svc", "ClusterIP"] and row[3:5] == ["<none>", "80/TCP,443/TCP"]
    wide = kubectl(kubeconfig, "get", "service", "tables-svc", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-1] == "SELECTOR" and wide[1].split()[-1] == "app=tables-svc"
    api = client.CoreV1Api(config.new_client_from_config(kubeconfig))
    api.create_namespaced_event(
        "default",
        {
            "metadata": {"name": "tables-event"},
            "involvedObject": {"kind": "ConfigMap", "name": "tables-cm", "namespace": "default"},
            "reason": "Tabled",
            "message": "printed in columns",
            "type": "Warning",
            "source": {"component": "conformance"},
            "count": 3,
        },
    )
    lines = kubectl(kubeconfig, "get", "events", "--field-selector", "reason=Tabled").stdout.splitlines()
    assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert lines[1].split()[1:] == ["Warning", "Tabled", "configmap/tables-cm", "printed", "in", "columns"]
