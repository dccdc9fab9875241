"""The image behaviours (sandbox/kube/images) on the store with a manual clock: certgen's Secrets, the operators'
CRDs and CiliumNodes, the agent's taint, unknown images logged once."""

from __future__ import annotations

import base64
import datetime
import logging
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from sandbox.kube.controllers import Context, ManualClock
from sandbox.kube.controllers.kubelet import Kubelet
from sandbox.kube.images import Images, repository
from sandbox.kube.images.certgen import go_duration

NS = "kube-system"
CONFIG = """certs:
- name: hubble-server-certs
  namespace: kube-system
  commonName: "*.default.hubble-grpc.cilium.io"
  hosts: ["*.default.hubble-grpc.cilium.io"]
  usage: [signing, key encipherment, server auth, client auth]
  validity: 8760h
- name: hubble-relay-client-certs
  namespace: kube-system
  commonName: "*.hubble-relay.cilium.io"
  hosts: ["*.hubble-relay.cilium.io"]
  usage: [signing, key encipherment, client auth]
  validity: 48h
"""
CERTGEN = {
    "name": "certgen",
    "image": "quay.io/cilium/certgen:v0.2.4@sha256:de7b97b1d19a34b674d0c4bc1da4db999f04ae355923a9a994ac3a81e1a1b5ff",
    "command": ["/usr/bin/cilium-certgen"],
    "args": [
        "--ca-generate=true",
        "--ca-reuse-secret",
        "--ca-secret-namespace=kube-system",
        "--ca-secret-name=cilium-ca",
        "--ca-common-name=Cilium CA",
    ],
    "env": [{"name": "CILIUM_CERTGEN_CONFIG", "value": CONFIG}],
}


@pytest.fixture
def ctx() -> Context:
    return Context.fresh(clock=ManualClock())


def node(ctx: Context, name: str, taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    body = {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"providerID": f"aws:///us-east-1a/i-{name}", "taints": taints or []},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]},
    }
    return ctx.objects.create_kind("v1", "Node", body)


def pod(ctx: Context, name: str, *containers: dict[str, Any], node_name: str = "n1") -> dict[str, Any]:
    body = {"metadata": {"name": name}, "spec": {"nodeName": node_name, "containers": list(containers)}}
    return ctx.objects.create_kind("v1", "Pod", body, NS)


def cert(ctx: Context, name: str) -> x509.Certificate:
    secret = ctx.store.get(("", "secrets"), NS, name)
    assert secret is not None, name
    return x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))


def test_repository_drops_tag_and_digest_but_not_a_registry_port() -> None:
    assert repository(CERTGEN["image"]) == "quay.io/cilium/certgen"
    assert repository("localhost:5000/cilium/cilium") == "localhost:5000/cilium/cilium"
    assert go_duration("1h30m") == datetime.timedelta(minutes=90)


def test_certgen_writes_the_ca_and_the_configured_certificates_with_their_validity(ctx) -> None:
    Images(ctx).completed(pod(ctx, "hubble-generate-certs-x", CERTGEN))
    ca_secret = ctx.store.get(("", "secrets"), NS, "cilium-ca")
    assert ca_secret is not None and set(ca_secret["data"]) == {"ca.crt", "ca.key"}
    ca = x509.load_pem_x509_certificate(base64.b64decode(ca_secret["data"]["ca.crt"]))
    server, client = cert(ctx, "hubble-server-certs"), cert(ctx, "hubble-relay-client-certs")
    assert server.issuer == ca.subject and client.issuer == ca.subject
    assert server.not_valid_after_utc - server.not_valid_before_utc == datetime.timedelta(hours=8760)
    assert client.not_valid_after_utc - client.not_valid_before_utc == datetime.timedelta(hours=48)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["*.default.hubble-grpc.cilium.io"]
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ca.public_key().verify(server.signature, server.tbs_certificate_bytes, server.signature_algorithm_parameters)  # type: ignore[call-arg, union-attr, arg-type]
    secret = ctx.store.get(("", "secrets"), NS, "hubble-relay-client-certs")
    assert secret is not None and secret["type"] == "kubernetes.io/tls"


