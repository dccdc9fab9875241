"""A run that a sensor stops still reports: the verification table (and JSON) with the rows that failed and the
steps never reached; a repair checks every workload and still produces the after-repair report."""

from __future__ import annotations

import json

import pytest

from flows.check_drift import check_drift
from flows.cli.render import print_drift, print_result
from flows.install_stack import run_install
from sandbox.kube.controllers import PodPolicy
from tasks.errors import EksCiliumError
from tasks.options import DriftMode, Timeouts
from tests.conftest import TOOLS
from tests.support.commands import DEBUG_ON, cilium_release, helm
from tests.support.flows import CLUSTER, options, stack_for


def test_a_sensor_that_fails_still_gives_the_whole_verification_report(sandbox, prefect_harness, capsys):
    controllers = sandbox.clusters[CLUSTER].controllers
    controllers.config.pod_policies.append(
        PodPolicy({"app.kubernetes.io/name": "tetragon"}, "crashloop", message="no BTF")
    )

    with pytest.raises(EksCiliumError) as e:
        run_install(stack_for(sandbox), options(timeouts=Timeouts(rollout=5)))

    report = e.value.report
    assert report is not None, "the error carries the report"
    assert report["ok"] is False and "not ready after 5 s" in report["error"]
    rows = {c["name"]: c["ok"] for c in report["verification"]["checks"]}
    assert rows["nodes Ready"] is True and rows["cilium: Hubble Relay (Deployment hubble-relay)"] is True
    assert rows["tetragon: agent pods (DaemonSet tetragon)"] is False
    assert report["verification"]["stopped_by"]

    print_result(report, "json")
    out = capsys.readouterr().out
    assert json.loads(out)["verification"]["checks"], "--output json prints only the JSON"
    print_result(report, "table")
    table = capsys.readouterr().out
    assert "FAIL tetragon: agent pods" in table and "THE RUN STOPPED EARLY" in table


def test_a_repair_whose_workload_stays_down_checks_every_workload_and_reports_after(sandbox, prefect_harness, capsys):
    assert run_install(stack_for(sandbox), options())["ok"]
    kubeconfig = str(sandbox.clusters[CLUSTER].kubeconfig)
    helm(TOOLS / "helm3", kubeconfig, *cilium_release("upgrade", sandbox.chart_repo_url, *DEBUG_ON))
    controllers = sandbox.clusters[CLUSTER].controllers
    controllers.config.pod_policies.append(PodPolicy({"k8s-app": "hubble-relay"}, "crashloop", message="certs"))
    # The repair restarts the relay's pods through the upgrade; kill the running ones so the policy applies.
    store = sandbox.clusters[CLUSTER].emulator.store
    for pod in store.list(("", "pods"), "kube-system"):
        if (pod["metadata"].get("labels") or {}).get("k8s-app") == "hubble-relay":
            store.delete(("", "pods"), "kube-system", pod["metadata"]["name"])

    with pytest.raises(EksCiliumError) as e:
        check_drift(stack=stack_for(sandbox), options=options(timeouts=Timeouts(rollout=5)), mode=DriftMode.repair)

    report = e.value.report
    assert report is not None and report["repaired"], report
    assert any("hubble-relay not ready" in r for r in report["repaired"]), report["repaired"]
    # Every other workload of the release was still checked after the relay failed.
    assert any("cilium-operator" in c["check"] and c["status"] == "ok" for c in report["checks"]), report["checks"]
    assert "before" in report and report["summary"]["clean"] is False
    print_drift(report, "json")
    assert json.loads(capsys.readouterr().out)["repaired"]
