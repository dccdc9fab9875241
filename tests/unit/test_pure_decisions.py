"""Table tests of the pure decisions: helm argv, readiness verdicts, preflight, drift, subnets, diffs, sensing."""

from __future__ import annotations

import os
import stat
from dataclasses import replace

import pytest

from tasks import drift, helm_argv, preflight, readiness
from tasks.adapters.helm import Helm, find_helm, parse_version
from tasks.diff import diff_values
from tasks.errors import ConfigError, PermanentError, SensorTimeout, ToolError, TransientError
from tasks.model import Component
from tasks.network import pick_node_role, private_subnets
from tasks.results import LiveRelease
from tasks.steps.sensing import wait_until

# ---- helm argv ---------------------------------------------------------------------------------------------


def test_upgrade_install_argv_is_the_runbooks_install_made_idempotent():
    argv = helm_argv.upgrade_install(
        "helm",
        "tetragon",
        "isovalent/tetragon",
        "1.18.0",
        "tetragon",
        "/tmp/v.yaml",
        timeout_seconds=600,
        create_namespace=True,
        kubeconfig="/tmp/kc",
    )
    assert argv == [
        "helm",
        "upgrade",
        "--install",
        "tetragon",
        "isovalent/tetragon",
        "--version",
        "1.18.0",
        "--namespace",
        "tetragon",
        "--values",
        "/tmp/v.yaml",
        "--timeout",
        "600s",
        "-o",
        "json",
        "--create-namespace",
        "--kubeconfig",
        "/tmp/kc",
    ]


@pytest.mark.parametrize(
    ("builder", "expected"),
    [
        (
            lambda: helm_argv.list_releases("helm", "kube-system", helm_major=3),
            ["helm", "list", "--namespace", "kube-system", "--all", "-o", "json"],
        ),
        (
            lambda: helm_argv.list_releases("helm", "kube-system", helm_major=4),
            ["helm", "list", "--namespace", "kube-system", "-o", "json"],
        ),
        (
            lambda: helm_argv.repo_add("helm", "isovalent", "https://helm.isovalent.com", username="u"),
            [
                "helm",
                "repo",
                "add",
                "isovalent",
                "https://helm.isovalent.com",
                "--force-update",
                "--username",
                "u",
                "--password-stdin",
            ],
        ),
        (
            lambda: helm_argv.rollback("helm", "cilium", "kube-system", 3, timeout_seconds=60),
            ["helm", "rollback", "cilium", "3", "--namespace", "kube-system", "--timeout", "60s"],
        ),
        (
            lambda: helm_argv.upgrade_install(
                "helm", "c", "./charts/c", "1.0.0", "ns", "v.yaml", timeout_seconds=30, dry_run=True
            )[-1],
            "--dry-run=server",
        ),
    ],
)
def test_argv_table(builder, expected):
    assert builder() == expected


@pytest.mark.parametrize("bad", ["--set=x", "-n", "a b", "x;rm -rf /", "$(id)", "", "rel\nname"])
def test_positional_arguments_cannot_become_flags_or_shell(bad):
    with pytest.raises(ConfigError):
        helm_argv.upgrade_install(
            "helm", bad, "isovalent/cilium", "1.18.4", "kube-system", "v.yaml", timeout_seconds=60
        )


def test_shell_line_quotes_for_display():
    assert helm_argv.shell_line(["helm", "status", "a b"]) == "helm status 'a b'"


# ---- helm discovery ----------------------------------------------------------------------------------------------
def _fake_helm(tmp_path, version: str) -> str:
    path = tmp_path / "helm"
    path.write_text(f"#!/bin/sh\necho '{version}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.mark.parametrize(
    ("text", "parsed"), [("v3.17.3", (3, 17, 3)), ("v4.1.4+g05fa379", (4, 1, 4)), ("garbage", None)]
)
def test_parse_version(text, parsed):
    assert parse_version(text) == parsed


def test_too_old_helm_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ToolError, match="too old") as e:
        Helm(_fake_helm(tmp_path, "v3.10.0")).check_version()
    assert "scripts/bootstrap" in str(e.value)


