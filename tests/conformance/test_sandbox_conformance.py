"""The real helm 3.17 and 4.1, kubectl and the kubernetes client against the Kubernetes API emulator."""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest
from kubernetes import client, config, watch

from tests.conftest import CONFIGS, ROOT, TOOLS
from tests.support.commands import helm, kubectl, run

# The real open-source charts (vendored tarballs, installed by path) and the DNS proxy's stand-in.
VENDORED = ROOT / "sandbox" / "charts" / "vendored"
CILIUM_CHART = VENDORED / "cilium-1.18.4.tgz"
TETRAGON_CHART = VENDORED / "tetragon-1.5.0.tgz"
DNSPROXY_CHART = ROOT / "sandbox" / "charts" / "standins" / "cilium-dnsproxy"
TESTDATA = ROOT / "tests" / "data" / "charts"


@pytest.fixture
def kubeconfig(sandbox):
    return str(sandbox.clusters["isovalent-demo"].kubeconfig)


WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: nginx, image: "nginx:1.27"}]
"""


def apply_web(kubeconfig, namespace="default", replicas=1, server_side=False):
    extra = ["--server-side"] if server_side else []
    return run(
        TOOLS / "kubectl",
        "--kubeconfig",
        kubeconfig,
        "apply",
        "-n",
        namespace,
        *extra,
        "-f",
        "-",
        input_text=WEB.replace("REPLICAS", str(replicas)),
    )


AGENT = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: cilium, namespace: kube-system}
spec:
  selector: {matchLabels: {k8s-app: cilium}}
  template:
    metadata: {labels: {k8s-app: cilium}}
    spec:
      hostNetwork: true
      tolerations: [{operator: Exists}]
      containers: [{name: agent, image: "quay.io/cilium/cilium:v1.18.4"}]
"""


