"""Live drift: operators' edits of the releases' objects (kubectl, as they make them) found by object and path,
repaired by helm 3 and helm 4, the agents restarted only for their own configuration, and no noise afterwards."""

from __future__ import annotations

import json

import pytest

from flows.check_drift import check_drift
from flows.install_stack import run_install
from tasks.names import DRIFTED_STATE
from tasks.options import DriftMode
from tests.support.commands import kubectl
from tests.support.flows import CLUSTER, options, stack_for

OBJECTS = "release cilium: objects"
ENVOY_IMAGE = "spec.template.spec.containers[name=cilium-envoy].image"


@pytest.fixture
def installed(sandbox, helm_binary, prefect_harness):
    assert run_install(stack_for(sandbox), options())["ok"]
    return sandbox


def drift(sb, mode=DriftMode.report):
    return check_drift(stack=stack_for(sb), options=options(), mode=mode)


def rows(result) -> set[tuple[str, str]]:
    return {(o["object"], o["path"]) for o in result["objects"]}


def diffs(result, check) -> list[str]:
    return next(c["diffs"] for c in result["checks"] if c["check"] == check)


def agents_restarted_at(kubeconfig: str) -> str | None:
    ds = json.loads(kubectl(kubeconfig, "-n", "kube-system", "get", "ds", "cilium", "-o", "json").stdout)
    notes = ds["spec"]["template"]["metadata"].get("annotations") or {}
    return notes.get("kubectl.kubernetes.io/restartedAt")


def assert_quiet(sb, times: int = 3) -> None:
    for _ in range(times):
        again = drift(sb)
        assert again["summary"]["clean"] is True, again["summary"]["problems"]
        assert again["objects"] == []


def test_live_edits_are_found_by_path_repaired_without_touching_the_agents_and_then_quiet(installed, helm_binary):
    sb = installed
    kc = str(sb.clusters[CLUSTER].kubeconfig)
    assert_quiet(sb)  # a converged cluster, three times in a row: nothing

    kubectl(kc, "-n", "kube-system", "scale", "deploy/hubble-relay", "--replicas=0")
    kubectl(kc, "-n", "kube-system", "delete", "servicemonitor", "hubble-relay")
    kubectl(
        kc, "patch", "clusterrole", "cilium-operator", "--type", "json", "-p", '[{"op":"remove","path":"/rules/0"}]'
    )
    # A custom resource's field: helm 3 patches custom resources from its old manifest to the new one, never
    # looking at the live object, so it leaves this edit in place; the repair's server-side apply reverts it.
    interval = '[{"op":"replace","path":"/spec/endpoints/0/interval","value":"600s"}]'
    kubectl(kc, "-n", "kube-system", "patch", "servicemonitor", "cilium-agent", "--type", "json", "-p", interval)

    state = check_drift(stack=stack_for(sb), options=options(), return_state=True)
    assert state.name == DRIFTED_STATE
    report = state.result()
    assert state.message == report["summary"]["sentence"]
    assert report["summary"]["sentence"].startswith(f"{CLUSTER} (us-east-1): 4 objects of release cilium drifted")
    assert {
        ("Deployment kube-system/hubble-relay", "spec.replicas"),
        ("ServiceMonitor kube-system/hubble-relay", ""),
        ("ClusterRole cilium-operator", "rules[0]"),
        ("ServiceMonitor kube-system/cilium-agent", "spec.endpoints[0].interval"),
    } == rows(report)
    text = diffs(report, OBJECTS)
    assert "Deployment kube-system/hubble-relay spec.replicas: live 0 → desired 1" in text
    assert "ServiceMonitor kube-system/hubble-relay: missing" in text
    removed = next(o for o in report["objects"] if o["path"] == "rules[0]")
    assert removed["missing"] is True and removed["desired"]["resources"] == ["pods"]

    repaired = drift(sb, DriftMode.repair)
    assert repaired["summary"]["clean"] is True, repaired["summary"]["problems"]
    assert "release cilium: upgraded (revision 2)" in repaired["repaired"]
    applied = "release cilium: server-side applied ServiceMonitor kube-system/cilium-agent"
    # helm 4 applies the whole manifest server-side (forced), so nothing is left for the repair to apply.
    assert (applied in repaired["repaired"]) is helm_binary.endswith("helm3"), repaired["repaired"]
    # Neither a relay's replicas nor an RBAC rule is the agents' configuration: they keep running.
    assert not any("agents restarted" in r for r in repaired["repaired"]), repaired["repaired"]
    assert agents_restarted_at(kc) is None
    assert_quiet(sb)


