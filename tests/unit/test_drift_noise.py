"""Object drift's noise rules and report: what controllers, HPAs, certificate generators, hook TTLs and our own
restarts write is not drift; a stack's own Flux-style rules; the rows grouped per release; the one-sentence summary."""

from __future__ import annotations

import copy

import pytest

from tasks import drift
from tasks.manifest import parse_objects
from tasks.model import DriftIgnore
from tasks.object_drift import IgnoreRule, ObjectRef, release_drift_rows, without

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: hubble-relay, namespace: kube-system}
spec:
  replicas: 1
  template:
    metadata: {annotations: {cilium.io/checksum: abc}}
    spec: {containers: [{name: relay, image: "relay:1"}]}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: timescape, namespace: kube-system}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: hubble-timescape}
  minReplicas: 1
  maxReplicas: 5
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: hubble-timescape, namespace: kube-system}
spec: {replicas: 1}
---
apiVersion: v1
kind: Secret
type: kubernetes.io/tls
metadata: {name: hubble-server-certs, namespace: kube-system}
data: {tls.crt: T0xE}
---
apiVersion: v1
kind: Secret
metadata: {name: plain, namespace: kube-system}
stringData: {token: abc}
"""
HOOKS = """
apiVersion: batch/v1
kind: Job
metadata:
  name: hubble-generate-certs
  namespace: kube-system
  annotations: {helm.sh/hook: "post-install,post-upgrade", helm.sh/hook-delete-policy: before-hook-creation}
