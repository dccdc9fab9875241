"""Object-level drift: the fields a manifest sets, against the live object, normalised as the API server stores."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tasks.object_drift import ObjectRef, object_drift, quantity, same

CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cilium-config", "namespace": "kube-system"}}


def _deploy(replicas=1, containers=None, **spec):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "hubble-relay", "namespace": "kube-system", "labels": {"k8s-app": "hubble-relay"}},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": containers or [{"name": "relay", "image": "relay:1"}]}},
            **spec,
        },
    }


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("1Gi", Decimal(1073741824)),
        (1073741824, Decimal(1073741824)),
        ("500m", Decimal("0.5")),
        ("0.5", Decimal("0.5")),
        ("1e3", Decimal(1000)),
        ("2k", Decimal(2000)),
        ("256Mi", Decimal(268435456)),
    ],
)
def test_quantities_read_as_numbers(text, number):
    assert quantity(text) == number


@pytest.mark.parametrize("text", ["true", "1.2.3", "", "Gi", "10 Gi", True, None, [1]])
def test_things_that_are_not_quantities(text):
    assert quantity(text) is None


@pytest.mark.parametrize(
    ("desired", "live", "equal"),
    [
        ("1Gi", "1073741824", True),
        ("100m", "0.1", True),
        ("8080", 8080, True),
        (1, 1.0, True),
        ("true", "true", True),
        ("true", "false", False),
        (True, "true", False),  # a bool is never a string: the server would have refused or kept the type
        (True, True, True),
        ("1Gi", "1G", False),
        ("v1.18.4", "v1.18.3", False),
    ],
)
def test_scalars_compare_as_the_server_stores_them(desired, live, equal):
    assert same(desired, live) is equal


def test_a_converged_object_with_server_added_fields_has_no_drift():
    desired = _deploy(containers=[{"name": "relay", "image": "relay:1", "resources": {}, "ports": []}])
    live = _deploy()
    live["metadata"]["annotations"] = {"meta.helm.sh/release-name": "cilium", "deployment.kubernetes.io/revision": "1"}
    live["metadata"]["resourceVersion"] = "42"
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    live["status"] = {"replicas": 1}
    assert object_drift(desired, live) == []


def test_a_live_edit_is_one_row_naming_the_object_and_path():
    desired = {**CM, "data": {"enable-hubble": "true", "debug": "false"}}
    live = {**CM, "data": {"enable-hubble": "false", "debug": "false", "extra": "x"}}
    [row] = object_drift(desired, live)
    assert str(row) == 'ConfigMap kube-system/cilium-config data.enable-hubble: live "false" → desired "true"'
    assert row.ref == ObjectRef("ConfigMap", "kube-system", "cilium-config")


def test_a_scaled_deployment_and_a_missing_object():
    [row] = object_drift(_deploy(replicas=1), _deploy(replicas=0))
    assert str(row) == "Deployment kube-system/hubble-relay spec.replicas: live 0 → desired 1"
    [gone] = object_drift(_deploy(), None)
    assert gone.missing and str(gone) == "Deployment kube-system/hubble-relay: missing"


def test_named_lists_match_by_name_whatever_their_order():
    two = [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1", "env": [{"name": "X", "value": "1"}]}]
    assert object_drift(_deploy(containers=two), _deploy(containers=list(reversed(two)))) == []
    changed = [{"name": "b", "image": "b:2", "env": [{"name": "X", "value": "2"}]}, {"name": "a", "image": "a:1"}]
    rows = [str(r) for r in object_drift(_deploy(containers=two), _deploy(containers=changed))]
    assert rows == [
        'Deployment kube-system/hubble-relay spec.template.spec.containers[name=b].env[name=X].value: live "2" → '
        'desired "1"',
        'Deployment kube-system/hubble-relay spec.template.spec.containers[name=b].image: live "b:2" → desired "b:1"',
    ]
    [missing] = object_drift(_deploy(containers=two), _deploy(containers=two[:1]))
    assert missing.missing and missing.path == "spec.template.spec.containers[name=b]"


def test_a_list_of_scalars_is_one_row_and_a_removed_field_says_absent():
    desired = _deploy(containers=[{"name": "relay", "image": "relay:1", "args": ["--a", "--b"]}])
    live = _deploy(containers=[{"name": "relay", "image": "relay:1", "args": ["--a", "--c"]}])
    [row] = object_drift(desired, live)
    assert row.path == "spec.template.spec.containers[name=relay].args" and row.live == ["--a", "--c"]
    live = _deploy()
    del live["metadata"]["labels"]
    [row] = object_drift(_deploy(), live)
    assert (
        str(row)
        == 'Deployment kube-system/hubble-relay metadata.labels: live (absent) → desired {"k8s-app": "hubble-relay"}'
    )


def test_quantities_in_resources_are_not_drift():
    res = {"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "256Mi"}}
    stored = {"limits": {"cpu": "500m", "memory": "1073741824"}, "requests": {"cpu": "0.1", "memory": "268435456"}}
    desired = _deploy(containers=[{"name": "relay", "image": "relay:1", "resources": res}])
    live = _deploy(containers=[{"name": "relay", "image": "relay:1", "resources": stored}])
    assert object_drift(desired, live) == []


def test_cluster_scoped_objects_name_no_namespace():
    desired = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cilium-secrets", "labels": {"a": "1"}}}
    live = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cilium-secrets", "labels": {"a": "2"}}}
    assert [str(r) for r in object_drift(desired, live)] == [
        'Namespace cilium-secrets metadata.labels.a: live "2" → desired "1"'
    ]


def test_a_null_in_the_manifest_sets_nothing_and_a_found_object_is_named_as_the_server_holds_it():
    desired = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cilium-secrets", "annotations": None}}
    live = {"kind": "Namespace", "metadata": {"name": "cilium-secrets", "annotations": {"meta.helm.sh/x": "y"}}}
    assert object_drift(desired, live, "kube-system") == []
    live["metadata"]["labels"] = {}
    [row] = object_drift({**desired, "metadata": {"name": "cilium-secrets", "labels": {"a": "1"}}}, live, "kube-system")
    assert str(row).startswith("Namespace cilium-secrets metadata.labels.a:")