def ready_nodes(sandbox, kubeconfig, desired=2):
    """A nodegroup plus a minimal CNI agent DaemonSet: nodes join and turn Ready."""
    create_nodegroup(sandbox, desired)
    run(TOOLS / "kubectl", "--kubeconfig", kubeconfig, "apply", "-f", "-", input_text=AGENT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        nodes = json.loads(kubectl(kubeconfig, "get", "nodes", "-o", "json").stdout)["items"]
        if len(nodes) == desired:
            break
        time.sleep(0.1)
    kubectl(kubeconfig, "wait", "--for=condition=Ready", "node", "--all", "--timeout=30s")


def create_nodegroup(sandbox, desired=2):
    eks = boto3.client("eks")
    role = boto3.client("iam").get_role(RoleName="isovalent-demo-node-role")["Role"]["Arn"]
    eks.create_nodegroup(
        clusterName="isovalent-demo",
        nodegroupName="standard",
        nodeRole=role,
        subnets=sandbox.network["subnets"]["private"],
        scalingConfig={"minSize": desired, "maxSize": desired, "desiredSize": desired},
    )


def install_cilium(helm_binary, kubeconfig, timeout, **kw):
    """`helm install` of the real Cilium chart with the runbook's values, the API server on loopback."""
    return helm(
        helm_binary,
        kubeconfig,
        "install",
        "cilium",
        CILIUM_CHART,
        "-n",
        "kube-system",
        "-f",
        CONFIGS / "cilium-enterprise-values.yaml",
        "--set",
        "k8sServiceHost=127.0.0.1",
        "--timeout",
        timeout,
        **kw,
    )


def test_upgrade_install_twice_then_status_values_history_rollback_uninstall(sandbox, helm_binary, kubeconfig):
    chart = DNSPROXY_CHART
    values = CONFIGS / "cilium-dns-proxy-ha-values.yaml"

    def upgrade_install(*flags):
        return json.loads(
            helm(
                helm_binary,
                kubeconfig,
                "upgrade",
                "--install",
                "dnsproxy",
                chart,
                "-n",
                "kube-system",
                "-f",
                values,
                *flags,
                "-o",
                "json",
            ).stdout
        )

    first = upgrade_install()
    assert first["version"] == 1 and first["info"]["status"] == "deployed"
    second = upgrade_install("--set", "enableCriticalPriorityClass=false")
    assert second["version"] == 2
    status = json.loads(helm(helm_binary, kubeconfig, "status", "dnsproxy", "-n", "kube-system", "-o", "json").stdout)
    assert status["info"]["status"] == "deployed"
    meta = json.loads(
        helm(helm_binary, kubeconfig, "get", "metadata", "dnsproxy", "-n", "kube-system", "-o", "json").stdout
    )
    assert meta["version"] == "1.16.7" and meta["revision"] == 2
    got = json.loads(
        helm(helm_binary, kubeconfig, "get", "values", "dnsproxy", "-n", "kube-system", "-o", "json").stdout
    )
    assert got == {"enableCriticalPriorityClass": False, "metrics": {"serviceMonitor": {"enabled": True}}}
    history = json.loads(helm(helm_binary, kubeconfig, "history", "dnsproxy", "-n", "kube-system", "-o", "json").stdout)
    assert [h["status"] for h in history] == ["superseded", "deployed"]
    helm(helm_binary, kubeconfig, "rollback", "dnsproxy", "1", "-n", "kube-system")
    ds = json.loads(kubectl(kubeconfig, "get", "ds", "cilium-dnsproxy", "-n", "kube-system", "-o", "json").stdout)
    assert ds["spec"]["template"]["spec"]["priorityClassName"] == "system-node-critical"
    listed = json.loads(helm(helm_binary, kubeconfig, "list", "-A", "-o", "json").stdout)
    assert [(r["name"], str(r["revision"])) for r in listed] == [("dnsproxy", "3")]
    helm(helm_binary, kubeconfig, "uninstall", "dnsproxy", "-n", "kube-system")
    assert kubectl(kubeconfig, "get", "ds", "cilium-dnsproxy", "-n", "kube-system", check=False).returncode != 0
    assert json.loads(helm(helm_binary, kubeconfig, "list", "-A", "-o", "json").stdout) == []


def test_two_releases_in_one_namespace_and_create_namespace(sandbox, helm_binary, kubeconfig):
    helm(helm_binary, kubeconfig, "install", "one", DNSPROXY_CHART, "-n", "kube-system")
    helm(helm_binary, kubeconfig, "install", "two", TETRAGON_CHART, "-n", "kube-system")
    helm(helm_binary, kubeconfig, "install", "tetragon", TETRAGON_CHART, "-n", "tetragon", "--create-namespace")
    names = sorted(r["name"] for r in json.loads(helm(helm_binary, kubeconfig, "list", "-A", "-o", "json").stdout))
    assert names == ["one", "tetragon", "two"]
    assert json.loads(kubectl(kubeconfig, "get", "ns", "tetragon", "-o", "json").stdout)["status"]["phase"] == "Active"


def test_hook_job_completes_only_after_nodes_are_ready_and_helm_waits_for_it(sandbox, helm_binary, kubeconfig):
    """The runbook's hazard, for real: with zero nodes the certificate hook Job is Pending and helm blocks;
    once the nodegroup exists, nodes join NotReady, turn Ready when the Cilium agent runs, the hook completes."""
    result: dict = {}

    def install():
        t0 = time.monotonic()
        result["proc"] = install_cilium(helm_binary, kubeconfig, "90s", check=False)
        result["seconds"] = time.monotonic() - t0

    t = threading.Thread(target=install)
    t.start()
    deadline = time.monotonic() + 30
    job = None
    while time.monotonic() < deadline:
        out = kubectl(
            kubeconfig,
            "get",
            "pods",
            "-n",
            "kube-system",
            "-l",
            "k8s-app=hubble-generate-certs",
            "-o",
            "json",
            check=False,
        )
        pods = json.loads(out.stdout)["items"] if out.returncode == 0 else []
        if pods:
            job = pods[0]
            break
        time.sleep(0.2)
    assert job is not None, "the hook Job's pod never appeared"
    time.sleep(1.0)
    assert t.is_alive(), "helm returned although the hook Job cannot run without nodes"
    pod = json.loads(
        kubectl(kubeconfig, "get", "pod", job["metadata"]["name"], "-n", "kube-system", "-o", "json").stdout
    )
    assert pod["status"]["phase"] == "Pending"
    assert "no nodes available" in pod["status"]["conditions"][0]["message"]
    create_nodegroup(sandbox)
    t.join(120)
    assert result["proc"].returncode == 0, result["proc"].stderr
    kubectl(kubeconfig, "wait", "--for=condition=Ready", "node", "--all", "--timeout=30s")
    kubectl(kubeconfig, "rollout", "status", "ds/cilium", "-n", "kube-system", "--timeout=30s")
    jobs = json.loads(kubectl(kubeconfig, "get", "jobs", "-n", "kube-system", "-o", "json").stdout)["items"]
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in jobs[0]["status"]["conditions"])


def test_upgrade_wait_and_wait_for_jobs_with_the_operator_spread_one_per_node(sandbox, helm_binary, kubeconfig):
    # The real operator's required pod anti-affinity puts one replica per node, so 3 replicas need 3 nodes. (On 2
    # nodes helm 3's --wait accepts 2/3 ready, replicas - maxUnavailable 50%; helm 4's kstatus wait times out.)
    create_nodegroup(sandbox, 3)
    install_cilium(helm_binary, kubeconfig, "60s")
    helm(
        helm_binary,
        kubeconfig,
        "upgrade",
        "cilium",
        CILIUM_CHART,
        "-n",
        "kube-system",
        "--reuse-values",
        "--set",
        "operator.replicas=3",
        "--wait",
        "--wait-for-jobs",
        "--timeout",
        "60s",
    )
    dep = json.loads(kubectl(kubeconfig, "get", "deploy", "cilium-operator", "-n", "kube-system", "-o", "json").stdout)
    assert dep["status"]["availableReplicas"] == 3
    pods = kubectl(kubeconfig, "get", "pods", "-n", "kube-system", "-l", "name=cilium-operator", "-o", "json").stdout
    assert len({p["spec"]["nodeName"] for p in json.loads(pods)["items"]}) == 3


