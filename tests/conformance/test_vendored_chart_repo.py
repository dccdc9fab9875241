"""The sandbox chart repository serves the vendored open-source charts at <repo>/ (cilium with the Timescape
stand-in added) and, byte for byte, at <repo>/oss."""

from __future__ import annotations

import json

import yaml

from tests.conftest import CONFIGS
from tests.support.commands import run

OSS_VERSIONS = {"cilium": {"1.17.18", "1.18.3", "1.18.4"}, "tetragon": {"1.4.1", "1.5.0"}}


def _search(helm_binary, repo: str) -> dict[str, set[str]]:
    out = json.loads(run(helm_binary, "search", "repo", f"{repo}/", "--versions", "-o", "json").stdout)
    found: dict[str, set[str]] = {}
    for row in out:
        found.setdefault(row["name"].split("/", 1)[1], set()).add(row["version"])
    return found


def test_helm_search_sees_every_vendored_version_in_both_repositories(sandbox, helm_binary):
    run(helm_binary, "repo", "add", "oss", f"{sandbox.chart_repo_url}/oss")
    run(helm_binary, "repo", "add", "sandbox", sandbox.chart_repo_url)
    oss = _search(helm_binary, "oss")
    assert oss == OSS_VERSIONS
    default = _search(helm_binary, "sandbox")
    assert default == {**OSS_VERSIONS, "cilium-dnsproxy": {"1.16.7"}}
    latest = json.loads(run(helm_binary, "search", "repo", "sandbox/", "-o", "json").stdout)
    described = {row["name"]: (row["version"], row["description"]) for row in latest}
    assert described["sandbox/cilium"][0] == "1.18.4" and "Timescape stand-in" in described["sandbox/cilium"][1]
    assert "STAND-IN" in described["sandbox/cilium-dnsproxy"][1]
    assert described["sandbox/tetragon"][0] == "1.5.0" and "STAND-IN" not in described["sandbox/tetragon"][1]


def test_helm_template_renders_the_real_cilium_1_18_4_with_the_project_values(sandbox, helm_binary, tmp_path):
    values = yaml.safe_load((CONFIGS / "cilium-enterprise-values.yaml").read_text())
    values["k8sServiceHost"] = "127.0.0.1"
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(values))
    run(helm_binary, "repo", "add", "oss", f"{sandbox.chart_repo_url}/oss")
    rendered = run(
        helm_binary,
        "template",
        "cilium",
        "oss/cilium",
        "--version",
        "1.18.4",
        "-n",
        "kube-system",
        "-f",
        tmp_path / "values.yaml",
        "--api-versions",
        "monitoring.coreos.com/v1",
    ).stdout
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("DaemonSet", "cilium") in kinds and ("Deployment", "cilium-operator") in kinds
    assert ("Deployment", "hubble-relay") in kinds
    assert all("STAND-IN" not in json.dumps(o) for o in objects)
