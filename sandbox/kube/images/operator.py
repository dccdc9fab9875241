"""The operators: Cilium's (`quay.io/cilium/operator-*`) registers the cilium.io CRDs and creates a CiliumNode per
node; Tetragon's (`quay.io/cilium/tetragon-operator`) registers the TracingPolicy CRDs. As the real ones, they
register CRDs that are missing and leave existing ones alone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.kube.controllers.base import Context

CRD_API = "apiextensions.k8s.io/v1"
K_CRD = ("apiextensions.k8s.io", "customresourcedefinitions")
K_NODE = ("", "nodes")
PRESERVE = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}

# (group, kind, plural, short names, scope, versions): what the operators register.
CILIUM_CRDS: tuple[tuple[str, str, str, tuple[str, ...], str, tuple[str, ...]], ...] = (
    ("cilium.io", "CiliumNode", "ciliumnodes", ("cn", "ciliumn"), "Cluster", ("v2",)),
    ("cilium.io", "CiliumIdentity", "ciliumidentities", ("ciliumid",), "Cluster", ("v2",)),
    ("cilium.io", "CiliumEndpoint", "ciliumendpoints", ("cep", "ciliumep"), "Namespaced", ("v2",)),
    ("cilium.io", "CiliumNetworkPolicy", "ciliumnetworkpolicies", ("cnp", "ciliumnp"), "Namespaced", ("v2",)),
    (
        "cilium.io",
        "CiliumClusterwideNetworkPolicy",
        "ciliumclusterwidenetworkpolicies",
        ("ccnp",),
        "Cluster",
        ("v2",),
    ),
    ("cilium.io", "CiliumExternalWorkload", "ciliumexternalworkloads", ("cew",), "Cluster", ("v2",)),
    ("cilium.io", "CiliumLocalRedirectPolicy", "ciliumlocalredirectpolicies", ("clrp",), "Namespaced", ("v2",)),
    ("cilium.io", "CiliumEnvoyConfig", "ciliumenvoyconfigs", ("cec",), "Namespaced", ("v2",)),
    ("cilium.io", "CiliumClusterwideEnvoyConfig", "ciliumclusterwideenvoyconfigs", ("ccec",), "Cluster", ("v2",)),
    ("cilium.io", "CiliumNodeConfig", "ciliumnodeconfigs", (), "Namespaced", ("v2",)),
    ("cilium.io", "CiliumLoadBalancerIPPool", "ciliumloadbalancerippools", ("ippools",), "Cluster", ("v2",)),
    ("cilium.io", "CiliumCIDRGroup", "ciliumcidrgroups", ("ccg",), "Cluster", ("v2",)),
    (
        "cilium.io",
        "CiliumL2AnnouncementPolicy",
        "ciliuml2announcementpolicies",
        ("l2announcement",),
        "Cluster",
        ("v2alpha1",),
    ),
    ("cilium.io", "CiliumPodIPPool", "ciliumpodippools", ("cpip",), "Cluster", ("v2alpha1",)),
)
TETRAGON_CRDS: tuple[tuple[str, str, str, tuple[str, ...], str, tuple[str, ...]], ...] = (
    ("cilium.io", "TracingPolicy", "tracingpolicies", (), "Cluster", ("v1alpha1",)),
    ("cilium.io", "TracingPolicyNamespaced", "tracingpoliciesnamespaced", (), "Namespaced", ("v1alpha1",)),
    ("cilium.io", "PodInfo", "podinfo", (), "Namespaced", ("v1alpha1",)),
)


def crd_body(group: str, kind: str, plural: str, short: tuple[str, ...], scope: str, versions: tuple[str, ...]) -> Any:
    """A CustomResourceDefinition as the operators register it (schemas left open: the sandbox stores, not checks)."""
    return {
        "metadata": {"name": f"{plural}.{group}", "labels": {"io.cilium.k8s.crd.schema.version": "sandbox"}},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": list(short),
                "categories": ["cilium"],
            },
            "versions": [
                {"name": v, "served": True, "storage": i == 0, "schema": PRESERVE, "subresources": {"status": {}}}
                for i, v in enumerate(versions)
            ],
        },
    }


def register(ctx: Context, crds: tuple[tuple[str, str, str, tuple[str, ...], str, tuple[str, ...]], ...]) -> None:
    for spec in crds:
        group, plural = spec[0], spec[2]
        if ctx.store.get(K_CRD, "", f"{plural}.{group}") is None:
            ctx.objects.create_kind(CRD_API, "CustomResourceDefinition", crd_body(*spec))


def cilium(ctx: Context, pod: dict[str, Any], container: dict[str, Any]) -> None:
    register(ctx, CILIUM_CRDS)
    for node in ctx.store.list(K_NODE):
        name = node["metadata"]["name"]
        if ctx.store.get(("cilium.io", "ciliumnodes"), "", name) is None:
            ctx.objects.create_kind("cilium.io/v2", "CiliumNode", ciliumnode(node))


def ciliumnode(node: dict[str, Any]) -> dict[str, Any]:
    addresses = (node.get("status") or {}).get("addresses") or []
    return {
        "metadata": {
            "name": node["metadata"]["name"],
            "labels": dict(node["metadata"].get("labels") or {}),
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": node["metadata"]["name"], "uid": node["metadata"]["uid"]}
            ],
        },
        "spec": {
            "addresses": [
                {"type": a["type"], "ip": a.get("address")}
                for a in addresses
                if a.get("type") in ("InternalIP", "ExternalIP")
            ],
            "instance-id": node.get("spec", {}).get("providerID", "").rsplit("/", 1)[-1],
        },
    }


def tetragon(ctx: Context, pod: dict[str, Any], container: dict[str, Any]) -> None:
    register(ctx, TETRAGON_CRDS)
