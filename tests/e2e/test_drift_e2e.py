"""Drift: reports on a converged cluster, out-of-band changes found with path-level diffs, repair converges."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import boto3
import pytest
import yaml

from flows.check_drift import DRIFT_EVENT, check_drift
from flows.install_stack import run_install
from tasks.options import DriftMode
from tests.conftest import ROOT, TOOLS
from tests.support.commands import DEBUG_ON, TETRAGON_VERSION, cilium_release
from tests.support.flows import CLUSTER, mutations, options, stack_for


@pytest.fixture
def converged(sandbox, prefect_harness):
    result = run_install(stack_for(sandbox), options())
    assert result["ok"]
    return sandbox


def statuses(result) -> dict[str, str]:
    return {c["check"]: c["status"] for c in result["checks"]}


def diffs(result, check) -> list[str]:
    return next(c["diffs"] for c in result["checks"] if c["check"] == check)


def helm(sb, *args):
    kubeconfig = str(sb.clusters[CLUSTER].kubeconfig)
    proc = subprocess.run([str(TOOLS / "helm3"), *args, "--kubeconfig", kubeconfig], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def drift(sb, mode=DriftMode.report):
    return check_drift(stack=stack_for(sb), options=options(), mode=mode)


def event_on_server(event_id: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    deadline = time.monotonic() + 15
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            page = client.read_events(filter=EventFilter(event=EventNameFilter(name=[DRIFT_EVENT])), limit=50)
            if any(str(e.id) == event_id for e in page.events):
                return True
            time.sleep(0.5)
    return False


def test_converged_cluster_reports_all_ok_without_mutation(converged):
    since = time.time()
    result = drift(converged)
    assert result["summary"]["clean"] is True, result["summary"]
    assert set(statuses(result).values()) == {"ok"}
    assert "event" not in result
    assert mutations(converged, since) == []


@pytest.fixture
def aws_actions():
    from tasks.adapters import aws

    aws.USED_ACTIONS.clear()
    return aws.USED_ACTIONS


# Actions AWS checks without a call of their own: CreateNodegroup passes the node role.
IMPLIED_ACTIONS = {"iam:PassRole"}


def policy_actions() -> set[str]:
    policy = json.loads((ROOT / "configs" / "iam-policy.json").read_text())
    return {
        a for st in policy["Statement"] for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
    }


def test_out_of_band_changes_are_reported_repair_converges_and_teardown_cleans_up(aws_actions, converged, tmp_path):
    sb = converged
    # 1. a value changed with helm, out of band
    helm(sb, *cilium_release("upgrade", sb.chart_repo_url, *DEBUG_ON))
    # 2. another chart version of the DNS proxy
    other = tmp_path / "cilium-dnsproxy"
    shutil.copytree(ROOT / "sandbox" / "charts" / "standins" / "cilium-dnsproxy", other)
    chart = yaml.safe_load((other / "Chart.yaml").read_text())
    (other / "Chart.yaml").write_text(yaml.safe_dump({**chart, "version": "1.16.8"}))
    helm(sb, "upgrade", "cilium-dnsproxy", str(other), "-n", "kube-system", "--reuse-values")
    # 3. the nodegroup scaled by hand
    boto3.client("eks").update_nodegroup_config(
        clusterName=CLUSTER, nodegroupName="standard", scalingConfig={"minSize": 2, "maxSize": 3, "desiredSize": 3}
    )
    # 4. aws-node back in the cluster
    sb.call(sb._install_default_addons, sb.clusters[CLUSTER].emulator)
    time.sleep(1.0)

    report = drift(sb)
    s = statuses(report)
    assert report["summary"]["clean"] is False
    assert s["release cilium"] == "drifted"
    assert "debug.enabled: live true -> desired false" in diffs(report, "release cilium")
    assert s["release cilium-dnsproxy"] == "drifted"
    assert "chart version: live 1.16.8 -> desired 1.16.7" in diffs(report, "release cilium-dnsproxy")
    assert s["nodegroup standard"] == "drifted"
    assert any(d.startswith("scalingConfig.desiredSize: live 3, wanted 2") for d in diffs(report, "nodegroup standard"))
    assert s["CNI conflicts"] == "broken"
    assert "kube-system/aws-node: live present -> desired absent" in diffs(report, "CNI conflicts")
    assert report["event"]["id"] and event_on_server(report["event"]["id"])

    repaired = drift(sb, DriftMode.repair)
    assert repaired["summary"]["clean"] is True, repaired["summary"]
    assert "release cilium: agents restarted" in repaired["repaired"]
    assert drift(sb)["summary"]["clean"] is True

    # Teardown (test clusters): refused without the right confirmation, then reverse order, then idempotent.
    from flows.teardown_stack import teardown_stack
    from tasks.errors import ConfigError

    with pytest.raises(ConfigError, match="was not confirmed"):
        teardown_stack(confirm="isovalent-dem0", stack=stack_for(sb), options=options())
    gone = teardown_stack(confirm=CLUSTER, stack=stack_for(sb), options=options())
    assert gone["actions"] == [
        "release cilium-dnsproxy: uninstalled",
        "release tetragon: uninstalled",
        "nodegroup standard: deleted",
        "release cilium: uninstalled",
        "install record kube-system/eks-cilium-install: removed",
    ]
    again = teardown_stack(confirm=CLUSTER, stack=stack_for(sb), options=options())
    assert all(a.endswith(": absent") for a in again["actions"]), again["actions"]
    assert boto3.client("eks").list_nodegroups(clusterName=CLUSTER)["nodegroups"] == []

    # Least privilege: install, drift, repair and teardown used exactly the actions configs/iam-policy.json grants.
    used = set(aws_actions)
    missing = used - policy_actions()
    unused = policy_actions() - used - IMPLIED_ACTIONS
    assert not missing, f"actions used but not in configs/iam-policy.json: {sorted(missing)}"
    assert not unused, f"actions in configs/iam-policy.json that no flow used: {sorted(unused)}"


def test_drift_cli_exit_codes(converged, monkeypatch, tmp_path):
    """`eks-cilium drift` without Prefect knowledge: 0 when clean, 3 when drift is found."""
    from flows.cli import main

    monkeypatch.setattr("flows.cli.sandbox.DEFAULT_STATE", tmp_path / "no-state")
    # The CLI is given the sandbox through its own flags: here, a stack file pointing at its chart repository.
    stack_file = tmp_path / "stack.yaml"
    stack_file.write_text(yaml.safe_dump(json.loads(stack_for(converged).model_dump_json())))
    argv = ["drift", "--stack", str(stack_file), "--config-dir", str(ROOT / "configs"), "--output", "json"]
    assert main(argv) == 0
    helm(
        converged,
        "upgrade",
        "tetragon",
        "tetragon",
        "--version",
        TETRAGON_VERSION,
        "-n",
        "tetragon",
        "--reuse-values",
        "--set",
        "tetragon.dns.enabled=false",
        "--repo",
        converged.chart_repo_url,
    )
    assert main(argv) == 3
