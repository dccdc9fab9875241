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
        "", "   ", "http://api.example.com", "https://api.example.com/path", "https://user:pw@api.example.com",
        "https://api.example.com?x=1", "https://", "https://-bad-.example.com", "https://api_example.com",
        "https://api.example.com:99999", "https://a b.com", "https://api.example.com;rm -rf /", "ftp://x.com",
        "https://999.1.1", "https://api.example.com:notaport",
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
        ({"cilium": {"enterprise": {"featureGate": {"approved": ["HubbleTimescape"]}}}},
         "cilium.enterprise.featureGate.approved"),
        ({"cilium": {"k8sServiceHost": None}}, "cilium.k8sServiceHost"),
        ({"cilium": {"k8sServiceHost": ""}}, "cilium.k8sServiceHost"),
        ({"cilium": {"enterprise": {"featureGate": {"approved": "DNSProxyHA"}}}},
         "cilium.enterprise.featureGate.approved"),
    ],
)
def test_cross_check_errors_name_the_key(overrides, path):
    r = _render(overrides)
    assert (path, Severity.error) in _paths(r, Severity.error), r.findings
    assert all(f.hint for f in r.findings)


@pytest.mark.parametrize(
    "overrides",
    [
        {"cilium": {"hubble": {"timescape": {"enabled": False}},
                    "enterprise": {"featureGate": {"approved": ["DNSProxyHA"]}}}},
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
