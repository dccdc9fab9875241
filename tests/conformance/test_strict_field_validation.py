"""Strict field validation as kube-apiserver does it, driven by real kubectl and the kubernetes client."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.support.commands import kubectl

BAD_CM = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  namespace: default
data:
  a: b
foo: bar
"""


@pytest.fixture
def kubeconfig(sandbox):
    return str(sandbox.clusters["isovalent-demo"].kubeconfig)


def test_kubectl_apply_rejects_an_unknown_field_unless_validation_is_off(kubeconfig, tmp_path):
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(BAD_CM.format(name="strict"))
    proc = kubectl(kubeconfig, "apply", "-f", str(manifest), check=False)
    assert proc.returncode != 0
    assert 'strict decoding error: unknown field "foo"' in proc.stderr
    assert "strict" not in kubectl(kubeconfig, "get", "cm", "-n", "default", "-o", "name").stdout
    kubectl(kubeconfig, "apply", "--validate=false", "-f", str(manifest))
    assert "configmap/strict" in kubectl(kubeconfig, "get", "cm", "-n", "default", "-o", "name").stdout


def test_client_create_with_strict_field_validation_is_a_bad_request(kubeconfig):
    api = client.CoreV1Api(config.new_client_from_config(kubeconfig))
    # This client validates its arguments with pydantic and refuses an unknown field itself; the undecorated
    # function sends the body as it is, so the server is the one that answers.
    create = client.CoreV1Api.create_namespaced_config_map.raw_function
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "colour": "red"}, "data": {}}
    with pytest.raises(ApiException) as err:
        create(api, "default", body, field_validation="Strict")
    assert err.value.status == 400
    status = json.loads(err.value.body)
    assert status["reason"] == "BadRequest"
    assert status["message"] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'unknown field "metadata.colour"'
    )
    create(api, "default", body, field_validation="Ignore")
    assert api.read_namespaced_config_map("c", "default").metadata.name == "c"