def test_chart_with_crds_and_a_custom_resource(sandbox, helm_binary, kubeconfig):
    helm(helm_binary, kubeconfig, "install", "widgets", TESTDATA / "widgets", "-n", "default")
    out = json.loads(kubectl(kubeconfig, "get", "widgets.example.com", "-n", "default", "-o", "json").stdout)
    assert [i["metadata"]["name"] for i in out["items"]] == ["sample"]
    resources = kubectl(kubeconfig, "api-resources", "--api-group=example.com", "-o", "name").stdout.split()
    assert resources == ["widgets.example.com"]


def test_servicemonitors_without_the_crd_fail_as_each_real_chart_fails(
    tmp_path, monkeypatch, isolated_tools, helm_binary
):
    """Cilium's chart refuses to render; Tetragon's renders and the API server has no such kind."""
    from sandbox.runner import ClusterProfile
    from tests.conftest import start_sandbox

    sb = start_sandbox(tmp_path, monkeypatch, profile=ClusterProfile(servicemonitor_crd=False))
    try:
        kubeconfig = str(sb.clusters["isovalent-demo"].kubeconfig)
        proc = install_cilium(helm_binary, kubeconfig, "30s", check=False)
        assert proc.returncode != 0
        assert "Service Monitor requires monitoring.coreos.com/v1 CRDs" in proc.stderr
        values = CONFIGS / "tetragon-network-values.yaml"
        argv = ("install", "tetragon", TETRAGON_CHART, "-n", "kube-system", "-f", values)
        proc = helm(helm_binary, kubeconfig, *argv, check=False)
        assert proc.returncode != 0
        assert 'no matches for kind "ServiceMonitor" in version "monitoring.coreos.com/v1"' in proc.stderr
        assert json.loads(helm(helm_binary, kubeconfig, "list", "-A", "-o", "json").stdout) == []
    finally:
        sb.stop()


def test_kubectl_get_tables_across_namespaces(sandbox, kubeconfig):
    ready_nodes(sandbox, kubeconfig)
    apply_web(kubeconfig, replicas=2)
    kubectl(kubeconfig, "wait", "--for=condition=Available", "deploy/web", "--timeout=30s")
    out = kubectl(kubeconfig, "get", "ds,deploy,jobs,pods", "-A").stdout
    assert "deployment.apps/web" in out
    assert "NAMESPACE" in out


def test_kubernetes_client_list_watch_with_selectors_and_resume(sandbox, kubeconfig):
    api = config.new_client_from_config(config_file=kubeconfig)
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "a", "labels": {"app": "x"}}, "data": {"k": "1"}}
    )
    core.create_namespaced_config_map("default", {"metadata": {"name": "b", "labels": {"app": "y"}}})
    listed = core.list_namespaced_config_map("default", label_selector="app=x")
    assert [c.metadata.name for c in listed.items] == ["a"]
    by_field = core.list_namespaced_config_map("default", field_selector="metadata.name=b")
    assert [c.metadata.name for c in by_field.items] == ["b"]
    rv = listed.metadata.resource_version
    core.patch_namespaced_config_map("a", "default", {"data": {"k": "2"}})
    core.delete_namespaced_config_map("b", "default")
    events = []
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=2):
        events.append((ev["type"], ev["object"].metadata.name))
    assert ("MODIFIED", "a") in events and ("DELETED", "b") in events
    assert ("ADDED", "a") not in events, "resume from a resourceVersion must not replay older events"
    api.close()


