"""Fault matrix: each fault ends converged on retry (or with an actionable error), and a following run converges
with no duplicate resources."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

from flows.install_stack import run_install
from sandbox.aws import AwsFault
from sandbox.kube.server import FaultRule
from tests.conftest import TOOLS
from tests.support.commands import cilium_release, cilium_values
from tests.support.flows import CLUSTER, converged_once, options, stack_for


def test_aws_throttling_and_5xx_are_retried(sandbox, prefect_harness):
    sandbox.aws.faults += [
        AwsFault("DescribeCluster", count=3),
        AwsFault("CreateNodegroup", count=1, status=500, code="ServerException", message="internal error"),
    ]
    t0 = time.monotonic()
    result = run_install(stack_for(sandbox), options())
    assert result["ok"]
    assert sandbox.aws.calls.count("CreateNodegroup") == 2, "the 500 on CreateNodegroup was retried once"
    assert all(f.count == 0 for f in sandbox.aws.faults)
    print(f"converged in {time.monotonic() - t0:.1f} s")
    converged_once(sandbox)


def test_api_server_500_during_the_cilium_install_is_retried(sandbox, prefect_harness):
    emu = sandbox.clusters[CLUSTER].emulator
    emu.faults.append(
        FaultRule(verb="create", resource="daemonsets", count=1, status=500, message="etcdserver: leader changed")
    )
    result = run_install(stack_for(sandbox), options())
    assert result["ok"]
    assert all(f.count == 0 for f in emu.faults)
    converged_once(sandbox)


def test_api_server_unreachable_for_a_while_during_the_sensors(sandbox, prefect_harness):
    emu = sandbox.clusters[CLUSTER].emulator
    # The outage starts when the nodegroup is created (the sensors are polling then) and lasts 3 s.
    original = sandbox.aws.take_fault

    def take_fault(operation):
        if operation == "CreateNodegroup":
            emu.unavailable_until = time.time() + 3
        return original(operation)

    sandbox.aws.take_fault = take_fault
    result = run_install(stack_for(sandbox), options())
    assert result["ok"]
    assert any(r.get("status") == 503 for r in emu.request_log), "the outage was observed"
    converged_once(sandbox)


def test_helm_killed_mid_install_is_recovered_on_the_next_run(sandbox, prefect_harness, tmp_path):
    """helm killed with SIGKILL while waiting for the hook leaves the release pending-install; the next run
    uninstalls the pending release (no deployed revision to roll back to), logs it and converges."""
    kubeconfig = str(sandbox.clusters[CLUSTER].kubeconfig)
    proc = subprocess.Popen(
        [
            str(TOOLS / "helm3"),
            *cilium_release("install", sandbox.chart_repo_url, "-f", str(cilium_values(tmp_path)), "--timeout", "120s"),
            "--kubeconfig",
            kubeconfig,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )
    store = sandbox.clusters[CLUSTER].emulator.store
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not store.list(("batch", "jobs"), "kube-system"):
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    out = subprocess.run(
        [str(TOOLS / "helm3"), "list", "-n", "kube-system", "--all", "-o", "json", "--kubeconfig", kubeconfig],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [r["status"] for r in json.loads(out.stdout)] == ["pending-install"]
    result = run_install(stack_for(sandbox), options())
    assert result["ok"]
    assert result["recovered"] == [
        "release cilium was pending-install with no deployed revision: uninstalled the pending release"
    ]
    converged_once(sandbox)


def test_tokens_expiring_during_a_long_helm_run_are_refreshed(tmp_path, monkeypatch, isolated_tools, prefect_harness):
    """The API accepts a token for 6 s and the plugin's credentials live 3 s; the hook Job takes 8 s, so the Cilium
    helm install outlives several tokens. helm, the kubernetes client and the sensors re-run the plugin."""
    from sandbox.kube.controllers import SimConfig
    from tests.conftest import start_sandbox

    monkeypatch.setenv("EKS_CILIUM_TOKEN_LIFETIME_SECONDS", "3")
    sb = start_sandbox(tmp_path, monkeypatch, sim=SimConfig(job_run_seconds=8.0))
    emu = sb.clusters[CLUSTER].emulator
    emu.access.token_ttl_seconds = 6
    try:
        result = run_install(stack_for(sb), options())
        assert result["ok"]
        t = {(e["step"], e["event"]): e["t"] for e in result["timeline"]}
        helm_seconds = t[("helm cilium", "done")] - t[("helm cilium", "start")]
        assert helm_seconds > 6, f"the helm run ({helm_seconds:.1f} s) must outlive a token"
        assert len(emu.tokens_seen) >= 3, "credentials were refreshed during the run"
    finally:
        sb.stop()