def test_certgen_reuses_the_ca_secret_on_a_second_run(ctx) -> None:
    images = Images(ctx)
    images.completed(pod(ctx, "a", CERTGEN))
    first = ctx.store.get(("", "secrets"), NS, "cilium-ca")
    images.completed(pod(ctx, "b", CERTGEN))
    assert ctx.store.get(("", "secrets"), NS, "cilium-ca") == first


def test_certgen_without_a_ca_to_use_writes_nothing(ctx) -> None:
    Images(ctx).completed(pod(ctx, "x", {"name": "c", "image": "quay.io/cilium/certgen:v0.2.4", "args": []}))
    assert ctx.store.list(("", "secrets"), NS) == []


def test_the_cilium_operator_registers_the_crds_and_a_ciliumnode_per_node(ctx) -> None:
    node(ctx, "n1")
    node(ctx, "n2")
    images = Images(ctx)
    images.running(pod(ctx, "op", {"name": "o", "image": "quay.io/cilium/operator-generic:v1.18.4"}))
    crds = {c["metadata"]["name"] for c in ctx.store.list(("apiextensions.k8s.io", "customresourcedefinitions"))}
    for plural in ("ciliumnodes", "ciliumidentities", "ciliumendpoints", "ciliumnetworkpolicies"):
        assert f"{plural}.cilium.io" in crds
    assert "ciliumclusterwidenetworkpolicies.cilium.io" in crds
    assert ctx.objects.registry.by_kind("cilium.io/v2", "CiliumNetworkPolicy") is not None
    assert {n["metadata"]["name"] for n in ctx.store.list(("cilium.io", "ciliumnodes"))} == {"n1", "n2"}
    node(ctx, "n3")
    images.running(pod(ctx, "op2", {"name": "o", "image": "quay.io/cilium/operator-generic:v1.18.4"}))
    assert len(ctx.store.list(("cilium.io", "ciliumnodes"))) == 3


def test_the_tetragon_operator_registers_the_tracingpolicy_crds(ctx) -> None:
    Images(ctx).running(pod(ctx, "t", {"name": "o", "image": "quay.io/cilium/tetragon-operator:v1.5.0"}))
    crds = {c["metadata"]["name"] for c in ctx.store.list(("apiextensions.k8s.io", "customresourcedefinitions"))}
    assert {"tracingpolicies.cilium.io", "tracingpoliciesnamespaced.cilium.io"} <= crds


def test_the_agent_lifts_its_nodes_agent_not_ready_taint_only(ctx) -> None:
    taints = [{"key": "node.cilium.io/agent-not-ready", "effect": "NoExecute"}, {"key": "x", "effect": "NoSchedule"}]
    node(ctx, "n1", taints)
    node(ctx, "n2", taints)
    Images(ctx).running(pod(ctx, "cilium-x", {"name": "agent", "image": "quay.io/cilium/cilium:v1.18.4"}))
    n1, n2 = (ctx.store.get(("", "nodes"), "", n) for n in ("n1", "n2"))
    assert n1 is not None and [t["key"] for t in n1["spec"]["taints"]] == ["x"]
    assert n2 is not None and len(n2["spec"]["taints"]) == 2


def test_an_unknown_image_just_runs_and_is_logged_once(ctx, caplog) -> None:
    images = Images(ctx)
    with caplog.at_level(logging.INFO, logger="sandbox.kube.images"):
        for name in ("a", "b"):
            images.running(pod(ctx, name, {"name": "c", "image": "example.com/mystery:1"}))
    assert [r.getMessage() for r in caplog.records].count(
        "image example.com/mystery has no simulated behaviour: its containers just run"
    ) == 1


def test_the_kubelet_runs_certgen_when_its_job_pod_completes(ctx) -> None:
    node_obj = node(ctx, "n1")
    node_obj["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    owner = [{"apiVersion": "batch/v1", "kind": "Job", "name": "certs", "uid": "job-uid", "controller": True}]
    body = {
        "metadata": {"name": "certs-x", "ownerReferences": owner},
        "spec": {"nodeName": "n1", "containers": [CERTGEN]},
    }
    ctx.objects.create_kind("v1", "Pod", body, NS)
    kubelet = Kubelet(ctx)
    kubelet.reconcile()
    kubelet.reconcile()
    live = ctx.store.get(("", "pods"), NS, "certs-x")
    assert live is not None and live["status"]["phase"] == "Succeeded"
    assert cert(ctx, "hubble-relay-client-certs")
