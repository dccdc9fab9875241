"""End-to-end: the stack's cluster name and id reach cilium-config, a hand-edited identity is flagged by verification
and drift, and inputs that must be refused are refused through the real flow before AWS or the cluster changes."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from kubernetes import client, config

from flows.check_drift import check_drift
from flows.install_stack import VerificationFailed, run_install
from tasks.errors import ConfigError
from tasks.model import load_stack
from tasks.options import DriftMode, RunOptions
from tests.conftest import CONFIGS, TOOLS, start_sandbox

NAME, ID = "prod-eu", 7
IDENTITY = "cilium: cluster identity (ConfigMap kube-system/cilium-config)"


def configs_for(tmp_path: Path, name: str) -> Path:
    """A copy of configs/ for cluster `name` (the nodegroup file names its cluster)."""
    cfg = tmp_path / "configs"
    shutil.copytree(CONFIGS, cfg)
    ng = cfg / "nodegroup.yaml"
    ng.write_text(ng.read_text().replace("name: isovalent-demo", f"name: {name}"))
    return cfg


def options(cfg: Path, **kw) -> RunOptions:
    return RunOptions(config_dir=str(cfg), environment="sandbox", poll_interval_seconds=0.2, **kw)


def core(sb, name: str) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(config_file=str(sb.clusters[name].kubeconfig)))


def mutations(sb, name: str, since: float) -> list[str]:
    """Writes the cluster saw after `since`, leaving out dry runs and access reviews (they change nothing)."""
    return [
        f"{r['method']} {r['path']}"
        for r in list(sb.clusters[name].emulator.request_log)
        if r.get("t", 0) >= since
        and r.get("method") in ("POST", "PUT", "PATCH", "DELETE")
        and "dryRun=All" not in r.get("query", "")
        and "accessreviews" not in r.get("path", "")
    ]


@pytest.fixture
def prod_eu(tmp_path, monkeypatch, isolated_tools):
    sb = start_sandbox(tmp_path, monkeypatch, clusters=[NAME])
    yield sb
    sb.stop()


def test_the_stacks_cluster_name_and_id_reach_cilium_config_and_a_hand_edit_is_flagged(
    tmp_path, prod_eu, prefect_harness
):
    cfg = configs_for(tmp_path, NAME)
    stack = load_stack(
        cfg, "sandbox", patch={"cluster": {"name": NAME, "id": ID}, "chart_repository": {"url": prod_eu.chart_repo_url}}
    )
    result = run_install(stack, options(cfg))
    assert result["ok"] is True
    identity = next(c for c in result["verification"]["checks"] if c["name"] == IDENTITY)
    assert identity == {
        "name": IDENTITY,
        "expected": "cluster-name 'prod-eu', cluster-id '7'",
        "observed": "cluster-name 'prod-eu', cluster-id '7'",
        "ok": True,
    }

    api = core(prod_eu, NAME)
    data = api.read_namespaced_config_map("cilium-config", "kube-system").data
    assert (data["cluster-name"], data["cluster-id"]) == (NAME, str(ID))
    values = subprocess.run(
        [
            str(TOOLS / "helm3"),
            "get",
            "values",
            "cilium",
            "-n",
            "kube-system",
            "-o",
            "json",
            "--kubeconfig",
            str(prod_eu.clusters[NAME].kubeconfig),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"cluster":{"id":7,"name":"prod-eu"}' in values.stdout.replace(" ", "")

    # Someone edits the ConfigMap by hand: the release's values are unchanged, the agents' identity is not.
    api.patch_namespaced_config_map("cilium-config", "kube-system", {"data": {"cluster-name": "isovalent-demo"}})
    report = check_drift(stack=stack, options=options(cfg), mode=DriftMode.report)
    item = next(c for c in report["checks"] if c["check"] == IDENTITY)
    assert item["status"] == "drifted", item
    assert "cilium-config cluster-name: live 'isovalent-demo' -> desired 'prod-eu'" in item["diffs"]
    assert report["summary"]["clean"] is False
    assert next(c for c in report["checks"] if c["check"] == "release cilium")["status"] == "ok"

    with pytest.raises(VerificationFailed) as e:
        run_install(stack, options(cfg))
    failed = [c for c in e.value.result["verification"]["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == [IDENTITY]
    assert failed[0]["observed"] == "cluster-name 'isovalent-demo', cluster-id '7'"


def _values_with(extra: str):
    def change(cfg: Path) -> None:
        values = cfg / "cilium-enterprise-values.yaml"
        values.write_text(values.read_text() + extra)

    return change


# (case, stack patch, values overrides, change to the configs copy, text the refusal must hold)
REFUSED = [
    (
        "feature gate that does not exist",
        {},
        {"cilium": {"enterprise": {"featureGate": {"approved": ["DNSProxyHA", "HubbleTimescape", "HubbleTimescap"]}}}},
        None,
        "cilium.enterprise.featureGate.approved[2]: unknown enterprise feature gate 'HubbleTimescap' -> "
        "did you mean 'HubbleTimescape'",
    ),
    (
        "second hubble block in the values file",
        {},
        {},
        _values_with("\nhubble:\n  enabled: false\n"),
        "cilium-enterprise-values.yaml: key 'hubble' is given twice (lines",
    ),
    ("cluster id above 255", {"cluster": {"id": 300}}, {}, None, "cluster.id: the stack's cluster.id 300 is above 255"),
    (
        "region that does not exist",
        {"cluster": {"region": "us-east-7"}},
        {},
        None,
        "cluster.region 'us-east-7' is not an AWS region with EKS",
    ),
    (
        "values file naming another cluster",
        {},
        {},
        _values_with("\ncluster:\n  name: isovalent-demo\n  id: 0\n"),
        "values file cilium-enterprise-values.yaml sets cluster.name 'isovalent-demo' but the stack's "
        "cluster.name is 'prod-eu'",
    ),
    (
        "overrides naming another cluster id",
        {},
        {"cilium": {"cluster": {"id": 9}}},
        None,
        "values_overrides.cilium sets cluster.id 9 but the stack's cluster.id is 7",
    ),
]


@pytest.mark.parametrize(("case", "patch", "overrides", "change", "needle"), REFUSED, ids=[c[0] for c in REFUSED])
def test_inputs_that_must_be_refused_are_refused_before_anything_changes(
    tmp_path, prod_eu, prefect_harness, case, patch, overrides, change, needle
):
    cfg = configs_for(tmp_path, NAME)
    if change:
        change(cfg)
    base = {"cluster": {"name": NAME, "id": ID}, "chart_repository": {"url": prod_eu.chart_repo_url}}
    stack = load_stack(
        cfg, "sandbox", patch={**base, **patch, "cluster": {**base["cluster"], **patch.get("cluster", {})}}
    )
    since, t0 = time.time(), time.monotonic()
    with pytest.raises(ConfigError) as e:
        run_install(stack, options(cfg, values_overrides=overrides))
    assert needle in str(e.value), str(e.value)
    assert "next:" in str(e.value)
    assert time.monotonic() - t0 < 30
    assert mutations(prod_eu, NAME, since) == []
    assert boto3.client("eks", region_name="us-east-1").list_nodegroups(clusterName=NAME)["nodegroups"] == []
