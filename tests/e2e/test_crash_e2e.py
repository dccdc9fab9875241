"""The flow process killed (SIGKILL, with its helm children) at each step boundary, then run again.

Each case: a fresh sandbox; an install run in its own process that kills itself right after the named step's work
is done and before Prefect records it (EKS_CILIUM_CRASH_AFTER_STEP); its process group is killed too, as when a
container or machine dies. The next run must take over the dead run's cluster lock (a Lease in the cluster, taken
once the cluster is reachable) at once, converge, pass every verification check and leave no duplicate: one
nodegroup, two nodes, one deployed revision per release history entry, and the dead run marked Crashed in Prefect.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from tasks.adapters.kube import Kube
from tests.conftest import ROOT, start_sandbox
from tests.support.commands import spawn
from tests.support.crash_hook import CRASH_AFTER_STEP
from tests.support.prefect_server import api_settings, cluster_configs

pytestmark = pytest.mark.slow

# Every step of install_stack in the order a run reaches it (cilium's install and the nodegroup overlap).
BOUNDARIES = [
    "discover_endpoint",
    "prepare_cluster_access",
    "add_chart_repository",
    "run_preflight",
    "wait_for_cilium_objects",
    "create_nodegroup",
    "install_release",
    "wait_for_nodegroup_active",
    "wait_for_nodes_ready",
    "check_workload",
    "verify_stack",
]
BEFORE_THE_LOCK = {"discover_endpoint", "prepare_cluster_access"}

RUNNER = """
import json, sys
from flows.install_stack import run_install
from tasks.model import Stack
from tasks.options import RunOptions
from tests.support import crash_hook
crash_hook.install()
stack = Stack.model_validate_json(open(sys.argv[1]).read())
options = RunOptions.model_validate_json(open(sys.argv[2]).read())
result = run_install(stack, options)
print("RESULT " + json.dumps({"ok": result["ok"], "recovered": result["recovered"],
                              "failed": [c for c in result["verification"]["checks"] if not c["ok"]]}))
"""


def run_install_process(
    env: dict[str, str], stack_file: Path, options_file: Path, timeout: float = 400
) -> tuple[int, str]:
    proc = spawn([sys.executable, "-c", RUNNER, str(stack_file), str(options_file)], env, merge_stderr=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        # Whatever the flow started (helm) dies with it, as in a container or machine that goes away.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out


@pytest.mark.parametrize("step", BOUNDARIES)
def test_a_run_killed_after_a_step_is_converged_by_the_next_run_without_duplicates(
    step, prefect_server, tmp_path, monkeypatch, isolated_tools
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    sb = start_sandbox(tmp_path, monkeypatch)
    try:
        _, stack = cluster_configs(tmp_path, "isovalent-demo", sb.chart_repo_url)
        stack_file, options_file = tmp_path / "stack.json", tmp_path / "options.json"
        stack_file.write_text(json.dumps(stack))
        # lock_wait_seconds below the lease (60 s): only an immediate take-over of the dead run's lock passes.
        options_file.write_text(json.dumps({"poll_interval_seconds": 0.2, "lock_wait_seconds": 30}))
        env = {
            **os.environ,
            "PREFECT_API_URL": prefect_server["PREFECT_API_URL"],
            "EKS_CILIUM_HELM": str(ROOT / ".tools" / "bin" / "helm3"),
        }

        code, killed_out = run_install_process({**env, CRASH_AFTER_STEP: step}, stack_file, options_file)
        assert code == -signal.SIGKILL, (
            f"the run should have been killed after {step} (exit {code}):\n{killed_out[-3000:]}"
        )
        assert f"killing this process after step {step}" in killed_out

        started = time.monotonic()
        code, out = run_install_process(env, stack_file, options_file)
        assert code == 0, f"the run after the crash at {step} did not converge:\n{out[-5000:]}"
        if step in BEFORE_THE_LOCK:  # the lock is a Lease in the cluster: a run takes it once it can reach the cluster
            assert "took over the cluster lock" not in out, out[-3000:]
        else:
            assert "took over the cluster lock from" in out and "no longer exists" in out, out[-3000:]
        result = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[len("RESULT ") :])
        assert result["ok"] and not result["failed"], result

        # No duplicates: one nodegroup of two nodes, three deployed releases, one Cilium agent per node.
        assert boto3.client("eks").list_nodegroups(clusterName="isovalent-demo")["nodegroups"] == ["standard"]
        kubeconfig = str(sb.clusters["isovalent-demo"].kubeconfig)
        with Kube(kubeconfig) as kube:
            assert len(kube.list_nodes()) == 2
            cilium_pods = kube.list_pods("kube-system", {"k8s-app": "cilium"})
        assert len(cilium_pods) == 2, [p["metadata"]["name"] for p in cilium_pods]
        helm_env = {**os.environ, "KUBECONFIG": kubeconfig}
        releases = json.loads(
            subprocess.run(
                [str(ROOT / ".tools" / "bin" / "helm3"), "list", "-A", "-a", "-o", "json"],
                env=helm_env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert sorted((r["name"], r["status"]) for r in releases) == [
            ("cilium", "deployed"),
            ("cilium-dnsproxy", "deployed"),
            ("tetragon", "deployed"),
        ], releases

        # The dead run no longer shows as Running in the UI (the run that took its lock marked it Crashed); a run
        # killed before it took the lock left no trace for the next run to find.
        if step in BEFORE_THE_LOCK:
            return
        killed_name = next(
            line.split("Beginning flow run '")[1].split("'")[0]
            for line in killed_out.splitlines()
            if "Beginning flow run '" in line
        )
        with api_settings(prefect_server), get_client(sync_client=True) as client:
            dead = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[killed_name])))
        assert dead and dead[0].state and dead[0].state.name == "Crashed", dead and dead[0].state
        print(f"\n{step}: converged {time.monotonic() - started:.1f} s after the crash")
    finally:
        sb.stop()
