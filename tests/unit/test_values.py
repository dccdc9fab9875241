"""Endpoint normalisation, merge semantics and the values cross-checks (positive and negative)."""

from __future__ import annotations

import copy

import pytest

from tasks.errors import ConfigError
from tasks.merge import deep_merge
from tasks.model import load_stack
from tasks.render import load_inputs, render_stack
from tasks.values import Endpoint, Severity, normalise_endpoint
from tests.conftest import CONFIGS


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://ABC.gr7.us-east-1.eks.amazonaws.com/", Endpoint("ABC.gr7.us-east-1.eks.amazonaws.com", 443)),
        ("https://ABC.gr7.us-east-1.eks.amazonaws.com", Endpoint("ABC.gr7.us-east-1.eks.amazonaws.com", 443)),
        ("ABC.gr7.us-east-1.eks.amazonaws.com", Endpoint("ABC.gr7.us-east-1.eks.amazonaws.com", 443)),
        ("https://api.example.com:6443", Endpoint("api.example.com", 6443)),
        ("https://api.example.com:6443/", Endpoint("api.example.com", 6443)),
        ("  https://10.0.0.1  ", Endpoint("10.0.0.1", 443)),
        ("https://[fd00::1]:8443", Endpoint("fd00::1", 8443)),
        ("127.0.0.1:34567", Endpoint("127.0.0.1", 34567)),
    ],
)
def test_endpoint_is_normalised_to_host_and_port(url, expected):
    assert normalise_endpoint(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "http://api.example.com",
        "https://api.example.com/path",
        "https://user:pw@api.example.com",
        "https://api.example.com?x=1",
        "https://",
        "https://-bad-.example.com",
        "https://api_example.com",
        "https://api.example.com:99999",
        "https://a b.com",
        "https://api.example.com;rm -rf /",
        "ftp://x.com",
        "https://999.1.1",
        "https://api.example.com:notaport",
    ],
)
def test_bad_endpoints_are_rejected_with_a_hint(url):
    with pytest.raises(ConfigError) as e:
        normalise_endpoint(url)
    assert e.value.hint


@pytest.mark.parametrize(
    ("base", "overlay", "expected"),
    [
        ({"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"y": 3}}, {"a": {"x": 1, "y": 3}}),
        ({"a": [1, 2, 3]}, {"a": [4]}, {"a": [4]}),
        ({"a": {"x": 1}, "b": 2}, {"a": None}, {"b": 2}),
        ({"a": {"x": 1, "y": 2}}, {"a": {"x": None}}, {"a": {"y": 2}}),
        ({"a": {"x": 1}}, {"a": 5}, {"a": 5}),
        ({"a": 5}, {"a": {"x": 1}}, {"a": {"x": 1}}),
        ({"a": 1}, {"missing": None}, {"a": 1}),
        ({}, {}, {}),
    ],
)
def test_deep_merge_dicts_merge_lists_replace_null_removes(base, overlay, expected):
    before = copy.deepcopy(base)
    assert deep_merge(base, overlay) == expected
    assert base == before, "deep_merge must not modify its input"


def _render(overrides):
    stack = load_stack(CONFIGS)
    return render_stack(load_inputs(CONFIGS, stack), Endpoint("api.example.com"), overrides)


def _paths(r, severity):
    return {(f.path, f.severity) for f in r.findings if f.severity is severity}


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"cilium": {"enterprise": {"featureGate": {"approved": ["DNSProxyHA"]}}}}, "cilium.hubble.timescape.enabled"),
        (
            {"cilium": {"enterprise": {"featureGate": {"approved": ["HubbleTimescape"]}}}},
            "cilium.enterprise.featureGate.approved",
        ),
        ({"cilium": {"k8sServiceHost": None}}, "cilium.k8sServiceHost"),
        ({"cilium": {"k8sServiceHost": ""}}, "cilium.k8sServiceHost"),
        (
            {"cilium": {"enterprise": {"featureGate": {"approved": "DNSProxyHA"}}}},
            "cilium.enterprise.featureGate.approved",
        ),
    ],
)
def test_cross_check_errors_name_the_key(overrides, path):
    r = _render(overrides)
    assert (path, Severity.error) in _paths(r, Severity.error), r.findings
    assert all(f.hint for f in r.findings)


