"""What a release renders (pure): `helm get manifest` / `helm get hooks` parsed into typed objects, expected
replicas, and the verdict for a workload the deployed release does not have."""

from __future__ import annotations

import pytest

from tasks import helm_argv, manifest

MANIFEST = """---
# Source: cilium/templates/cilium-agent.yaml
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: cilium
  namespace: kube-system
---
# Source: cilium/templates/cilium-operator.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cilium-operator
  namespace: kube-system
spec:
  replicas: 2
---
# Source: cilium/templates/hubble.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hubble-relay
spec: {}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cilium-config}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cilium}
---
"""
HOOKS = """---
# Source: cilium/templates/hubble.yaml
apiVersion: batch/v1
kind: Job
metadata:
  name: hubble-generate-certs
  annotations: {helm.sh/hook: "post-install,post-upgrade"}
"""


def release(status="deployed"):
    return manifest.rendered_release("cilium", "kube-system", {"status": status, "revision": 3}, MANIFEST, HOOKS)


def test_rendered_objects_default_to_the_release_namespace_and_one_replica():
    r = release()
    assert [o.ref for o in r.objects] == [
        "DaemonSet kube-system/cilium",
        "Deployment kube-system/cilium-operator",
        "Deployment kube-system/hubble-relay",
        "ConfigMap kube-system/cilium-config",
        "ClusterRole cilium",
        "Job kube-system/hubble-generate-certs",
    ]
    assert r.expected_replicas("Deployment", "kube-system", "cilium-operator") == 2
    assert r.expected_replicas("Deployment", "kube-system", "hubble-relay") == 1  # the API server's default
    assert r.expected_replicas("DaemonSet", "kube-system", "cilium") is None
    assert r.expected_replicas("Deployment", "kube-system", "hubble-timescape") is None
    assert r.find("Job", "kube-system", "hubble-generate-certs").hook  # type: ignore[union-attr]


def test_listing_puts_workloads_first():
    assert release().listing() == [
        "DaemonSet: kube-system/cilium",
        "Deployment: kube-system/cilium-operator, kube-system/hubble-relay",
        "Job (hook): kube-system/hubble-generate-certs",
        "ClusterRole: cilium",
        "ConfigMap: kube-system/cilium-config",
    ]


def test_a_name_the_deployed_release_does_not_render_fails_with_a_guess_and_the_listing():
    v = manifest.absent_workload("Deployment", "kube-system", "hubble-relya", release())
    assert v is not None and v.failed and not v.ready
    assert "release cilium is deployed (revision 3)" in v.summary
    assert "renders no Deployment kube-system/hubble-relya" in v.summary
    assert "did you mean hubble-relay?" in v.summary
    assert "Deployment: kube-system/cilium-operator, kube-system/hubble-relay" in v.details


def test_a_rendered_object_deleted_from_the_cluster_fails_naming_the_fix():
    v = manifest.absent_workload("Deployment", "kube-system", "hubble-relay", release())
    assert v is not None and v.failed and "deleted outside helm" in v.summary


@pytest.mark.parametrize(
    ("kind", "name", "status"),
    [
        ("Deployment", "hubble-relya", "pending-install"),  # helm is not done: waiting can still help
        ("Deployment", "hubble-relya", "failed"),
        ("Job", "hubble-generate-certs", "deployed"),  # a hook: created while installing, may be gone after its TTL
    ],
)
def test_no_early_verdict_while_waiting_can_help(kind, name, status):
    assert manifest.absent_workload(kind, "kube-system", name, release(status)) is None


def test_manifest_and_hooks_argv():
    assert helm_argv.get_manifest("helm", "cilium", "kube-system", "/k") == [
        "helm",
        "get",
        "manifest",
        "cilium",
        "--namespace",
        "kube-system",
        "--kubeconfig",
        "/k",
    ]
    assert helm_argv.get_hooks("helm", "cilium", "kube-system") == [
        "helm",
        "get",
        "hooks",
        "cilium",
        "--namespace",
        "kube-system",
    ]


def test_helm_is_asked_after_three_polls_and_ten_seconds_of_absence_then_at_most_every_ten_seconds():
    from tasks.steps.workloads import AbsenceWatch

    w = AbsenceWatch()
    assert [w.due(True, t) for t in (0.0, 0.2, 0.4)] == [False, False, False]  # 3 polls but not 10 s yet
    assert w.due(True, 10.0) is True
    assert w.due(True, 15.0) is False and w.due(True, 20.0) is True
    assert w.due(False, 21.0) is False  # the object appeared: start over
    assert [w.due(True, t) for t in (30.0, 45.0, 46.0)] == [False, False, True]  # 10 s but only at the third poll
