"""coordination.k8s.io/v1 Leases in the Kubernetes API emulator, driven by the kubernetes client and the real
kubectl: discovery, OpenAPI v3, create 201 / 409 AlreadyExists, PUT with a resourceVersion precondition (409
Conflict with kube-apiserver's message), no unconditional PUT (422), MicroTime parsing, get 404, delete with
preconditions, and `kubectl get lease` tables. The cluster lock (tasks/lease.py, tasks/steps/lock.py) relies on
every one of them."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config

from tasks.adapters.kube import Conflict, Kube
from tasks.errors import PermanentError
from tests.support.commands import kubectl

NS = "kube-system"


@pytest.fixture
def kubeconfig(sandbox):
    return str(sandbox.clusters["isovalent-demo"].kubeconfig)


@pytest.fixture
def coordination(kubeconfig):
    api = config.new_client_from_config(config_file=kubeconfig)
    yield client.CoordinationV1Api(api)
    api.close()


def lease(name: str, holder: str = "me", **spec) -> dict:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 60,
            "renewTime": "2026-01-02T03:04:05.250000Z",
            **spec,
        },
    }


def status_of(e: pytest.ExceptionInfo) -> dict:
    return json.loads(e.value.body)


def test_leases_are_served_in_discovery_and_openapi_v3(sandbox, kubeconfig, coordination):
    resources = coordination.get_api_resources()
    lease_rt = next(r for r in resources.resources if r.name == "leases")
    assert resources.group_version == "coordination.k8s.io/v1" and lease_rt.namespaced and lease_rt.kind == "Lease"
    assert {"create", "delete", "get", "list", "patch", "update", "watch"} <= set(lease_rt.verbs)
    paths = json.loads(kubectl(kubeconfig, "get", "--raw", "/openapi/v3").stdout)["paths"]
    doc = json.loads(
        kubectl(kubeconfig, "get", "--raw", paths["apis/coordination.k8s.io/v1"]["serverRelativeURL"]).stdout
    )
    item = doc["paths"]["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"]
    assert item["put"]["x-kubernetes-group-version-kind"] == {
        "group": "coordination.k8s.io",
        "version": "v1",
        "kind": "Lease",
    }
    assert any(p["name"] == "fieldValidation" for p in item["patch"]["parameters"])


def test_create_conflicts_updates_and_deletes_like_kube_apiserver(sandbox, coordination):
    created = coordination.create_namespaced_lease(NS, lease("l1"))
    assert created.spec.holder_identity == "me" and created.metadata.resource_version
    assert created.spec.renew_time.microsecond == 250000 and created.spec.lease_duration_seconds == 60

    with pytest.raises(client.ApiException) as e:
        coordination.create_namespaced_lease(NS, lease("l1", "other"))
    assert e.value.status == 409
    assert status_of(e)["reason"] == "AlreadyExists"
    assert status_of(e)["message"] == 'leases.coordination.k8s.io "l1" already exists'

    # PUT with the resourceVersion read: accepted; with a stale one: 409 Conflict, the apiserver's message.
    body = lease("l1", "second")
    body["metadata"]["resourceVersion"] = created.metadata.resource_version
    updated = coordination.replace_namespaced_lease("l1", NS, body)
    assert updated.spec.holder_identity == "second"
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    body["spec"]["holderIdentity"] = "third"  # still carries the first resourceVersion
    with pytest.raises(client.ApiException) as e:
        coordination.replace_namespaced_lease("l1", NS, body)
    assert e.value.status == 409 and status_of(e)["reason"] == "Conflict"
    assert status_of(e)["message"] == (
        'Operation cannot be fulfilled on leases.coordination.k8s.io "l1": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    assert status_of(e)["details"] == {"name": "l1", "group": "coordination.k8s.io", "kind": "leases"}

    # The Lease strategy refuses unconditional updates (AllowUnconditionalUpdate is false).
    del body["metadata"]["resourceVersion"]
    with pytest.raises(client.ApiException) as e:
        coordination.replace_namespaced_lease("l1", NS, body)
    assert e.value.status == 422
    assert "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update" in status_of(e)["message"]

    with pytest.raises(client.ApiException) as e:
        coordination.read_namespaced_lease("nope", NS)
    assert e.value.status == 404 and status_of(e)["message"] == 'leases.coordination.k8s.io "nope" not found'

    stale = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(resource_version=created.metadata.resource_version)
    )
    with pytest.raises(client.ApiException) as e:
        coordination.delete_namespaced_lease("l1", NS, body=stale)
    assert e.value.status == 409 and "Precondition failed: ResourceVersion in precondition" in status_of(e)["message"]
    current = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(resource_version=updated.metadata.resource_version)
    )
    coordination.delete_namespaced_lease("l1", NS, body=current)
    with pytest.raises(client.ApiException) as e:
        coordination.read_namespaced_lease("l1", NS)
    assert e.value.status == 404


def test_micro_times_need_six_fractional_digits_and_come_back_in_utc(sandbox, kubeconfig, coordination):
    with Kube(kubeconfig) as kube, pytest.raises(PermanentError) as e:
        kube.create_lease(
            NS, {**lease("t1", renewTime="2026-01-02T03:04:05Z"), "metadata": {"name": "t1", "namespace": NS}}
        )
    assert "HTTP 400" in str(e.value) and 'cannot parse \\"Z\\" as \\".000000\\"' in str(e.value), str(e.value)
    # The client's own models drop a zero fraction (datetime.isoformat): refused, as kube-apiserver refuses it.
    with pytest.raises(client.ApiException) as api_error:
        coordination.create_namespaced_lease(NS, lease("t0", renewTime="2026-01-02T03:04:05.000000Z"))
    assert api_error.value.status == 400 and 'cannot parse "+00:00" as ".000000"' in status_of(api_error)["message"]
    made = coordination.create_namespaced_lease(NS, lease("t2", renewTime="2026-01-02T04:04:05.123456+01:00"))
    raw = kubectl(kubeconfig, "get", "--raw", f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/t2").stdout
    assert json.loads(raw)["spec"]["renewTime"] == "2026-01-02T03:04:05.123456Z"
    assert made.spec.renew_time.microsecond == 123456
    with pytest.raises(client.ApiException) as api_error:
        coordination.create_namespaced_lease(NS, lease("t3", leaseDurationSeconds=0))
    assert api_error.value.status == 422
    assert "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0" in status_of(api_error)["message"]
    with pytest.raises(client.ApiException) as api_error:
        coordination.create_namespaced_lease("no-such-namespace", lease("t4"))
    assert api_error.value.status == 404


def test_the_kube_adapter_maps_409_and_404_to_types(sandbox, kubeconfig):
    with Kube(kubeconfig) as kube:
        assert kube.get_lease(NS, "a") is None
        made = kube.create_lease(NS, {**lease("a"), "metadata": {"name": "a", "namespace": NS}})
        with pytest.raises(Conflict) as e:
            kube.create_lease(NS, {**lease("a"), "metadata": {"name": "a", "namespace": NS}})
        assert e.value.reason == "AlreadyExists"
        renewed = kube.patch_lease(
            NS, "a", made["metadata"]["resourceVersion"], {"renewTime": "2026-01-02T03:04:06.000000Z"}
        )
        assert renewed is not None and renewed["spec"]["renewTime"].startswith("2026-01-02T03:04:06")
        with pytest.raises(Conflict) as e:  # the resourceVersion we read is no longer the Lease's
            kube.patch_lease(NS, "a", made["metadata"]["resourceVersion"], {"renewTime": "2026-01-02T03:04:07.000000Z"})
        assert e.value.reason == "Conflict"
        with pytest.raises(Conflict):
            kube.replace_lease(NS, {**made, "spec": {**made["spec"], "holderIdentity": "x"}})
        with pytest.raises(Conflict):
            kube.delete_lease(NS, "a", resource_version=made["metadata"]["resourceVersion"])
        assert kube.delete_lease(NS, "a", resource_version=renewed["metadata"]["resourceVersion"]) is True
        assert kube.delete_lease(NS, "a") is False
        # A patch never re-creates a deleted Lease (a PUT would: Leases allow create-on-update).
        assert (
            kube.patch_lease(
                NS, "a", renewed["metadata"]["resourceVersion"], {"renewTime": "2026-01-02T03:04:08.000000Z"}
            )
            is None
        )
        assert kube.get_lease(NS, "a") is None


def test_kubectl_gets_describes_and_deletes_leases(sandbox, kubeconfig, coordination):
    coordination.create_namespaced_lease(
        NS, lease("eks-cilium-lock", "install-stack/brave-fox (1234) on host-a pid 42")
    )
    table = kubectl(kubeconfig, "get", "lease", "-n", NS).stdout
    assert table.split("\n")[0].split() == ["NAME", "HOLDER", "AGE"], table
    assert "eks-cilium-lock" in table and "install-stack/brave-fox (1234) on host-a pid 42" in table
    as_json = json.loads(kubectl(kubeconfig, "get", "lease", "eks-cilium-lock", "-n", NS, "-o", "json").stdout)
    assert as_json["kind"] == "Lease" and as_json["spec"]["leaseDurationSeconds"] == 60
    kubectl(kubeconfig, "annotate", "lease", "eks-cilium-lock", "-n", NS, "note=kept")
    kubectl(kubeconfig, "delete", "lease", "eks-cilium-lock", "-n", NS)
    missing = kubectl(kubeconfig, "get", "lease", "eks-cilium-lock", "-n", NS, check=False)
    assert missing.returncode != 0 and 'leases.coordination.k8s.io "eks-cilium-lock" not found' in missing.stderr
