"""Releases an interrupted or failed run left behind (pending-*, failed) are recovered by the next install.

Ctrl-C or `prefect flow-run cancel` during an install leaves `cilium` failed ("context canceled"); a hook that timed
out leaves it failed too. The next run must recover it, log what it did and converge, instead of stopping until
someone runs `helm uninstall` by hand.
"""

from __future__ import annotations

import json
import subprocess

from flows.install_stack import run_install
from sandbox.kube.controllers import PodPolicy
from tests.conftest import TOOLS
from tests.support.commands import DEBUG_ON, cilium_release, cilium_values
from tests.support.flows import CLUSTER, converged_once, options, stack_for


def _helm(sandbox, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    kubeconfig = str(sandbox.clusters[CLUSTER].kubeconfig)
    return subprocess.run(
        [str(TOOLS / "helm3"), *args, "--kubeconfig", kubeconfig],
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


def _statuses(sandbox) -> dict[str, str]:
    return {r["name"]: r["status"] for r in json.loads(_helm(sandbox, "list", "-A", "--all", "-o", "json").stdout)}


def test_a_failed_install_that_never_deployed_is_uninstalled_and_installed_again(sandbox, prefect_harness, tmp_path):
    """`helm install` before any node exists: its post-install hook Job cannot run, helm gives up and leaves the
    release failed with no deployed revision (what Ctrl-C of an install does too: "context canceled")."""
    done = _helm(
        sandbox,
        *cilium_release("install", sandbox.chart_repo_url, "-f", str(cilium_values(tmp_path)), "--timeout", "3s"),
        check=False,
    )
    assert done.returncode != 0, done.stdout
    assert _statuses(sandbox) == {"cilium": "failed"}

    result = run_install(stack_for(sandbox), options())

    assert result["ok"], [c for c in result["verification"]["checks"] if not c["ok"]]
    assert result["recovered"] == [
        "release cilium was failed with no deployed revision: uninstalled the failed release"
    ]
    assert _statuses(sandbox) == {"cilium": "deployed", "tetragon": "deployed", "cilium-dnsproxy": "deployed"}
    converged_once(sandbox)


def test_a_failed_upgrade_over_a_deployed_release_is_upgraded_over(sandbox, prefect_harness):
    """An upgrade whose hook Job never completes (its pods stay Pending) fails and leaves the release failed
    with an earlier deployed revision: the next install upgrades over it and converges."""
    assert run_install(stack_for(sandbox), options())["ok"]
    controllers = sandbox.clusters[CLUSTER].controllers
    controllers.config.pod_policies.append(PodPolicy({"k8s-app": "hubble-generate-certs"}, "pending"))
    done = _helm(sandbox, *cilium_release("upgrade", sandbox.chart_repo_url, *DEBUG_ON, "--timeout", "3s"), check=False)
    assert done.returncode != 0, done.stdout
    assert _statuses(sandbox)["cilium"] == "failed"
    controllers.config.pod_policies.clear()

    result = run_install(stack_for(sandbox), options())

    assert result["ok"], [c for c in result["verification"]["checks"] if not c["ok"]]
    assert result["recovered"] == [
        "release cilium was failed (revision 2): upgrading over it (last deployed revision 1)"
    ]
    assert result["releases"]["cilium"]["action"] == "upgraded"
    history = json.loads(_helm(sandbox, "history", "cilium", "-n", "kube-system", "-o", "json").stdout)
    assert [h["status"] for h in history][-1] == "deployed"
    converged_once(sandbox)
