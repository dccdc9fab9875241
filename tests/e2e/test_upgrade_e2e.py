"""Upgrades on the real vendored charts: the plan, the pre-flight pre-pull, one minor at a time, verification after
each release, automatic rollback of an upgrade whose agents crash-loop, and refusals before any change."""

from __future__ import annotations

import json
import time

import pytest
import yaml

from flows.install_stack import run_install
from flows.upgrade_stack import run_upgrade
from sandbox.kube.controllers import PodPolicy
from tasks.model import load_stack
from tasks.names import INSTALL_RECORD, PREFLIGHT_DAEMONSET
from tasks.options import Timeouts
from tasks.steps.upgrade import UpgradeRefused, UpgradeRolledBack
from tests.conftest import CONFIGS
from tests.support.commands import kubectl
from tests.support.flows import CLUSTER, mutations, options


def stack_at(sb, cilium: str | None = None, tetragon: str | None = None, timeout: int = 300, **cilium_values):
    releases: dict = {}
    if cilium is not None:
        releases["cilium"] = {"version": cilium, "timeout_seconds": timeout}
        releases["cilium"].update({"values": cilium_values} if cilium_values else {})
    if tetragon is not None:
        releases["tetragon"] = {"version": tetragon}
    return load_stack(CONFIGS, "sandbox", patch={"chart_repository": {"url": sb.chart_repo_url}, "releases": releases})


def agent_image(kc: str) -> str:
    ds = json.loads(kubectl(kc, "-n", "kube-system", "get", "ds", "cilium", "-o", "json").stdout)
    return ds["spec"]["template"]["spec"]["containers"][0]["image"]


def release_values(kc: str) -> dict:
    from tests.conftest import TOOLS
    from tests.support.commands import helm

    out = helm(str(TOOLS / "helm3"), kc, "get", "values", "cilium", "-n", "kube-system", "-o", "json").stdout
    return json.loads(out)


def test_a_patch_upgrade_pre_pulls_then_rolls_the_agents_to_the_new_image_and_verifies(sandbox, prefect_harness):
    assert run_install(stack_at(sandbox, "1.18.3"), options())["ok"]
    kc = str(sandbox.clusters[CLUSTER].kubeconfig)
    assert ":v1.18.3" in agent_image(kc)
    record = json.loads(kubectl(kc, "-n", "kube-system", "get", "cm", INSTALL_RECORD, "-o", "json").stdout)
    assert record["data"]["cilium"] == "1.18.3"

    plan = run_upgrade(stack_at(sandbox, "1.18.4"), options(dry_run=True))
    assert [h["kind"] for h in plan["plan"]["hops"]] == ["unchanged", "patch", "unchanged"]
    assert plan["hops"] == []

    since = time.time()
    result = run_upgrade(stack_at(sandbox, "1.18.4"), options())
    assert result["ok"] is True
    done = result["hops"][0]["done"]
    assert done[0].startswith("pre-pull: ") and "release cilium: upgraded to 1.18.4" in done[1]
    writes = mutations(sandbox, since)
    assert any(w.startswith("POST") and w.endswith("/daemonsets") for w in writes)  # the pre-flight DaemonSet
    assert any(w.startswith("DELETE") and w.endswith(f"/daemonsets/{PREFLIGHT_DAEMONSET}") for w in writes)
    assert ":v1.18.4" in agent_image(kc)
    # A patch keeps the first-installed minor: no upgradeCompatibility.
    assert "upgradeCompatibility" not in release_values(kc)


def test_a_minor_upgrade_keeps_the_first_installed_version_s_defaults(sandbox, prefect_harness):
    assert run_install(stack_at(sandbox, "1.17.18"), options())["ok"]
    kc = str(sandbox.clusters[CLUSTER].kubeconfig)
    result = run_upgrade(stack_at(sandbox, "1.18.4"), options())
    assert result["ok"] is True
    assert [h["hop"]["kind"] for h in result["hops"]] == ["minor"]
    assert release_values(kc)["upgradeCompatibility"] == "1.17"
    assert ":v1.18.4" in agent_image(kc)
    # The drift check renders the same values: no drift after the upgrade.
    from flows.check_drift import check_drift

    report = check_drift(stack=stack_at(sandbox, "1.18.4"), options=options())
    assert report["summary"]["clean"] is True, report["summary"]["problems"]


def test_a_skipped_minor_is_refused_before_any_change(sandbox, prefect_harness, monkeypatch, tmp_path, capsys):
    assert run_install(stack_at(sandbox, "1.17.18"), options())["ok"]
    since = time.time()
    with pytest.raises(UpgradeRefused, match="nothing was changed") as e:
        run_upgrade(stack_at(sandbox, "1.19.0"), options())
    assert "upgrade to the latest 1.18 patch first" in str(e.value)
    assert mutations(sandbox, since) == []

    # The CLI: `eks-cilium upgrade --dry-run` prints the plan; the refused one exits 1 with the reason.
    from flows.cli import main

    monkeypatch.setattr("flows.cli.sandbox.DEFAULT_STATE", tmp_path / "no-state")
    for version, code in (("1.18.4", 0), ("1.19.0", 1)):
        stack_file = tmp_path / f"stack-{version}.yaml"
        stack_file.write_text(yaml.safe_dump(json.loads(stack_at(sandbox, version).model_dump_json())))
        capsys.readouterr()
        argv = ["upgrade", "--stack", str(stack_file), "--config-dir", str(CONFIGS), "--dry-run"]
        assert main(argv) == code
        out = capsys.readouterr()
        if code == 0:
            assert "cilium" in out.out and "1.17.18 -> 1.18.4" in out.out and "minor, pre-pull images first" in out.out
        else:
            assert "skips 1.18" in out.err
    assert mutations(sandbox, since) == []


def test_an_upgrade_whose_agents_crash_loop_is_rolled_back_and_converges(sandbox, prefect_harness):
    assert run_install(stack_at(sandbox, "1.18.3"), options())["ok"]
    kc = str(sandbox.clusters[CLUSTER].kubeconfig)
    # The new version's agents crash (the sandbox's pod policy picks them by a label only the new values set).
    controllers = sandbox.clusters[CLUSTER].controllers
    controllers.config.pod_policies.append(
        PodPolicy({"upgrade-canary": "1.18.4"}, "crashloop", namespace="kube-system", message="agent panicked")
    )
    # helm's own wait for the certificate hook fails first (the nodes go NotReady with their agents): 40 s.
    bad = stack_at(sandbox, "1.18.4", timeout=40, podLabels={"upgrade-canary": "1.18.4"})
    with pytest.raises(UpgradeRolledBack, match="rolled back to revision 1") as e:
        run_upgrade(bad, options(timeouts=Timeouts(rollout=20)))
    assert "NOT healthy" not in str(e.value)
    assert ":v1.18.3" in agent_image(kc)
    # The cluster converged on the previous version: a drift check of that stack is clean.
    from flows.check_drift import check_drift

    report = check_drift(stack=stack_at(sandbox, "1.18.3"), options=options())
    assert report["summary"]["clean"] is True, report["summary"]["problems"]


def test_tetragon_upgrades_on_its_own_version_line(sandbox, prefect_harness):
    assert run_install(stack_at(sandbox, tetragon="1.4.1"), options())["ok"]
    result = run_upgrade(stack_at(sandbox, tetragon="1.5.0"), options())
    assert [(h["hop"]["release"], h["hop"]["kind"]) for h in result["hops"]] == [("tetragon", "minor")]
    assert result["hops"][0]["ok"] is True