spec: {ttlSecondsAfterFinished: 1800}
---
apiVersion: v1
kind: Pod
metadata: {name: connectivity-test, namespace: kube-system, annotations: {helm.sh/hook: test}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: kept-hook, namespace: kube-system, annotations: {helm.sh/hook: post-install}}
data: {a: "1"}
"""
OBJECTS = parse_objects(MANIFEST, "kube-system") + parse_objects(HOOKS, "kube-system", hook=True)


def sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ref(kind: str, name: str) -> ObjectRef:
    return ObjectRef(kind, "kube-system", name)


def converged() -> dict[ObjectRef, dict]:
    """What the server holds for OBJECTS once everything ran: the rendered bodies plus what the server writes."""
    live = {}
    for o in OBJECTS:
        body = copy.deepcopy(dict(o.body))
        body.setdefault("metadata", {}).update(resourceVersion="7", uid="u-1", generation=3, managedFields=[{}])
        body["status"] = {"observedGeneration": 3}
        if o.kind == "Secret" and "stringData" in body:
            body["data"] = {"token": "YWJj"}  # the server keeps stringData base64 under data
            del body["stringData"]
        live[ref(o.kind, o.name)] = body
    del live[ref("Job", "hubble-generate-certs")]  # deleted by its TTL
    del live[ref("Pod", "connectivity-test")]  # a test hook exists only while `helm test` runs
    return live


def test_a_converged_release_has_no_rows_whatever_the_server_and_controllers_wrote():
    assert release_drift_rows(OBJECTS, converged()) == []


def test_controller_and_restart_writes_hpa_replicas_and_renewed_certificates_are_noise():
    live = converged()
    relay = live[ref("Deployment", "hubble-relay")]
    relay["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] = "2026-12-08T03:00:00Z"
    relay["metadata"]["finalizers"] = ["foregroundDeletion"]
    live[ref("Deployment", "hubble-timescape")]["spec"]["replicas"] = 4  # the HPA scaled it
    live[ref("Secret", "hubble-server-certs")]["data"] = {"tls.crt": "UkVORVdFRA=="}  # certgen renewed it
    assert release_drift_rows(OBJECTS, live) == []


def test_real_edits_next_to_the_noise_are_still_rows():
    live = converged()
    live[ref("Deployment", "hubble-relay")]["spec"]["replicas"] = 0
    live[ref("Secret", "plain")]["data"] = {"token": "eHl6"}
    del live[ref("ConfigMap", "kept-hook")]  # a hook without a delete policy or TTL stays: its loss is drift
    assert [str(r) for r in release_drift_rows(OBJECTS, live)] == [
        "Deployment kube-system/hubble-relay spec.replicas: live 0 → desired 1",
        # A Secret's values are never shown: their size and digest are.
        f'Secret kube-system/plain data.token: live "<4 bytes, sha256 {sha("eHl6")}>" '
        f'→ desired "<4 bytes, sha256 {sha("YWJj")}>"',
        "ConfigMap kube-system/kept-hook: missing",
    ]


def test_a_stack_rule_ignores_its_paths_on_the_objects_its_target_selects_only():
    live = converged()
    live[ref("Deployment", "hubble-relay")]["spec"]["replicas"] = 0
    live[ref("Deployment", "hubble-relay")]["spec"]["template"]["spec"]["containers"][0]["image"] = "relay:2"
    rule = DriftIgnore(paths=["/spec/replicas"], target={"kind": "Deployment", "name": "hubble-*"})
    rules = [IgnoreRule(tuple(rule.paths), rule.target.kind, rule.target.namespace, rule.target.name)]
    assert [r.path for r in release_drift_rows(OBJECTS, live, rules)] == [
        "spec.template.spec.containers[name=relay].image"
    ]
    other = [IgnoreRule(("/spec/replicas",), "StatefulSet")]
    assert [r.path for r in release_drift_rows(OBJECTS, live, other)] == [
        "spec.replicas",
        "spec.template.spec.containers[name=relay].image",
    ]


@pytest.mark.parametrize(
    ("pointer", "left"),
    [
        ("/spec/replicas", {"spec": {"template": {"metadata": {"annotations": {"a/b": "1"}}}}}),
        (
            "/spec/template/metadata/annotations/a~1b",
            {"spec": {"replicas": 1, "template": {"metadata": {"annotations": {}}}}},
        ),
        ("/spec/nothing/here", {"spec": {"replicas": 1, "template": {"metadata": {"annotations": {"a/b": "1"}}}}}),
    ],
)
def test_json_pointers_remove_what_they_name_and_nothing_else(pointer, left):
    body = {"spec": {"replicas": 1, "template": {"metadata": {"annotations": {"a/b": "1"}}}}}
    assert without(body, [pointer]) == left
    assert body["spec"]["replicas"] == 1  # the input is not changed


def test_a_removed_rule_and_an_added_one_are_rows_of_their_own():
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "cilium-operator"},
        "rules": [{"resources": ["pods"], "verbs": ["get"]}, {"resources": ["nodes"], "verbs": ["list"]}],
    }
    objects = parse_objects(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: cilium-operator}\n"
        "rules: [{resources: [pods], verbs: [get]}, {resources: [nodes], verbs: [list]}]\n",
        "kube-system",
    )
    live = {ObjectRef("ClusterRole", "", "cilium-operator"): {**role, "rules": [role["rules"][1]]}}
    assert [str(r) for r in release_drift_rows(objects, live)] == [
        'ClusterRole cilium-operator rules[0]: live (absent) → desired {"resources": ["pods"], "verbs": ["get"]}'
    ]
    extra = {"resources": ["secrets"], "verbs": ["*"]}
    live = {ObjectRef("ClusterRole", "", "cilium-operator"): {**role, "rules": [*role["rules"], extra]}}
    assert [str(r) for r in release_drift_rows(objects, live)] == [
        'ClusterRole cilium-operator rules[2]: live {"resources": ["secrets"], "verbs": ["*"]} → desired (absent)'
    ]


def test_the_report_groups_rows_per_release_and_sums_them_up_in_one_sentence():
    live = converged()
    live[ref("Deployment", "hubble-relay")]["spec"]["replicas"] = 0
    del live[ref("ConfigMap", "kept-hook")]
    item = drift.objects_drift("cilium", release_drift_rows(OBJECTS, live), len(OBJECTS))
    clean = drift.objects_drift("tetragon", [], 13)
    assert item.status == drift.DRIFTED and clean.ok
    assert item.repair == drift.ReinstallRelease("cilium")
    assert item.detail == (
        "1 field(s) differ, 1 object(s) missing in 2 of 8 objects: "
        "ConfigMap kube-system/kept-hook, Deployment kube-system/hubble-relay"
    )
    sentence = drift.sentence("demo (us-east-1)", [item, clean])
    assert sentence == (
        "demo (us-east-1): 2 objects of release cilium drifted "
        "(ConfigMap kube-system/kept-hook, Deployment kube-system/hubble-relay)."
    )
    assert drift.sentence("demo (us-east-1)", [clean]) == "demo (us-east-1): no drift (1 check ok)."
    text = drift.markdown("Drift report", [item, clean], "demo (us-east-1)")
    assert "### Release cilium: drifted objects" in text and "### Release tetragon" not in text
    assert "| Deployment kube-system/hubble-relay | `spec.replicas` | 0 | 1 |" in text
    assert "| ConfigMap kube-system/kept-hook | (whole object) | missing | as rendered |" in text
    assert f"> {sentence}" in text
    rows = drift.object_rows([item, clean])
    assert rows[0] == {
        "release": "cilium",
        "object": "Deployment kube-system/hubble-relay",
        "kind": "Deployment",
        "namespace": "kube-system",
        "name": "hubble-relay",
        "path": "spec.replicas",
        "live": 0,
        "desired": 1,
        "missing": False,
    }
    assert drift.summary([item, clean], "demo")["objects"] == 2


def test_a_stack_rule_path_must_be_a_json_pointer():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="paths.0"):
        DriftIgnore(paths=["spec.replicas"])
