"""fieldValidation decisions: which fields are unknown, and what Strict, Warn and Ignore make of them."""

from __future__ import annotations

import pytest

from sandbox.kube.validation import decide, unknown_fields

CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "b"}}


@pytest.mark.parametrize(
    ("kind", "body", "crd", "want"),
    [
        ("ConfigMap", CM, False, []),
        ("ConfigMap", {**CM, "foo": 1}, False, ["foo"]),
        ("ConfigMap", {**CM, "foo": 1, "bar": 2}, False, ["foo", "bar"]),
        ("ConfigMap", {**CM, "metadata": {"name": "x", "colour": "red"}}, False, ["metadata.colour"]),
        ("Secret", {**CM, "stringData": {}, "type": "Opaque", "immutable": True}, False, []),
        ("Deployment", {**CM, "spec": {"anything": 1}, "status": {}}, False, ["data"]),
        ("ClusterRole", {"rules": [], "aggregationRule": {}}, False, []),
        ("RoleBinding", {"roleRef": {}, "subjects": []}, False, []),
        ("ServiceAccount", {"secrets": [], "imagePullSecrets": [], "automountServiceAccountToken": False}, False, []),
        ("MutatingWebhookConfiguration", {"webhooks": []}, False, []),
        ("StorageClass", {"provisioner": "p", "parameters": {}, "reclaimPolicy": "Delete"}, False, []),
        ("CiliumNode", {"spec": {}, "foo": 1}, True, []),
        ("NoListForThisKind", {"foo": 1}, False, []),
        ("ConfigMap", None, False, []),
    ],
)
def test_unknown_fields(kind, body, crd, want):
    assert unknown_fields(kind, body, crd) == want


@pytest.mark.parametrize(
    ("mode", "unknown", "want"),
    [
        (None, ["foo"], (None, [])),
        ("Ignore", ["foo"], (None, [])),
        ("Strict", [], (None, [])),
        ("Warn", [], (None, [])),
        ("Warn", ["foo", "metadata.x"], (None, ['unknown field "foo"', 'unknown field "metadata.x"'])),
        (
            "Strict",
            ["foo"],
            (
                'ConfigMap in version "v1" cannot be handled as a ConfigMap: '
                'strict decoding error: unknown field "foo"',
                [],
            ),
        ),
        (
            "Strict",
            ["foo", "bar"],
            (
                'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
                'unknown field "foo", unknown field "bar"',
                [],
            ),
        ),
    ],
)
def test_decide(mode, unknown, want):
    assert decide(mode, "ConfigMap", "v1", unknown) == want