@pytest.mark.parametrize(
    "overrides",
    [
        {
            "cilium": {
                "hubble": {"timescape": {"enabled": False}},
                "enterprise": {"featureGate": {"approved": ["DNSProxyHA"]}},
            }
        },
        {"cilium": {"kubeProxyReplacement": "false", "k8sServiceHost": None}},
        {"cilium": {"debug": {"enabled": True}}},
    ],
)
def test_cross_checks_pass_when_consistent(overrides):
    assert _render(overrides).errors == []


def test_dnsproxy_release_needs_the_gate_even_without_extra_config():
    r = _render({"cilium": {"extraConfig": None, "enterprise": {"featureGate": {"approved": ["HubbleTimescape"]}}}})
    assert any("cilium-dnsproxy" in f.message for f in r.errors)


def test_masquerade_on_with_eni_native_routing_is_a_warning_not_an_error():
    r = _render({"cilium": {"enableIPv4Masquerade": True}})
    assert r.errors == []
    assert ("cilium.enableIPv4Masquerade", Severity.warning) in _paths(r, Severity.warning)


def test_overrides_for_unknown_release_are_rejected():
    with pytest.raises(ConfigError, match="unknown release"):
        _render({"cilum": {"debug": {"enabled": True}}})


# ---- enterprise feature gates: only known ones ------------------------------------------------------------------
def _gates(*gates):
    return {"cilium": {"enterprise": {"featureGate": {"approved": list(gates)}}}}


@pytest.mark.parametrize(
    ("gate", "suggestion"),
    [
        ("HubbleTimescap", "HubbleTimescape"),
        ("dnsproxyha", "DNSProxyHA"),
        ("DNSProxyHAA", "DNSProxyHA"),
        ("SRv6Locator", None),
        ("", None),
        (7, None),
    ],
)
def test_a_feature_gate_that_does_not_exist_is_refused_with_the_closest_known_one(gate, suggestion):
    r = _render(_gates("DNSProxyHA", "HubbleTimescape", gate))
    [f] = r.errors
    assert (
        f.path == "cilium.enterprise.featureGate.approved[2]"
        and f"unknown enterprise feature gate {gate!r}" in f.message
    )
    if suggestion:
        assert f"did you mean {suggestion!r}" in f.hint
    else:
        assert "the gates known here are DNSProxyHA, HubbleTimescape" in f.hint


# ---- Cilium's cluster-id rules ----------------------------------------------------------------------------------
def _render_stack(patch, overrides=None):
    stack = load_stack(CONFIGS, patch=patch)
    return render_stack(load_inputs(CONFIGS, stack), Endpoint("api.example.com"), overrides)


MAX_511 = {"cilium": {"clustermesh": {"maxConnectedClusters": 511}}}


@pytest.mark.parametrize(
    ("cid", "overrides", "error"),
    [
        (0, None, None),
        (1, None, None),
        (127, None, None),
        (256, None, "above 255"),
        (300, None, "above 255"),
        (383, None, "above 255"),
        (300, MAX_511, None),
        (383, MAX_511, None),
        (200, None, "cilium/cilium#21330"),
        (128, None, "cilium/cilium#21330"),
        (400, MAX_511, "cilium/cilium#21330"),
        (200, {"cilium": {"extraConfig": {"allow-unsafe-policy-skb-usage": "true"}}}, None),
        (5, {"cilium": {"clustermesh": {"maxConnectedClusters": 300}}}, "Cilium accepts only 255 or 511"),
    ],
)
def test_cluster_id_follows_ciliums_rules(cid, overrides, error):
    r = _render_stack({"cluster": {"id": cid}}, overrides)
    messages = [f"{f.path}: {f.message} -> {f.hint}" for f in r.errors]
    if error is None:
        assert messages == []
        assert r.values["cilium"]["cluster"]["id"] == cid
    else:
        assert len(messages) == 1 and error in messages[0], messages
    if error and "above" in error:
        assert "clustermesh.maxConnectedClusters: 511" in messages[0] and messages[0].startswith("cluster.id:")


def test_cluster_id_above_511_is_refused_by_the_stack_model():
    with pytest.raises(ConfigError, match="cluster.id"):
        load_stack(CONFIGS, patch={"cluster": {"id": 512}})


# ---- the stack's cluster identity reaches the values; values that contradict it are refused ------------------------
def _configs_for(tmp_path, name):
    import shutil

    cfg = tmp_path / "configs"
    shutil.copytree(CONFIGS, cfg)
    ng = cfg / "nodegroup.yaml"
    ng.write_text(ng.read_text().replace("name: isovalent-demo", f"name: {name}"))
    return cfg


