"""End-to-end: the real install flow against the sandbox, with real helm 3 and helm 4."""

from __future__ import annotations

import time

import pytest

from flows.install_stack import VerificationFailed, run_install
from tasks.errors import EksCiliumError, PermanentError, PreflightFailed, SensorTimeout
from tasks.model import load_stack
from tasks.options import RunOptions, Timeouts
from tests.conftest import CONFIGS, start_sandbox
from tests.support.commands import kubectl
from tests.support.flows import CLUSTER, aws_nodegroups, helm_revisions, mutations, options, stack_for
from tests.support.manifests import hook_objects, live, live_drift, rendered


def test_happy_path_every_check_green_then_a_second_run_changes_nothing(sandbox, helm_binary, prefect_harness):
    result = run_install(stack_for(sandbox), options())
    assert result["ok"] is True
    failed = [c for c in result["verification"]["checks"] if not c["ok"]]
    assert failed == []
    names = {c["name"] for c in result["verification"]["checks"]}
    assert {
        "nodes Ready",
        "cilium: one cilium pod Running per node",
        "cilium: Hubble Relay (Deployment hubble-relay)",
        "cilium: Hubble Timescape (Deployment hubble-timescape)",
        "cilium: operator (Deployment cilium-operator)",
        "tetragon: operator (Deployment tetragon-operator)",
        "cilium-dnsproxy: DNS proxy (DaemonSet cilium-dnsproxy)",
        "cilium: ServiceMonitors",
    } <= names
    assert {r: v["action"] for r, v in result["releases"].items()} == {
        "cilium": "installed",
        "tetragon": "installed",
        "cilium-dnsproxy": "installed",
    }

    # The DAG: the nodegroup is created only once Cilium's objects exist, and before the Cilium install returns.
    t = {(e["step"], e["event"]): e["t"] for e in result["timeline"]}
    assert t[("Cilium objects applied", "done")] <= t[("create nodegroup", "start")]
    assert t[("create nodegroup", "start")] < t[("helm cilium", "done")]

    kubeconfig = str(sandbox.clusters[CLUSTER].kubeconfig)
    # Each release created exactly the objects real `helm template` renders for it from its values: no object lost
    # or doubled by the emulator (kinds and names, counted), the real charts' hooks included.
    for name, rel in stack_for(sandbox).releases.items():
        chart = rel.chart.split("/", 1)[1]
        want = rendered(helm_binary, kubeconfig, name, rel.namespace, chart, rel.version, sandbox.chart_repo_url)
        hooks = hook_objects(helm_binary, kubeconfig, name, rel.namespace)
        assert live(kubeconfig, name, rel.namespace, {k for k, _ in want}, hooks) == want, name
        # ... and every field those manifests set reads back unchanged: object-level drift has no false positives.
        assert live_drift(helm_binary, kubeconfig, name, rel.namespace) == [], name

    before = helm_revisions(sandbox, helm_binary, kubeconfig)
    since = time.time()
    again = run_install(stack_for(sandbox), options())
    assert again["ok"] is True
    assert {r: v["action"] for r, v in again["releases"].items()} == dict.fromkeys(before, "unchanged")
    assert again["nodegroup"]["action"] == "unchanged"
    assert helm_revisions(sandbox, helm_binary, kubeconfig) == before
    assert mutations(sandbox, since) == []
    assert aws_nodegroups(sandbox) == ["standard"]

    # An operator's live edit is one row naming the object and the path.
    kubectl(kubeconfig, "-n", "kube-system", "patch", "cm", "cilium-config", "-p", '{"data":{"enable-hubble":"false"}}')
    assert live_drift(helm_binary, kubeconfig, "cilium", "kube-system") == [
        'ConfigMap kube-system/cilium-config data.enable-hubble: live "false" → desired "true"'
    ]


def test_dry_run_reports_the_plan_and_mutates_nothing(sandbox, prefect_harness):
    since = time.time()
    result = run_install(stack_for(sandbox), options(dry_run=True))
    assert result["dry_run"] is True
    actions = {s["step"]: s["action"] for s in result["plan"]}
    assert actions == {
        "release cilium": "install",
        "nodegroup standard": "create",
        "release tetragon": "install",
        "release cilium-dnsproxy": "install",
    }
    cilium = next(s for s in result["plan"] if s["step"] == "release cilium")
    assert cilium["command"].startswith("helm upgrade --install cilium isovalent/cilium --version 1.18.4")
    assert mutations(sandbox, since) == []
    assert aws_nodegroups(sandbox) == []


def _expect_failure_before_mutation(sb, exc_type, *needles, **opts):
    since = time.time()
    with pytest.raises(exc_type) as e:
        run_install(stack_for(sb), options(**opts))
    text = str(e.value)
    for n in needles:
        assert n in text, text
    assert mutations(sb, since) == []
    assert aws_nodegroups(sb) == []
    return text


def test_default_addons_present_fail_preflight_before_any_change(
    tmp_path, monkeypatch, isolated_tools, prefect_harness
):
    from sandbox.runner import ClusterProfile

    sb = start_sandbox(tmp_path, monkeypatch, profile=ClusterProfile(default_addons=True))
    try:
        text = _expect_failure_before_mutation(sb, PreflightFailed, "vpc-cni", "kube-system/aws-node", "delete-addon")
        assert "nothing in the cluster or in AWS was changed" in text
    finally:
        sb.stop()