def test_protobuf_secrets_and_strategic_merge_from_kubectl(sandbox, kubeconfig):
    kubectl(kubeconfig, "create", "secret", "generic", "s1", "--from-literal=password=hunter2")
    apply_web(kubeconfig)
    kubectl(kubeconfig, "set", "env", "deploy/web", "A=1")
    kubectl(kubeconfig, "set", "image", "deploy/web", "nginx=nginx:1.28")
    dep = json.loads(kubectl(kubeconfig, "get", "deploy", "web", "-o", "json").stdout)
    c = dep["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "nginx:1.28" and {"name": "A", "value": "1"} in c["env"]
    secret = json.loads(kubectl(kubeconfig, "get", "secret", "s1", "-o", "json").stdout)
    import base64

    assert base64.b64decode(secret["data"]["password"]) == b"hunter2"


def test_namespace_deletion_cascades_and_owner_gc(sandbox, kubeconfig):
    ready_nodes(sandbox, kubeconfig)
    kubectl(kubeconfig, "create", "ns", "scratch")
    apply_web(kubeconfig, namespace="scratch", server_side=True)
    kubectl(kubeconfig, "rollout", "status", "deploy/web", "-n", "scratch", "--timeout=30s")
    kubectl(kubeconfig, "delete", "deploy", "web", "-n", "scratch")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pods = json.loads(kubectl(kubeconfig, "get", "pods,rs", "-n", "scratch", "-o", "json").stdout)["items"]
        if not pods:
            break
        time.sleep(0.2)
    assert pods == [], "ReplicaSets and pods must be garbage-collected with their Deployment"
    kubectl(kubeconfig, "delete", "ns", "scratch", "--timeout=30s")
    assert kubectl(kubeconfig, "get", "ns", "scratch", check=False).returncode != 0


def test_server_side_apply_prunes_fields_the_manager_stopped_applying(sandbox, kubeconfig):
    manifest = """
apiVersion: v1
kind: ConfigMap
metadata: {name: applied, labels: {a: "1", b: "2"}}
data: {x: "1", y: "2"}
"""
    run(TOOLS / "kubectl", "--kubeconfig", kubeconfig, "apply", "--server-side", "-f", "-", input_text=manifest)
    run(
        TOOLS / "kubectl",
        "--kubeconfig",
        kubeconfig,
        "apply",
        "--server-side",
        "-f",
        "-",
        input_text=manifest.replace(', y: "2"', "").replace(', b: "2"', ""),
    )
    cm = json.loads(kubectl(kubeconfig, "get", "cm", "applied", "-o", "json").stdout)
    assert cm["data"] == {"x": "1"} and cm["metadata"]["labels"] == {"a": "1"}


def test_put_with_a_stale_resource_version_is_a_conflict(sandbox, kubeconfig):
    api = config.new_client_from_config(config_file=kubeconfig)
    core = client.CoreV1Api(api)
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "c"}, "data": {"v": "1"}})
    core.patch_namespaced_config_map("c", "default", {"data": {"v": "2"}})
    cm.data = {"v": "3"}
    with pytest.raises(client.ApiException) as e:
        core.replace_namespaced_config_map("c", "default", cm)
    assert e.value.status == 409
    api.close()


def test_image_pulls_delay_only_pods_that_have_not_started_and_timers_of_gone_pods_are_forgotten(sandbox, kubeconfig):
    controllers = sandbox.clusters["isovalent-demo"].controllers
    ready_nodes(sandbox, kubeconfig)
    controllers.config.pod_start_seconds = (0.3, 0.6)
    apply_web(kubeconfig, replicas=3)
    kubectl(kubeconfig, "rollout", "status", "deploy/web", "--timeout=30s")
    pulls = [p for p in controllers.pulls if p[2].startswith("web-")]
    assert len(pulls) == 3 and all(0.3 <= p[3] <= 0.6 for p in pulls), pulls
    # Running pods stay Running across later controller passes (no new pull each pass).
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        phases = {
            p["status"]["phase"]
            for p in json.loads(kubectl(kubeconfig, "get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
        }
        assert phases == {"Running"}, phases
        time.sleep(0.2)
    kubectl(kubeconfig, "delete", "deploy", "web", "--wait=true")
    kubectl(kubeconfig, "wait", "--for=delete", "pod", "-l", "app=web", "--timeout=30s")
    controllers.timers.update({"gone-uid": 1.0, "run:gone-uid": 1.0, "node-ready:no-such-node": 1.0})
    controllers.prune_timers()
    assert not {"gone-uid", "run:gone-uid", "node-ready:no-such-node"} & set(controllers.timers)


def test_kubectl_scale_and_the_client_scale_subresource(sandbox, kubeconfig):
    ready_nodes(sandbox, kubeconfig)
    apply_web(kubeconfig, replicas=1)
    kubectl(kubeconfig, "scale", "deploy/web", "--replicas=3")
    kubectl(kubeconfig, "rollout", "status", "deploy/web", "--timeout=30s")
    apps = client.AppsV1Api(config.new_client_from_config(config_file=kubeconfig))
    scale = apps.read_namespaced_deployment_scale("web", "default")
    assert scale.spec.replicas == 3 and scale.status.replicas == 3
    apps.patch_namespaced_deployment_scale("web", "default", {"spec": {"replicas": 1}})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pods = json.loads(kubectl(kubeconfig, "get", "pods", "-l", "app=web", "-o", "json").stdout)["items"]
        if len(pods) == 1:
            break
        time.sleep(0.2)
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    assert apps.read_namespaced_deployment("web", "default").spec.replicas == 1