def test_helm_is_found_through_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("EKS_CILIUM_HELM", _fake_helm(tmp_path, "v3.17.3"))
    assert find_helm() == os.environ["EKS_CILIUM_HELM"]


# ---- readiness -------------------------------------------------------------------------------------------------
def ds(gen=1, observed=1, desired=2, updated=2, available=2):
    return {
        "metadata": {"generation": gen},
        "spec": {"updateStrategy": {"type": "RollingUpdate"}},
        "status": {
            "observedGeneration": observed,
            "desiredNumberScheduled": desired,
            "updatedNumberScheduled": updated,
            "numberAvailable": available,
        },
    }


@pytest.mark.parametrize(
    ("obj", "ready", "words"),
    [
        (ds(), True, "2/2 available"),
        (ds(gen=2, observed=1), False, "observe generation 2"),
        (ds(updated=1), False, "rollout in progress"),
        (ds(available=1), False, "waiting for pods"),
        (None, False, "does not exist"),
    ],
)
def test_daemonset_rollout_like_kubectl(obj, ready, words):
    v = readiness.daemonset(obj)
    assert v.ready is ready and words in v.summary


def test_daemonset_on_fewer_nodes_than_expected_is_not_ready():
    assert not readiness.daemonset(ds(desired=1, updated=1, available=1), expected_nodes=2).ready


def dep(replicas=2, updated=2, ready=2, available=2, available_cond="True", reason="NewReplicaSetAvailable"):
    return {
        "metadata": {"generation": 1},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 1,
            "replicas": updated,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": [
                {"type": "Available", "status": available_cond},
                {"type": "Progressing", "status": "True", "reason": reason},
            ],
        },
    }


@pytest.mark.parametrize(
    ("obj", "ready", "failed"),
    [
        (dep(), True, False),
        (dep(available=1), False, False),
        (dep(available_cond="False"), True, False),  # as kubectl
        (dep(reason="ProgressDeadlineExceeded"), False, True),
        (dep(updated=1), False, False),
    ],
)
def test_deployment_verdicts(obj, ready, failed):
    v = readiness.deployment(obj)
    assert (v.ready, v.failed) == (ready, failed)


@pytest.mark.parametrize(
    ("conds", "ready", "failed"),
    [
        ([{"type": "Complete", "status": "True"}], True, False),
        ([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}], False, True),
        ([], False, False),
    ],
)
def test_job_verdicts(conds, ready, failed):
    v = readiness.job({"status": {"conditions": conds}})
    assert (v.ready, v.failed) == (ready, failed)


@pytest.mark.parametrize(
    ("status", "ready", "failed"),
    [("ACTIVE", True, False), ("CREATING", False, False), ("CREATE_FAILED", False, True), ("DEGRADED", False, True)],
)
def test_nodegroup_verdicts(status, ready, failed):
    v = readiness.nodegroup(
        {"status": status, "health": {"issues": [{"code": "X", "message": "m", "resourceIds": ["i-1"]}]}}
    )
    assert (v.ready, v.failed) == (ready, failed)
    if failed:
        assert "X: m (i-1)" in v.summary


def test_pod_problems_name_reasons():
    pod = {
        "metadata": {"namespace": "kube-system", "name": "cilium-abc"},
        "spec": {"nodeName": "n1"},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {
                    "name": "agent",
                    "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "boom"}},
                }
            ],
        },
    }
    assert readiness.pod_problems([pod]) == [
        "kube-system/cilium-abc on n1: phase Running; agent: CrashLoopBackOff - boom (restarts 4)"
    ]


# ---- preflight ---------------------------------------------------------------------------------------------
def facts(**kw):
    base = {
        "cluster": "c",
        "region": "us-east-1",
        "principal": "arn:aws:iam::1:user/u",
        "addons": [],
        "kube_system_daemonsets": [],
        "nodes": [],
        "servicemonitor_crd": True,
        "admin_allowed": True,
        "admin_reason": "",
    }
    return preflight.ClusterFacts(**{**base, **kw})


