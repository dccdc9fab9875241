"""The rendered values and the nodegroup spec equal the runbook's YAML blocks, key for key."""

from __future__ import annotations

import stat

import yaml

from tasks.model import load_stack
from tasks.render import load_inputs, render_stack, write_rendered
from tasks.values import Endpoint, normalise_endpoint
from tests.conftest import CONFIGS

ENDPOINT = "https://ABC0123456789.gr7.us-east-1.eks.amazonaws.com/"


def _block(text: str, start: str, end: str) -> dict:
    s = text.index(start)
    e = text.index(end, s)
    return yaml.safe_load(text[s:e])


def _rendered():
    stack = load_stack(CONFIGS)
    return render_stack(load_inputs(CONFIGS, stack), normalise_endpoint(ENDPOINT))


def test_cilium_values_equal_runbook_block_with_endpoint_substituted(runbook_text):
    expected = _block(runbook_text, "# Enable/disable debug logging", "ラベルコンテキストが重要な理由")
    expected["k8sServiceHost"] = "ABC0123456789.gr7.us-east-1.eks.amazonaws.com"
    assert _rendered().values["cilium"] == expected


def test_tetragon_values_equal_runbook_block(runbook_text):
    expected = _block(
        runbook_text, "# Tetragon configuration with Enhanced", "これらの値でTetragonをインストールします"
    )
    assert _rendered().values["tetragon"] == expected


def test_dnsproxy_values_equal_runbook_block(runbook_text):
    expected = _block(runbook_text, "enableCriticalPriorityClass: true", "DNS Proxy HAをインストールします")
    assert _rendered().values["cilium-dnsproxy"] == expected


def test_nodegroup_file_and_plan_equal_runbook(runbook_text):
    expected = _block(runbook_text, "apiVersion: eksctl.io/v1alpha5", "ノードグループを作成します")
    stack = load_stack(CONFIGS)
    inputs = load_inputs(CONFIGS, stack)
    assert inputs.nodegroup_doc == expected
    plan = _rendered().nodegroup
    ng = expected["managedNodeGroups"][0]
    assert plan.name == ng["name"] == "standard"
    assert plan.instance_types == (ng["instanceType"],)
    assert (plan.min_size, plan.desired_size, plan.max_size) == (2, 2, 2)
    assert plan.private_networking is True
    assert plan.disk_size_gib == 80 and plan.ami_type == "AL2023_x86_64_STANDARD"
    assert ("node.cilium.io/agent-not-ready", "true", "NO_EXECUTE") in plan.taints


def test_runbook_stack_has_no_cross_check_findings():
    assert _rendered().findings == []


def test_render_without_endpoint_keeps_placeholder_and_reports_nothing():
    stack = load_stack(CONFIGS)
    r = render_stack(load_inputs(CONFIGS, stack), None, require_endpoint=False)
    assert r.values["cilium"]["k8sServiceHost"] == "<YOUR-EKS-API-SERVER-ENDPOINT>"
    assert r.errors == []


def test_render_with_placeholder_left_is_an_error_when_endpoint_required():
    stack = load_stack(CONFIGS)
    r = render_stack(load_inputs(CONFIGS, stack), None, require_endpoint=True)
    assert any("placeholder" in f.message for f in r.errors)


def test_non_default_port_sets_k8s_service_port():
    stack = load_stack(CONFIGS)
    r = render_stack(load_inputs(CONFIGS, stack), Endpoint("api.example.com", 6443))
    assert r.values["cilium"]["k8sServicePort"] == 6443
    assert r.values["cilium"]["k8sServiceHost"] == "api.example.com"


def test_rendered_files_are_private(tmp_path):
    paths = write_rendered(_rendered(), tmp_path / "out")
    assert set(paths) == {"cilium", "tetragon", "cilium-dnsproxy"}
    for p in paths.values():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600
        assert yaml.safe_load(p.read_text())
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o700


def test_overlay_changes_only_what_it_names():
    base = load_stack(CONFIGS)
    sandbox = load_stack(CONFIGS, "sandbox")
    assert sandbox.releases["cilium"].timeout_seconds == 300
    assert sandbox.releases["cilium"].version == base.releases["cilium"].version
    assert sandbox.releases["cilium"].workloads == base.releases["cilium"].workloads
