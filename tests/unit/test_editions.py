"""The editions: the default stack (enterprise, the runbook's) and the `oss` overlay (Cilium's public charts)."""

from __future__ import annotations

import pytest
import yaml

from flows.cli.sandbox import sandbox_chart_url
from tasks.model import Component, load_stack
from tasks.render import load_inputs, render_stack
from tasks.values import Endpoint
from tests.conftest import CONFIGS

ENDPOINT = Endpoint("abc.gr7.us-east-1.eks.amazonaws.com", 443)


def _values(environment: str | None) -> dict:
    stack = load_stack(CONFIGS, environment)
    rendered = render_stack(load_inputs(CONFIGS, stack), ENDPOINT)
    assert rendered.errors == []
    return rendered.values


def test_the_oss_edition_uses_cilium_s_public_repository_and_charts_without_the_dns_proxy():
    stack = load_stack(CONFIGS, "oss")
    assert (stack.chart_repository.name, stack.chart_repository.url) == ("cilium", "https://helm.cilium.io")
    enabled = {n: (r.chart, r.version) for n, r in stack.releases.items() if r.enabled}
    assert enabled == {"cilium": ("cilium/cilium", "1.18.4"), "tetragon": ("cilium/tetragon", "1.5.0")}
    cilium = stack.releases["cilium"]
    assert cilium.workload("timescape") is None and cilium.workload("relay") is not None
    assert stack.release_for(Component.dnsproxy) is not None  # still named, so a drift run can tell it is off


def test_the_oss_edition_keeps_every_runbook_value_but_the_enterprise_ones():
    enterprise, oss = _values(None)["cilium"], _values("oss")["cilium"]
    assert "enterprise" not in oss and "extraConfig" not in oss and "timescape" not in oss["hubble"]
    metrics = enterprise["hubble"]["metrics"]["enabled"]
    assert oss["hubble"]["metrics"]["enabled"] == [m for m in metrics if m != "flow_export"]

    def without_enterprise(values: dict) -> dict:
        out = {k: v for k, v in values.items() if k not in ("enterprise", "extraConfig")}
        hubble = {k: v for k, v in values["hubble"].items() if k not in ("timescape", "metrics")}
        return {**out, "hubble": hubble}

    assert without_enterprise(oss) == without_enterprise(enterprise)
    assert _values("oss")["tetragon"] == _values(None)["tetragon"]
    assert "cilium-dnsproxy" not in _values("oss")


def test_a_release_s_stack_values_merge_over_its_values_file(tmp_path):
    for f in CONFIGS.iterdir():
        if f.is_file():
            (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "environments").mkdir()
    overlay = {"releases": {"tetragon": {"values": {"tetragon": {"dns": None, "layer3": {"udp": {"enabled": False}}}}}}}
    (tmp_path / "environments" / "x.yaml").write_text(yaml.safe_dump(overlay))
    stack = load_stack(tmp_path, "x")
    tetragon = render_stack(load_inputs(tmp_path, stack), ENDPOINT).values["tetragon"]["tetragon"]
    assert "dns" not in tetragon, "null removes the file's key"
    assert tetragon["layer3"]["udp"] == {"enabled": False} and tetragon["layer3"]["tcp"]["enabled"] is True


@pytest.mark.parametrize(
    ("stack_url", "expected"),
    [
        ("https://helm.isovalent.com", "http://127.0.0.1:9/charts"),
        ("https://helm.cilium.io", "http://127.0.0.1:9/charts/oss"),
        ("https://helm.cilium.io/", "http://127.0.0.1:9/charts/oss"),
        (None, "http://127.0.0.1:9/charts"),
    ],
)
def test_the_sandbox_stands_in_for_each_public_repository_with_its_mirror(stack_url, expected):
    assert sandbox_chart_url(stack_url, "http://127.0.0.1:9/charts") == expected
