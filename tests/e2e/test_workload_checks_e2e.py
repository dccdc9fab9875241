"""End-to-end: workload checks judge against what the release renders (`helm get manifest`), not the live object."""

from __future__ import annotations

import subprocess
import time

import pytest

from flows.install_stack import VerificationFailed, run_install
from tasks.errors import EksCiliumError
from tasks.model import Stack
from tasks.options import Timeouts
from tests.conftest import TOOLS
from tests.support.flows import CLUSTER, options, stack_for

RELAY_ROW = "cilium: Hubble Relay (Deployment hubble-relay)"


def test_verification_fails_a_deployment_scaled_to_zero_naming_rendered_and_live_replicas(sandbox, prefect_harness):
    assert run_install(stack_for(sandbox), options())["ok"]
    kubeconfig = str(sandbox.clusters[CLUSTER].kubeconfig)
    subprocess.run(
        [
            str(TOOLS / "kubectl"),
            "--kubeconfig",
            kubeconfig,
            "-n",
            "kube-system",
            "scale",
            "deploy/hubble-relay",
            "--replicas=0",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    store = sandbox.clusters[CLUSTER].emulator.store
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        relay = store.get(("apps", "deployments"), "kube-system", "hubble-relay")
        if relay and relay["spec"]["replicas"] == 0 and relay.get("status", {}).get("replicas") == 0:
            break
        time.sleep(0.1)
    else:
        pytest.fail("hubble-relay was not scaled to 0")

    # The re-run changes nothing (the release is unchanged); its verification must not call 0/0 "all available".
    with pytest.raises(VerificationFailed) as e:
        run_install(stack_for(sandbox), options())
    checks = {c["name"]: c for c in e.value.result["verification"]["checks"]}
    relay_row = checks[RELAY_ROW]
    assert relay_row["ok"] is False
    assert relay_row["expected"] == "all replicas available (1 rendered)", relay_row
    assert "0 replica(s) requested but the release renders 1" in relay_row["observed"], relay_row
    assert [n for n, c in checks.items() if not c["ok"]] == [RELAY_ROW]
    assert checks["cilium: operator (Deployment cilium-operator)"]["expected"] == "all replicas available (2 rendered)"


def _with_workload_renamed(stack: Stack, release: str, role: str, name: str) -> Stack:
    rel = stack.releases[release]
    workloads = [w.model_copy(update={"name": name}) if w.role == role else w for w in rel.workloads]
    releases = {**stack.releases, release: rel.model_copy(update={"workloads": workloads})}
    return stack.model_copy(update={"releases": releases})


def test_a_workload_the_deployed_release_does_not_render_fails_fast_listing_what_it_renders(sandbox, prefect_harness):
    stack = _with_workload_renamed(stack_for(sandbox), "cilium", "relay", "hubble-relya")
    t0 = time.monotonic()
    # The rollout deadline stays long: the sensor must not need it to give up.
    with pytest.raises(EksCiliumError) as e:
        run_install(stack, options(timeouts=Timeouts(rollout=120)))
    elapsed = time.monotonic() - t0
    text = str(e.value)
    assert elapsed < 60, f"took {elapsed:.0f} s: {text}"
    assert "Deployment kube-system/hubble-relya" in text, text
    assert "release cilium is deployed" in text, text
    assert "did you mean hubble-relay?" in text, text
    # The rendered object list, so the user sees the mismatch.
    assert "Deployment: kube-system/cilium-operator, kube-system/hubble-relay" in text, text
    assert "DaemonSet: kube-system/cilium, kube-system/cilium-envoy" in text, text
    assert "Job (hook): kube-system/hubble-generate-certs" in text, text
    print(f"failed after {elapsed:.1f} s:\n{text}")
