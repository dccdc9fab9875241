"""Malformed stack files, overlays and overrides are rejected with a message naming the key path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tasks.errors import ConfigError
from tasks.model import load_stack
from tasks.render import load_inputs, render_stack
from tasks.values import Endpoint
from tests.conftest import CONFIGS


def _base() -> dict:
    return yaml.safe_load((CONFIGS / "stack.yaml").read_text())


def _set(d: dict, path: str, value) -> dict:
    cur = d
    parts = path.split(".")
    for p in parts[:-1]:
        cur = cur[p]
    cur[parts[-1]] = value
    return d


def _del(d: dict, path: str) -> dict:
    cur = d
    parts = path.split(".")
    for p in parts[:-1]:
        cur = cur[p]
    del cur[parts[-1]]
    return d


STACK_CASES = [
    ("unknown top-level key", lambda d: {**d, "clusters": {}}, "clusters"),
    ("unknown nested key", lambda d: _set(d, "cluster.zone", "a"), "cluster.zone"),
    ("misspelt release key", lambda d: _set(d, "releases.cilium.verison", "1.18.4"), "releases.cilium.verison"),
    ("version not semver", lambda d: _set(d, "releases.cilium.version", "1.18"), "releases.cilium.version"),
    ("version with shell", lambda d: _set(d, "releases.cilium.version", "1.18.4; rm -rf /"), "releases.cilium.version"),
    ("version as number", lambda d: _set(d, "releases.cilium.version", 1.18), "releases.cilium.version"),
    (
        "namespace upper case",
        lambda d: _set(d, "releases.tetragon.namespace", "Tetragon"),
        "releases.tetragon.namespace",
    ),
    (
        "namespace flag smuggling",
        lambda d: _set(d, "releases.tetragon.namespace", "--all-namespaces"),
        "releases.tetragon.namespace",
    ),
    (
        "release name flag smuggling",
        lambda d: {**d, "releases": {**d["releases"], "--set=x": d["releases"]["tetragon"]}},
        "releases.--set=x",
    ),
    (
        "release name too long",
        lambda d: {**d, "releases": {**d["releases"], "a" * 54: d["releases"]["tetragon"]}},
        "releases." + "a" * 54,
    ),
    (
        "chart with spaces",
        lambda d: _set(d, "releases.cilium.chart", "isovalent/cilium --devel"),
        "releases.cilium.chart",
    ),
    ("chart from another repo", lambda d: _set(d, "releases.cilium.chart", "other/cilium"), "other/cilium"),
    ("timeout too small", lambda d: _set(d, "releases.cilium.timeout_seconds", 5), "releases.cilium.timeout_seconds"),
    (
        "timeout not a number",
        lambda d: _set(d, "releases.cilium.timeout_seconds", "ten"),
        "releases.cilium.timeout_seconds",
    ),
    ("bad region", lambda d: _set(d, "cluster.region", "us-east"), "cluster.region"),
    ("cluster id out of range", lambda d: _set(d, "cluster.id", 600), "cluster.id"),
    ("cluster name with slash", lambda d: _set(d, "cluster.name", "a/b"), "cluster.name"),
    ("missing cluster", lambda d: _del(d, "cluster"), "cluster"),
    ("repo url not http", lambda d: _set(d, "chart_repository.url", "file:///etc/passwd"), "chart_repository.url"),
    (
        "workload kind unknown",
        lambda d: _set(d, "releases.cilium.workloads", [{"role": "agent", "kind": "Pod", "name": "x", "selector": {}}]),
        "releases.cilium.workloads.0.kind",
    ),
    (
        "selector label value bad",
        lambda d: _set(
            d,
            "releases.cilium.workloads",
            [{"role": "agent", "kind": "DaemonSet", "name": "x", "selector": {"a": "b c"}}],
        ),
        "releases.cilium.workloads.0.selector",
    ),
    (
        "taint effect misspelt",
        lambda d: _set(d, "nodegroup.taints", [{"key": "a", "effect": "NoExecute"}]),
        "nodegroup.taints.0.effect",
    ),
    (
        "two cilium releases",
        lambda d: {**d, "releases": {**d["releases"], "cilium2": d["releases"]["cilium"]}},
        "both component 'cilium'",
    ),
    ("no cilium release", lambda d: {**d, "releases": {"tetragon": d["releases"]["tetragon"]}}, "component 'cilium'"),
    (
        "values file absolute path traversal",
        lambda d: _set(d, "releases.cilium.values_file", "-rf"),
        "releases.cilium.values_file",
    ),
    ("node role malformed", lambda d: _set(d, "nodegroup.node_role", "arn:aws:iam::12:role/x"), "nodegroup.node_role"),
]


@pytest.mark.parametrize(("case", "mutate", "needle"), STACK_CASES, ids=[c[0] for c in STACK_CASES])
def test_malformed_stack_is_rejected_naming_the_key(tmp_path, case, mutate, needle):
    cfg = tmp_path / "configs"
    shutil.copytree(CONFIGS, cfg)
    (cfg / "stack.yaml").write_text(yaml.safe_dump(mutate(_base())))
    with pytest.raises(ConfigError) as e:
        load_stack(cfg)
    assert needle in str(e.value), str(e.value)
    assert "next:" in str(e.value)


def _configs(tmp_path: Path) -> Path:
    cfg = tmp_path / "configs"
    shutil.copytree(CONFIGS, cfg)
    return cfg


def test_overlay_that_is_not_a_mapping_is_rejected(tmp_path):
    cfg = _configs(tmp_path)
    (cfg / "environments" / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="bad.yaml: expected a mapping"):
        load_stack(cfg, "bad")


def test_overlay_with_unknown_key_names_the_overlay_and_key(tmp_path):
    cfg = _configs(tmp_path)
    (cfg / "environments" / "typo.yaml").write_text("releases:\n  cilium:\n    timeout: 10\n")
    with pytest.raises(ConfigError) as e:
        load_stack(cfg, "typo")
    assert "environments/typo.yaml" in str(e.value) and "releases.cilium.timeout" in str(e.value)


def test_overlay_with_broken_yaml_names_the_position(tmp_path):
    cfg = _configs(tmp_path)
    (cfg / "environments" / "broken.yaml").write_text("releases:\n  cilium: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_stack(cfg, "broken")


def test_unknown_environment_lists_the_known_ones():
    with pytest.raises(ConfigError, match="known environments: oss, production, sandbox"):
        load_stack(CONFIGS, "staging")


def test_environment_name_with_path_traversal_is_rejected():
    with pytest.raises(ConfigError, match="not valid"):
        load_stack(CONFIGS, "../../etc/passwd")


def test_patch_with_wrong_type_names_the_key():
    with pytest.raises(ConfigError, match="releases.tetragon.create_namespace"):
        load_stack(CONFIGS, patch={"releases": {"tetragon": {"create_namespace": "perhaps"}}})


def test_missing_values_file_names_the_release(tmp_path):
    cfg = _configs(tmp_path)
    (cfg / "tetragon-network-values.yaml").unlink()
    stack = load_stack(cfg)
    with pytest.raises(ConfigError, match="release 'tetragon'"):
        load_inputs(cfg, stack)


def test_values_file_holding_a_list_is_rejected(tmp_path):
    cfg = _configs(tmp_path)
    (cfg / "cilium-dns-proxy-ha-values.yaml").write_text("- a\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_inputs(cfg, load_stack(cfg))


@pytest.mark.parametrize(
    ("doc_change", "needle"),
    [
        (lambda d: _set(d, "metadata.name", "other"), "metadata.name"),
        (lambda d: _set(d, "metadata.region", "eu-west-1"), "metadata.region"),
        (lambda d: _set(d, "kind", "Cluster"), "not an eksctl ClusterConfig"),
        (lambda d: d["managedNodeGroups"][0].update(desiredCapacity="two") or d, "desiredCapacity"),
        (lambda d: d["managedNodeGroups"][0].update(spot=True) or d, "spot"),
        (lambda d: d["managedNodeGroups"][0].update(name="bad name;") or d, "name"),
        (lambda d: d["managedNodeGroups"][0].update(minSize=3) or d, "minSize"),
        (lambda d: d.update(managedNodeGroups=[]) or d, "exactly one"),
        (lambda d: d["managedNodeGroups"][0].update(privateNetworking="yes") or d, "privateNetworking"),
    ],
)
def test_malformed_nodegroup_file_is_rejected_naming_the_key(tmp_path, doc_change, needle):
    cfg = _configs(tmp_path)
    doc = yaml.safe_load((cfg / "nodegroup.yaml").read_text())
    (cfg / "nodegroup.yaml").write_text(yaml.safe_dump(doc_change(doc)))
    stack = load_stack(cfg)
    with pytest.raises(ConfigError) as e:
        render_stack(load_inputs(cfg, stack), Endpoint("api.example.com"))
    assert needle in str(e.value)


@pytest.mark.parametrize("overrides", [["a"], {"cilium": ["x"]}, {"cilium": "debug=true"}, "x"])
def test_malformed_overrides_are_rejected(overrides):
    stack = load_stack(CONFIGS)
    with pytest.raises(ConfigError, match="overrides"):
        render_stack(load_inputs(CONFIGS, stack), Endpoint("api.example.com"), overrides)


# ---- a key given twice in any YAML file the project reads: refused, naming file, line and key ---------------------
DUPLICATE_CASES = [
    # (file, text appended or written, needle for the key path, line of the second occurrence or None = computed)
    ("stack.yaml", "cluster:\n  name: other\n", "'cluster'"),
    ("environments/sandbox.yaml", "releases:\n  tetragon:\n    timeout_seconds: 60\n", "'releases'"),
    ("cilium-enterprise-values.yaml", "hubble:\n  enabled: false\n", "'hubble'"),
    ("tetragon-network-values.yaml", "tetragon:\n  enabled: false\n", "'tetragon'"),
    ("nodegroup.yaml", "metadata:\n  name: isovalent-demo\n", "'metadata'"),
]


@pytest.mark.parametrize(("name", "extra", "key"), DUPLICATE_CASES, ids=[c[0] for c in DUPLICATE_CASES])
def test_a_key_given_twice_in_any_yaml_file_is_refused_naming_file_line_and_key(tmp_path, name, extra, key):
    cfg = _configs(tmp_path)
    path = cfg / name
    text = path.read_text()
    first = next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(key.strip("'") + ":"))
    path.write_text(text.rstrip("\n") + "\n" + extra)
    second = len(text.rstrip("\n").splitlines()) + 1
    with pytest.raises(ConfigError) as e:
        load_inputs(cfg, load_stack(cfg, "sandbox"))
    msg = str(e.value)
    assert str(path) in msg and f"key {key} is given twice (lines {first} and {second})" in msg, msg
    assert "next: merge the two" in msg


def test_a_nested_duplicate_names_the_full_key_path(tmp_path):
    cfg = _configs(tmp_path)
    values = cfg / "cilium-enterprise-values.yaml"
    text = values.read_text()
    assert "  relay:\n" in text
    values.write_text(text.replace("  relay:\n", "  relay:\n    enabled: false\n"))
    with pytest.raises(ConfigError, match=r"key 'hubble.relay.enabled' is given twice \(lines \d+ and \d+\)"):
        load_inputs(cfg, load_stack(cfg))


def test_yaml_merge_keys_and_repeated_keys_in_different_mappings_are_not_duplicates():
    from tasks.model import load_yaml_text

    text = "base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  b: 3\ny: {a: 1}\nz: [{a: 1}, {a: 2}]\n"
    assert load_yaml_text(text, "t") == {
        "base": {"a": 1, "b": 2},
        "x": {"a": 1, "b": 3},
        "y": {"a": 1},
        "z": [{"a": 1}, {"a": 2}],
    }


def test_a_stack_file_passed_with_dash_dash_stack_holding_a_duplicate_is_refused(tmp_path, capsys):
    from flows.cli import main

    stack = tmp_path / "mystack.yaml"
    stack.write_text((CONFIGS / "stack.yaml").read_text() + "nodegroup:\n  file: other.yaml\n")
    assert main(["install", "--stack", str(stack)]) == 1
    err = capsys.readouterr().err
    assert f"stack file {stack}: key 'nodegroup' is given twice" in err, err


# ---- regions that do not exist, Cilium's cluster-name rules ----------------------------------------------------
@pytest.mark.parametrize(
    ("region", "closest"), [("us-east-7", "us-east-"), ("eu-wset-1", "eu-west-1"), ("ap-northeast-9", "ap-northeast-")]
)
def test_a_region_that_does_not_exist_is_refused_with_the_closest_one(region, closest):
    from tasks.adapters.aws import check_region

    with pytest.raises(ConfigError) as e:
        check_region(region)
    msg = str(e.value)
    assert f"cluster.region {region!r} is not an AWS region with EKS" in msg and f"closest is '{closest}" in msg, msg
    assert "next: set cluster.region to" in msg


@pytest.mark.parametrize(
    "region", ["us-east-1", "eu-central-1", "ap-southeast-5", "us-gov-west-1", "cn-north-1", "eusc-de-east-1"]
)
def test_real_regions_of_every_partition_are_accepted(region):
    from tasks.adapters.aws import check_region

    check_region(region)  # the sandbox's moto server runs in us-east-1
    assert load_stack(CONFIGS, patch={"cluster": {"region": region}}).cluster.region == region


@pytest.mark.parametrize("name", ["Prod_EU", "prod-eu-with-a-name-longer-than-32", "PROD"])
def test_an_eks_name_cilium_cannot_use_needs_cilium_name(name):
    with pytest.raises(ConfigError) as e:
        load_stack(CONFIGS, patch={"cluster": {"name": name}})
    assert "cannot be Cilium's cluster.name" in str(e.value) and "cluster.cilium_name" in str(e.value)
    stack = load_stack(CONFIGS, patch={"cluster": {"name": name, "cilium_name": "prod-eu"}})
    assert stack.cluster.cilium_cluster_name == "prod-eu"


def test_cilium_refuses_the_name_default_with_a_nonzero_id():
    with pytest.raises(ConfigError, match="'default' with cluster.id 3"):
        load_stack(CONFIGS, patch={"cluster": {"name": "default", "id": 3}})
    assert load_stack(CONFIGS, patch={"cluster": {"name": "default", "id": 0}}).cluster.id == 0


def test_cluster_id_defaults_to_zero():
    data = _base()
    del data["cluster"]["id"]
    from tasks.model import parse_stack

    assert parse_stack(data).cluster.id == 0