def test_cilium_cluster_name_and_id_come_from_the_stack(tmp_path):
    cfg = _configs_for(tmp_path, "prod-eu")
    stack = load_stack(cfg, patch={"cluster": {"name": "prod-eu", "id": 7}})
    r = render_stack(load_inputs(cfg, stack), Endpoint("api.example.com"))
    assert r.errors == []
    assert r.values["cilium"]["cluster"] == {"name": "prod-eu", "id": 7}
    assert "cluster" not in r.values["tetragon"] and "cluster" not in r.values["cilium-dnsproxy"]


def test_cilium_name_overrides_the_eks_name_in_the_values(tmp_path):
    cfg = _configs_for(tmp_path, "Prod_EU")
    stack = load_stack(cfg, patch={"cluster": {"name": "Prod_EU", "cilium_name": "prod-eu", "id": 7}})
    r = render_stack(load_inputs(cfg, stack), Endpoint("api.example.com"))
    assert r.errors == [] and r.values["cilium"]["cluster"] == {"name": "prod-eu", "id": 7}


def test_a_values_file_whose_cluster_name_disagrees_with_the_stack_is_refused_naming_both(tmp_path):
    cfg = _configs_for(tmp_path, "prod-eu")
    values = cfg / "cilium-enterprise-values.yaml"
    values.write_text(values.read_text() + "\ncluster:\n  name: isovalent-demo\n  id: 0\n")
    stack = load_stack(cfg, patch={"cluster": {"name": "prod-eu", "id": 7}})
    r = render_stack(load_inputs(cfg, stack), Endpoint("api.example.com"))
    by_path = {f.path: f for f in r.errors}
    assert set(by_path) == {"cilium.cluster.name", "cilium.cluster.id"}
    name = by_path["cilium.cluster.name"]
    assert (
        "values file cilium-enterprise-values.yaml sets cluster.name 'isovalent-demo' but the stack's cluster.name "
        "is 'prod-eu'"
    ) in name.message
    assert "remove cluster.name from values file cilium-enterprise-values.yaml" in name.hint
    assert "the stack's cluster.id is 7" in by_path["cilium.cluster.id"].message


@pytest.mark.parametrize(
    ("override", "path"),
    [({"name": "other"}, "cilium.cluster.name"), ({"id": 3}, "cilium.cluster.id"), ("prod", "cilium.cluster")],
)
def test_overrides_whose_cluster_disagrees_with_the_stack_are_refused(override, path):
    r = _render({"cilium": {"cluster": override}})
    [f] = r.errors
    assert f.path == path and "values_overrides.cilium" in f.message


@pytest.mark.parametrize("override", [{"name": "isovalent-demo"}, {"id": 0}, {"id": "0"}, {"name": None}])
def test_overrides_that_repeat_the_stacks_cluster_identity_are_accepted(override):
    r = _render({"cilium": {"cluster": override}})
    assert r.errors == [] and r.values["cilium"]["cluster"] == {"name": "isovalent-demo", "id": 0}


# ---- verification and drift read the identity back from cilium-config ---------------------------------------------
@pytest.mark.parametrize(
    ("data", "ok", "diff"),
    [
        ({"cluster-name": "prod-eu", "cluster-id": "7"}, True, None),
        (
            {"cluster-name": "isovalent-demo", "cluster-id": "7"},
            False,
            "cilium-config cluster-name: live 'isovalent-demo' -> desired 'prod-eu'",
        ),
        ({"cluster-name": "prod-eu", "cluster-id": "0"}, False, "cilium-config cluster-id: live '0' -> desired '7'"),
        ({}, False, "cilium-config cluster-name: live None -> desired 'prod-eu'"),
        (None, False, "ConfigMap kube-system/cilium-config: live missing -> desired present"),
    ],
)
def test_verification_and_drift_compare_cilium_config_with_the_stack(data, ok, diff):
    from tasks import drift, verify

    stack = load_stack(CONFIGS, patch={"cluster": {"name": "prod-eu", "id": 7}})
    check = verify.cluster_identity_check(stack, data)
    assert check.ok is ok and check.name == "cilium: cluster identity (ConfigMap kube-system/cilium-config)"
    assert check.expected == "cluster-name 'prod-eu', cluster-id '7'"
    item = drift.cluster_identity_drift(stack, data)
    assert item.ok is ok
    if diff:
        assert diff in item.diffs
        assert item.status == (drift.BROKEN if data is None else drift.DRIFTED)
