"""teardown_stack with options.dry_run changes nothing and reports what a teardown would remove, in order."""

from __future__ import annotations

import json
import subprocess
import time

import boto3

from flows.install_stack import run_install
from flows.teardown_stack import teardown_stack
from tests.conftest import TOOLS
from tests.support.flows import CLUSTER, mutations, options, stack_for


def test_a_teardown_dry_run_changes_nothing_and_lists_what_would_be_removed(sandbox, prefect_harness):
    assert run_install(stack_for(sandbox), options())["ok"]
    since = time.time()

    planned = teardown_stack(confirm=CLUSTER, stack=stack_for(sandbox), options=options(dry_run=True))

    assert planned["dry_run"] is True and planned["actions"] == []
    assert [(p["step"], p["action"]) for p in planned["plan"]] == [
        ("release cilium-dnsproxy", "remove"),
        ("release tetragon", "remove"),
        ("nodegroup standard", "remove"),
        ("release cilium", "remove"),
    ]
    assert "helm uninstall cilium -n kube-system (chart 1.18.4" in planned["plan"][3]["detail"]
    assert mutations(sandbox, since) == [], "a dry run wrote to the cluster"
    assert boto3.client("eks").list_nodegroups(clusterName=CLUSTER)["nodegroups"] == ["standard"]
    kubeconfig = str(sandbox.clusters[CLUSTER].kubeconfig)
    listed = subprocess.run(
        [str(TOOLS / "helm3"), "list", "-A", "-o", "json", "--kubeconfig", kubeconfig],
        capture_output=True,
        text=True,
        check=True,
    )
    assert sorted(r["name"] for r in json.loads(listed.stdout)) == ["cilium", "cilium-dnsproxy", "tetragon"]