def test_nodes_of_the_stacks_own_nodegroup_do_not_block_a_resumed_install_but_other_nodes_do():
    own = {"n1": "standard", "n2": "standard"}
    assert preflight.evaluate(facts(nodes=["n1", "n2"], node_nodegroups=own, own_nodegroup="standard"), {}) == []
    problems = preflight.evaluate(
        facts(nodes=["n1", "x9"], node_nodegroups={**own, "x9": "legacy"}, own_nodegroup="standard"), {}
    )
    assert len(problems) == 1 and "1 node(s) outside the stack's nodegroup already exist (x9)" in problems[0]


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"addons": ["vpc-cni"]}, "delete-addon"),
        ({"kube_system_daemonsets": ["aws-node", "kube-proxy"]}, "kube-system/aws-node, kube-system/kube-proxy"),
        ({"nodes": ["n1"]}, "another CNI"),
        ({"servicemonitor_crd": False}, "prometheus.serviceMonitor"),
        ({"admin_allowed": False}, "AmazonEKSClusterAdminPolicy"),
        (
            {
                "releases": {"cilium": preflight.ReleaseState("cilium", "kube-system", "pending-upgrade", 3, None, 2)},
                "recover_pending": False,
            },
            "helm rollback cilium 2",
        ),
    ],
)
def test_each_preflight_problem_says_the_fix(kw, needle):
    problems = preflight.evaluate(facts(**kw), {"cilium": {"prometheus": {"serviceMonitor": {"enabled": True}}}})
    assert len(problems) == 1 and needle in problems[0]


def test_clean_cluster_passes_and_nodes_are_fine_once_cilium_is_deployed():
    assert preflight.evaluate(facts(), {}) == []
    deployed = {"cilium": preflight.ReleaseState("cilium", "kube-system", "deployed", 1)}
    assert preflight.evaluate(facts(nodes=["n1"], releases=deployed), {}) == []


def test_only_cilium_charts_one_trust_crds_path_lets_a_missing_crd_pass():
    """Cilium's chart honours prometheus.serviceMonitor.trustCRDsExist (templates/validate.yaml) and nothing else;
    a nested trustCRDsExist does nothing in the real charts, so it must not silence the preflight."""
    monitored = {"serviceMonitor": {"enabled": True}}
    nested = {"relay": {"serviceMonitor": {"enabled": True, "trustCRDsExist": True}}}
    trusted = {"prometheus": {"serviceMonitor": {"enabled": True, "trustCRDsExist": True}}, "relay": monitored}
    components = {"cilium": Component.cilium, "tetragon": Component.tetragon}
    no_crd = facts(servicemonitor_crd=False, components=components)
    assert preflight.evaluate(no_crd, {"cilium": trusted}) == []
    [problem] = preflight.evaluate(no_crd, {"cilium": nested, "tetragon": {"tetragon": monitored}})
    assert "release cilium at relay.serviceMonitor; release tetragon at tetragon.serviceMonitor" in problem
    assert (
        "release cilium (Cilium's chart) can be told so with prometheus.serviceMonitor.trustCRDsExist: true" in problem
    )
    assert "tetragon has no such switch" in problem
    [problem] = preflight.evaluate(no_crd, {"tetragon": trusted})  # tetragon's chart has no such switch
    assert "release tetragon at prometheus.serviceMonitor" in problem and "trustCRDsExist" not in problem


# ---- drift, diffs, network ------------------------------------------------------------------------------------------
def test_values_diff_is_path_level_and_null_equals_absent():
    d = diff_values({"a": {"b": 1, "c": None}, "l": [1]}, {"a": {"b": 2}, "l": [1, 2]})
    assert [str(x) for x in d] == ["a.b: live 1 -> desired 2", "l: live [1] -> desired [1, 2]"]