def test_an_agent_config_edit_and_an_image_change_are_repaired_with_one_agent_restart_then_quiet(
    installed, helm_binary
):
    sb = installed
    kc = str(sb.clusters[CLUSTER].kubeconfig)
    kubectl(kc, "-n", "kube-system", "patch", "cm", "cilium-config", "-p", '{"data":{"enable-hubble":"false"}}')
    kubectl(kc, "-n", "kube-system", "set", "image", "ds/cilium-envoy", "cilium-envoy=quay.io/cilium/cilium-envoy:v9")

    report = drift(sb)
    assert rows(report) == {
        ("ConfigMap kube-system/cilium-config", "data.enable-hubble"),
        ("DaemonSet kube-system/cilium-envoy", ENVOY_IMAGE),
    }
    assert 'ConfigMap kube-system/cilium-config data.enable-hubble: live "false" → desired "true"' in diffs(
        report, OBJECTS
    )
    # The event's payload carries the rows and reads as a sentence.
    assert report["event"]["id"]

    repaired = drift(sb, DriftMode.repair)
    assert repaired["summary"]["clean"] is True, repaired["summary"]["problems"]
    assert "release cilium: agents restarted" in repaired["repaired"]
    assert agents_restarted_at(kc) is not None
    envoy = json.loads(kubectl(kc, "-n", "kube-system", "get", "ds", "cilium-envoy", "-o", "json").stdout)
    assert envoy["spec"]["template"]["spec"]["containers"][0]["image"] != "quay.io/cilium/cilium-envoy:v9"
    # Our own restart's annotation is not drift, right after the repair nor later.
    assert_quiet(sb)


def test_cilium_own_drift_checker_is_a_row_when_the_agents_expose_it_and_its_repair_restarts_them(
    sandbox, prefect_harness
):
    """With `enable-drift-checker` in cilium-config, each agent's cilium_drift_checker_config_delta (read through the
    API server's pod proxy, as Prometheus would) is its own row; a cilium-config change the agents have not loaded
    shows there, and after the repair's restart every agent reports 0."""
    from tasks.model import load_stack
    from tests.conftest import CONFIGS

    checker = {"values": {"extraConfig": {"enable-drift-checker": "true"}}}
    stack = load_stack(
        CONFIGS,
        "sandbox",
        patch={"chart_repository": {"url": sandbox.chart_repo_url}, "releases": {"cilium": checker}},
    )
    assert run_install(stack, options())["ok"]
    check = "cilium: agents' configuration (cilium_drift_checker_config_delta)"
    clean = check_drift(stack=stack, options=options())
    assert clean["summary"]["clean"] is True, clean["summary"]["problems"]
    assert next(c for c in clean["checks"] if c["check"] == check)["detail"] == (
        "2 agent(s) run the configuration in cilium-config"
    )

    kc = str(sandbox.clusters[CLUSTER].kubeconfig)
    kubectl(kc, "-n", "kube-system", "patch", "cm", "cilium-config", "-p", '{"data":{"enable-hubble":"false"}}')
    report = check_drift(stack=stack, options=options())
    row = next(c for c in report["checks"] if c["check"] == check)
    assert row["status"] == "drifted" and row["repair"] == "agents:cilium"
    assert all(d.endswith(": cilium_drift_checker_config_delta 1") for d in row["diffs"]) and len(row["diffs"]) == 2

    repaired = check_drift(stack=stack, options=options(), mode=DriftMode.repair)
    assert repaired["summary"]["clean"] is True, repaired["summary"]["problems"]
    assert repaired["repaired"].count("release cilium: agents restarted") == 1
    after = check_drift(stack=stack, options=options())
    assert after["summary"]["clean"] is True, after["summary"]["problems"]