def test_missing_servicemonitor_crd_fails_preflight_naming_the_fix(
    tmp_path, monkeypatch, isolated_tools, prefect_harness
):
    from sandbox.runner import ClusterProfile

    sb = start_sandbox(tmp_path, monkeypatch, profile=ClusterProfile(servicemonitor_crd=False))
    try:
        _expect_failure_before_mutation(
            sb, PreflightFailed, "servicemonitors.monitoring.coreos.com", "prometheus-operator-crds", "trustCRDsExist"
        )
    finally:
        sb.stop()


def test_eksctl_method_without_eksctl_fails_before_any_change(sandbox, prefect_harness, monkeypatch):
    import os
    import shutil

    from tasks.errors import ToolError
    from tasks.options import NodegroupMethod

    # Whatever this machine has: the run must find no eksctl.
    monkeypatch.setenv(
        "PATH",
        os.pathsep.join(
            d for d in os.environ["PATH"].split(os.pathsep) if not (d and os.path.exists(os.path.join(d, "eksctl")))
        ),
    )
    assert shutil.which("eksctl") is None
    _expect_failure_before_mutation(
        sandbox,
        ToolError,
        "nodegroup_method=eksctl but eksctl is not on PATH",
        "use nodegroup_method=native",
        nodegroup_method=NodegroupMethod.eksctl,
    )


def test_cluster_not_active_within_the_deadline(tmp_path, monkeypatch, isolated_tools, prefect_harness):
    from sandbox.runner import ClusterProfile

    sb = start_sandbox(tmp_path, monkeypatch, profile=ClusterProfile(creating_polls=10_000))
    try:
        _expect_failure_before_mutation(
            sb, SensorTimeout, "not ready after 2 s", "last state: CREATING", timeouts=Timeouts(endpoint=2)
        )
    finally:
        sb.stop()


def test_unknown_cluster_fails_fast_with_a_hint(sandbox, prefect_harness, tmp_path):
    import shutil

    cfg = tmp_path / "configs"
    shutil.copytree(CONFIGS, cfg)
    ng = cfg / "nodegroup.yaml"
    ng.write_text(ng.read_text().replace("name: isovalent-demo", "name: no-such-cluster"))
    stack = load_stack(
        cfg,
        "sandbox",
        patch={"chart_repository": {"url": sandbox.chart_repo_url}, "cluster": {"name": "no-such-cluster"}},
    )
    t0 = time.monotonic()
    with pytest.raises(PermanentError) as e:
        run_install(stack, RunOptions(config_dir=str(cfg), environment="sandbox"))
    assert "not found" in str(e.value) and "list-clusters" in str(e.value)
    assert time.monotonic() - t0 < 30, "an unknown cluster is a permanent error: no polling until the deadline"


@pytest.mark.parametrize(
    ("outcome", "status", "code", "message"),
    [
        ("create_failed", "CREATE_FAILED", "NodeCreationFailure", "Instances failed to join the kubernetes cluster"),
        (
            "degraded",
            "DEGRADED",
            "AsgInstanceLaunchFailures",
            "Could not launch On-Demand Instances. InsufficientInstanceCapacity",
        ),
    ],
)
def test_failed_or_degraded_nodegroup_shows_the_health_issue(
    tmp_path, monkeypatch, isolated_tools, prefect_harness, outcome, status, code, message
):
    """The boto3 waiter would ignore DEGRADED and wait 40 minutes; the sensor fails at once with the issue."""
    from sandbox.aws import NodegroupBehaviour
    from sandbox.runner import ClusterProfile

    behaviour = NodegroupBehaviour(outcome=outcome, issue_code=code, issue_message=message)
    sb = start_sandbox(tmp_path, monkeypatch, profile=ClusterProfile(nodegroup=behaviour))
    try:
        t0 = time.monotonic()
        with pytest.raises(EksCiliumError) as e:
            run_install(stack_for(sb), options())
        text = str(e.value)
        assert status in text and code in text and message in text
        assert time.monotonic() - t0 < 120
    finally:
        sb.stop()


def test_crash_looping_cilium_agents_are_named_in_the_diagnosis(tmp_path, monkeypatch, isolated_tools, prefect_harness):
    """Agents that never run leave the nodes NotReady; EKS then fails the nodegroup. The error names the pods."""
    from sandbox.aws import NodegroupBehaviour
    from sandbox.kube.controllers import PodPolicy, SimConfig
    from sandbox.runner import ClusterProfile

    sim = SimConfig(
        pod_policies=[PodPolicy(selector={"k8s-app": "cilium"}, mode="crashloop", message="BPF filesystem not mounted")]
    )
    profile = ClusterProfile(nodegroup=NodegroupBehaviour(fail_after_seconds=4))
    sb = start_sandbox(tmp_path, monkeypatch, sim=sim, profile=profile)
    try:
        with pytest.raises(EksCiliumError) as e:
            run_install(stack_for(sb), options())
        text = str(e.value)
        assert "CREATE_FAILED" in text and "NotReady" in text
        assert "CrashLoopBackOff" in text and "BPF filesystem not mounted" in text and "kube-system/cilium-" in text
    finally:
        sb.stop()


def test_verification_failure_returns_the_report(sandbox, prefect_harness):
    """A check that cannot pass (a ServiceMonitor the chart never creates) fails the run with the full report."""
    stack = load_stack(
        CONFIGS,
        "sandbox",
        patch={
            "chart_repository": {"url": sandbox.chart_repo_url},
            "releases": {"cilium-dnsproxy": {"service_monitors": ["dnsproxy", "nonexistent"]}},
        },
    )
    with pytest.raises(VerificationFailed) as e:
        run_install(stack, options())
    bad = [c for c in e.value.result["verification"]["checks"] if not c["ok"]]
    assert [c["name"] for c in bad] == ["cilium-dnsproxy: ServiceMonitors"]
    assert "missing nonexistent" in bad[0]["observed"]
