"""What a release renders (pure): the objects of `helm get manifest` (and `helm get hooks`) as typed values, the
replicas a workload is expected to run, and the verdict for a workload that a deployed release does not have.

Expectations come from here, never from the live object: a Deployment scaled to 0 by hand asks for 0 replicas and
has 0 available, which `kubectl rollout status` calls rolled out; the release still renders 1."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from tasks.names import DEPLOYED
from tasks.readiness import Verdict

REPLICATED_KINDS = ("Deployment", "StatefulSet", "ReplicaSet")
WORKLOAD_KINDS = ("DaemonSet", "Deployment", "StatefulSet", "Job", "CronJob")
# Kinds without a namespace that charts like Cilium's and Tetragon's render (the manifest alone cannot tell).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PriorityClass",
        "StorageClass",
        "PersistentVolume",
        "IngressClass",
        "RuntimeClass",
        "CSIDriver",
        "APIService",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "CiliumClusterwideNetworkPolicy",
        "CiliumClusterwideEnvoyConfig",
        "CiliumLoadBalancerIPPool",
        "CiliumNodeConfig",
        "CiliumBGPClusterConfig",
        "CiliumBGPPeerConfig",
        "CiliumBGPAdvertisement",
        "CiliumCIDRGroup",
        "TracingPolicy",
    }
)


@dataclass(frozen=True)
class RenderedObject:
    kind: str
    name: str
    namespace: str  # "" for cluster-scoped kinds
    replicas: int | None = None  # spec.replicas as rendered (1 when absent) for replicated kinds, else None
    hook: bool = False  # rendered as a helm hook (`helm get hooks`), created only while installing or upgrading
    # The document as rendered (what object drift compares with the live object); not part of equality.
    body: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion") or "")

    @property
    def ref(self) -> str:
        return f"{self.kind} {self.path}"

    @property
    def path(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True)
class RenderedRelease:
    """One release as helm recorded it: its status and the objects its manifest and hooks render."""

    name: str
    namespace: str
    status: str | None
    revision: int | None
    objects: tuple[RenderedObject, ...]

    def find(self, kind: str, namespace: str, name: str) -> RenderedObject | None:
        return next((o for o in self.objects if (o.kind, o.namespace, o.name) == (kind, namespace, name)), None)

    def expected_replicas(self, kind: str, namespace: str, name: str) -> int | None:
        found = self.find(kind, namespace, name)
        return None if found is None else found.replicas

    def listing(self) -> list[str]:
        """One line per kind, workloads first: `Deployment: kube-system/cilium-operator, kube-system/hubble-relay`."""
        by_kind: dict[str, list[str]] = {}
        for o in self.objects:
            by_kind.setdefault(o.kind + (" (hook)" if o.hook else ""), []).append(o.path)
        order = sorted(by_kind, key=lambda k: (k.split(" ")[0] not in WORKLOAD_KINDS, k))
        return [f"{k}: {', '.join(sorted(by_kind[k]))}" for k in order]


def parse_objects(text: str, default_namespace: str, *, hook: bool = False) -> list[RenderedObject]:
    """The objects of a multi-document manifest; those without a namespace land in the release's namespace."""
    out: list[RenderedObject] = []
    for doc in yaml.safe_load_all(text or ""):
        if not isinstance(doc, dict):
            continue
        docs = (doc.get("items") or []) if str(doc.get("kind", "")).endswith("List") else [doc]
        for d in docs:
            if not isinstance(d, dict) or not d.get("kind"):
                continue
            meta = d.get("metadata") or {}
            if not meta.get("name"):
                continue
            kind = str(d["kind"])
            replicas = None
            if kind in REPLICATED_KINDS:
                rendered = (d.get("spec") or {}).get("replicas")
                replicas = 1 if rendered is None else int(rendered)  # the API server's default
            namespace = "" if kind in CLUSTER_SCOPED_KINDS else str(meta.get("namespace") or default_namespace)
            out.append(RenderedObject(kind, str(meta["name"]), namespace, replicas, hook, d))
    return out


def rendered_release(name: str, namespace: str, metadata: dict[str, Any], manifest: str, hooks: str) -> RenderedRelease:
    revision = metadata.get("revision")
    objects = parse_objects(manifest, namespace) + parse_objects(hooks, namespace, hook=True)
    return RenderedRelease(
        name, namespace, metadata.get("status"), int(revision) if revision is not None else None, tuple(objects)
    )


def absent_workload(kind: str, namespace: str, name: str, release: RenderedRelease) -> Verdict | None:
    """The verdict for a workload that does not exist while `release` is deployed; None while waiting can still help
    (the release is not deployed yet, or the object is a hook helm creates during an install or upgrade)."""
    if release.status != DEPLOYED:
        return None
    found = release.find(kind, namespace, name)
    if found is not None and found.hook:
        return None
    where = f"release {release.name} is deployed (revision {release.revision})"
    if found is not None:
        why = (
            f"does not exist although {where} and renders it: it was deleted outside helm; "
            "`helm upgrade` (a re-run of the install) recreates it"
        )
    else:
        same_kind = sorted(o.name for o in release.objects if o.kind == kind and o.namespace == namespace)
        guess = difflib.get_close_matches(name, same_kind, n=1)
        hint = f"; did you mean {guess[0]}?" if guess else ""
        renders = f"its {kind}s in {namespace}: {', '.join(same_kind)}" if same_kind else f"no {kind} in {namespace}"
        why = (
            f"does not exist although {where}: the release renders no {kind} {namespace}/{name} "
            f"({renders}){hint} - fix the workload's name in the stack"
        )
    return Verdict(False, why, failed=True, details=["the release renders:", *release.listing()])
