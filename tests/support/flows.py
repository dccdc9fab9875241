"""The sandbox stack, run options and what a run changed: shared by the end-to-end tests."""

from __future__ import annotations

import json
import subprocess

import boto3

from flows.install_stack import run_install
from tasks.model import load_stack
from tasks.options import RunOptions
from tests.conftest import CONFIGS

CLUSTER = "isovalent-demo"


def stack_for(sb):
    return load_stack(CONFIGS, "sandbox", patch={"chart_repository": {"url": sb.chart_repo_url}})


def options(**kw):
    return RunOptions(config_dir=str(CONFIGS), environment="sandbox", poll_interval_seconds=0.2, **kw)


def mutations(sb, since: float) -> list[str]:
    """Writes the cluster saw after `since`, leaving out dry runs and access reviews (they change nothing) and the
    cluster lock's Lease (every mutating run takes and releases it, even one that finds nothing to change)."""
    out = []
    for r in list(sb.clusters[CLUSTER].emulator.request_log):
        if r.get("t", 0) < since or r.get("method") not in ("POST", "PUT", "PATCH", "DELETE"):
            continue
        if "dryRun=All" in r.get("query", "") or "accessreviews" in r.get("path", "") or "/leases" in r.get("path", ""):
            continue
        out.append(f"{r['method']} {r['path']}")
    return out


def aws_nodegroups(sb) -> list[str]:
    return boto3.client("eks").list_nodegroups(clusterName=CLUSTER)["nodegroups"]


def helm_revisions(sb, helm: str, kubeconfig: str) -> dict[str, str]:
    out = subprocess.run(
        [helm, "list", "-A", "-o", "json", "--kubeconfig", kubeconfig], capture_output=True, text=True, check=True
    )
    return {r["name"]: str(r["revision"]) for r in json.loads(out.stdout)}


def converged_once(sb) -> None:
    """No duplicates: one nodegroup, one Cilium DaemonSet, each release at revision history ending deployed."""
    assert boto3.client("eks").list_nodegroups(clusterName=CLUSTER)["nodegroups"] == ["standard"]
    store = sb.clusters[CLUSTER].emulator.store
    assert [d["metadata"]["name"] for d in store.list(("apps", "daemonsets"), "kube-system")].count("cilium") == 1
    again = run_install(stack_for(sb), options())
    assert again["ok"] and {r["action"] for r in again["releases"].values()} == {"unchanged"}