def test_release_drift_statuses():
    assert drift.release_drift("r", "1.0.0", None, {}).status == drift.BROKEN
    live = LiveRelease(status="deployed", version="1.0.0", revision=2, config={"a": 1})
    assert drift.release_drift("r", "1.0.0", live, {"a": 1}).ok
    d = drift.release_drift("r", "1.0.1", live, {"a": 2})
    assert d.status == drift.DRIFTED and d.diffs == [
        "chart version: live 1.0.0 -> desired 1.0.1",
        "a: live 1 -> desired 2",
    ]
    assert drift.release_drift("r", "1.0.0", replace(live, status="failed"), {"a": 1}).status == drift.BROKEN


def test_cni_drift_and_summary():
    items = [drift.cni_drift(["vpc-cni"], ["aws-node"]), drift.nodes_drift(2, 2, 2)]
    s = drift.summary(items)
    assert s["clean"] is False and s["broken"] == 1 and items[0].repair is None


def test_private_subnets_follow_route_tables_not_tags():
    subnets = [
        {"SubnetId": "s-pub", "AvailabilityZone": "a"},
        {"SubnetId": "s-priv", "AvailabilityZone": "b"},
        {"SubnetId": "s-main", "AvailabilityZone": "c"},
    ]
    tables = [
        {
            "Associations": [{"SubnetId": "s-pub"}],
            "Routes": [{"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": "igw-1"}],
        },
        {
            "Associations": [{"SubnetId": "s-priv"}],
            "Routes": [{"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": "nat-1"}],
        },
        {"Associations": [{"Main": True}], "Routes": [{"DestinationCidrBlock": "10.0.0.0/16", "GatewayId": "local"}]},
    ]
    assert private_subnets(subnets, tables) == ["s-priv", "s-main"]


def test_node_role_candidates():
    assert pick_node_role(
        ["isovalent-demo-node-role", "other-node", "isovalent-demo-cluster-role"], "isovalent-demo"
    ) == ["isovalent-demo-node-role"]


def test_node_role_candidates_match_the_cluster_name_as_a_whole_word():
    roles = ["prod-1-node-role", "prod-10-node-role", "prod-11-node-role", "eks-prod-1-nodes"]
    assert pick_node_role(roles, "prod-1") == ["eks-prod-1-nodes", "prod-1-node-role"]


# ---- sensing ------------------------------------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.t = 0.0

    def now(self):
        return self.t

    def sleep(self, s):
        self.t += s


def test_wait_until_times_out_with_the_last_state_and_diagnosis():
    c = Clock()
    with pytest.raises(SensorTimeout) as e:
        wait_until(
            lambda: readiness.Verdict(False, "1/2 Ready"),
            what="nodes",
            timeout=5,
            interval=1,
            hint="look",
            diagnose=lambda: ["node n2: NotReady"],
            clock=c.now,
            sleep=c.sleep,
        )
    assert "not ready after 5 s" in str(e.value) and "1/2 Ready" in str(e.value) and "node n2: NotReady" in str(e.value)


def test_wait_until_tolerates_transient_errors_and_stops_on_terminal_ones():
    c = Clock()
    calls = iter([TransientError("throttled"), readiness.Verdict(True, "done")])

    def probe():
        v = next(calls)
        if isinstance(v, Exception):
            raise v
        return v

    assert wait_until(probe, what="x", timeout=10, interval=1, hint="h", clock=c.now, sleep=c.sleep).ready
    with pytest.raises(PermanentError, match="CREATE_FAILED"):
        wait_until(
            lambda: readiness.Verdict(False, "CREATE_FAILED", failed=True),
            what="ng",
            timeout=10,
            interval=1,
            hint="h",
            clock=c.now,
            sleep=c.sleep,
        )


def test_only_runs_crashed_before_their_process_started_count_as_never_started():
    from flows.fleet import never_started

    assert never_started("CRASHED", "Failed to submit flow run to infrastructure: PrefectHTTPStatusError: 503")
    assert never_started("CRASHED", "Flow run could not start: [Errno 2] No such file or directory")
    # Once the process ran, flow code may have changed the cluster: never resubmitted blindly.
    assert not never_started("CRASHED", "Flow run infrastructure exited with non-zero status code -9.")
    assert not never_started("FAILED", "Flow run could not start: x")
    assert not never_started("COMPLETED", "")
