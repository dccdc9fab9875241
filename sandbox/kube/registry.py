"""Resource types the emulator serves: built-in kinds, CRD-registered kinds, discovery and OpenAPI v3 documents."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

SERVER_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.5-eks-sandbox",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}
ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class ResourceType:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: list[str] = field(default_factory=list)
    subresources: list[str] = field(default_factory=list)
    verbs: list[str] = field(default_factory=lambda: list(ALL_VERBS))
    singular: str = ""
    categories: list[str] = field(default_factory=list)
    crd: bool = False
    # For CRDs: the scale subresource paths.
    scale: dict[str, str] | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)


def _rt(
    group: str,
    version: str,
    kind: str,
    plural: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    sub: tuple[str, ...] = (),
    verbs: list[str] | None = None,
    cats: tuple[str, ...] = (),
) -> ResourceType:
    return ResourceType(
        group,
        version,
        kind,
        plural,
        namespaced,
        list(short),
        list(sub),
        verbs if verbs is not None else list(ALL_VERBS),
        kind.lower(),
        list(cats),
    )


BUILTIN: list[ResourceType] = [
    _rt(
        "",
        "v1",
        "Namespace",
        "namespaces",
        False,
        ("ns",),
        ("status", "finalize"),
        ["create", "delete", "get", "list", "patch", "update", "watch"],
    ),
    _rt("", "v1", "Node", "nodes", False, ("no",), ("status",)),
    _rt("", "v1", "Pod", "pods", True, ("po",), ("status", "log", "eviction", "binding"), cats=("all",)),
    _rt("", "v1", "Service", "services", True, ("svc",), ("status",), cats=("all",)),
    _rt("", "v1", "Endpoints", "endpoints", True, ("ep",)),
    _rt("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    _rt("", "v1", "Secret", "secrets", True),
    _rt("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",), ("token",)),
    _rt("", "v1", "Event", "events", True, ("ev",)),
    _rt("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",), ("status",)),
    _rt("", "v1", "ResourceQuota", "resourcequotas", True, ("quota",), ("status",)),
    _rt("", "v1", "LimitRange", "limitranges", True, ("limits",)),
    _rt("apps", "v1", "Deployment", "deployments", True, ("deploy",), ("status", "scale"), cats=("all",)),
    _rt("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), ("status",), cats=("all",)),
    _rt("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), ("status", "scale"), cats=("all",)),
    _rt("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), ("status", "scale"), cats=("all",)),
    _rt("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    _rt("batch", "v1", "Job", "jobs", True, (), ("status",), cats=("all",)),
    _rt("batch", "v1", "CronJob", "cronjobs", True, ("cj",), ("status",), cats=("all",)),
    _rt("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",), ("status",)),
    _rt("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",), ("status",)),
    _rt("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _rt("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _rt("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    _rt("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    _rt("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
    _rt("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",), ("status",)),
    _rt("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    _rt("coordination.k8s.io", "v1", "Lease", "leases", True),
    _rt("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, ("pc",)),
    _rt("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",)),
    _rt(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        False,
        ("crd", "crds"),
        ("status",),
    ),
    _rt("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", False),
    _rt(
        "admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", False
    ),
    _rt("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False, verbs=["create"]),
    _rt("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", False, verbs=["create"]),
    _rt("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", False, verbs=["create"]),
    _rt("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", False, verbs=["create"]),
]
PREFERRED_GROUP_ORDER = [
    "",
    "apps",
    "batch",
    "autoscaling",
    "policy",
    "rbac.authorization.k8s.io",
    "networking.k8s.io",
    "discovery.k8s.io",
    "coordination.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "apiextensions.k8s.io",
    "admissionregistration.k8s.io",
    "authorization.k8s.io",
    "authentication.k8s.io",
]


class Registry:
    """Which resources exist; CRDs add and remove entries at run time."""

    def __init__(self) -> None:
        self.types: list[ResourceType] = list(BUILTIN)
        self.generation = 0

    def by_plural(self, group: str, version: str, plural: str) -> ResourceType | None:
        for t in self.types:
            if t.group == group and t.version == version and t.plural == plural:
                return t
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for t in self.types:
            if t.group == group and t.version == version and t.kind == kind:
                return t
        return None

    def group_versions(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for t in self.types:
            if t.version not in out.setdefault(t.group, []):
                out[t.group].append(t.version)
        return out

    def register_crd(self, crd: dict[str, Any]) -> list[ResourceType]:
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        group = spec.get("group", "")
        self.unregister_crd(group, names.get("plural", ""))
        added = []
        for v in spec.get("versions", []) or []:
            if not v.get("served", True):
                continue
            sub = v.get("subresources") or {}
            t = ResourceType(
                group,
                v["name"],
                names.get("kind", ""),
                names.get("plural", ""),
                spec.get("scope", "Namespaced") == "Namespaced",
                list(names.get("shortNames") or []),
                [s for s in ("status", "scale") if s in sub],
                list(ALL_VERBS),
                names.get("singular", names.get("kind", "").lower()),
                list(names.get("categories") or []),
                crd=True,
                scale=sub.get("scale"),
            )
            self.types.append(t)
            added.append(t)
        self.generation += 1
        return added

    def unregister_crd(self, group: str, plural: str) -> None:
        before = len(self.types)
        self.types = [t for t in self.types if not (t.crd and t.group == group and t.plural == plural)]
        if len(self.types) != before:
            self.generation += 1

    # ---- discovery ---------------------------------------------------------------------------------
    def api_versions(self) -> dict[str, Any]:
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:443"}],
        }

    def _groups_sorted(self) -> list[str]:
        groups = [g for g in self.group_versions() if g]
        return sorted(groups, key=lambda g: (PREFERRED_GROUP_ORDER.index(g) if g in PREFERRED_GROUP_ORDER else 99, g))

    def api_group_list(self) -> dict[str, Any]:
        gvs = self.group_versions()
        groups = []
        for g in self._groups_sorted():
            versions = [{"groupVersion": f"{g}/{v}", "version": v} for v in gvs[g]]
            groups.append({"name": g, "versions": versions, "preferredVersion": versions[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        types = [t for t in self.types if t.group == group and t.version == version]
        if not types:
            return None
        resources = []
        for t in types:
            r: dict[str, Any] = {
                "name": t.plural,
                "singularName": t.singular,
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": t.verbs,
                "storageVersionHash": hashlib.sha1(f"{t.group}{t.kind}".encode()).hexdigest()[:12],
            }
            if t.short_names:
                r["shortNames"] = t.short_names
            if t.categories:
                r["categories"] = t.categories
            resources.append(r)
            for s in t.subresources:
                kind = "Scale" if s == "scale" else t.kind
                sub: dict[str, Any] = {
                    "name": f"{t.plural}/{s}",
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": kind,
                    "verbs": ["get", "patch", "update"],
                }
                if s == "scale":
                    sub["group"], sub["version"] = "autoscaling", "v1"
                resources.append(sub)
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    # ---- OpenAPI v3 ----------------------------------------------------------------------------------
    def openapi_index(self) -> dict[str, Any]:
        paths = {}
        for g, versions in self.group_versions().items():
            for v in versions:
                p = f"apis/{g}/{v}" if g else "api/v1"
                doc = self.openapi_doc(g, v)
                digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
                paths[p] = {"serverRelativeURL": f"/openapi/v3/{p}?hash={digest}"}
        return {"paths": paths}

    def openapi_doc(self, group: str, version: str) -> dict[str, Any]:
        """Per group-version document: every kind has POST/PUT/PATCH operations with the GVK extension and
        the fieldValidation query parameter, which is what client-go's query-param verifier looks for."""
        paths: dict[str, Any] = {}
        schemas: dict[str, Any] = {}
        for t in self.types:
            if t.group == group and t.version == version:
                schema_name = (
                    f"{'.'.join(reversed(group.split('.'))) if group else 'io.k8s.api.core'}.{version}.{t.kind}"
                )
                schemas[schema_name] = _openapi_schema(t)
                paths.update(_openapi_paths(t, {"$ref": f"#/components/schemas/{schema_name}"}))
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
            "paths": paths,
            "components": {"schemas": schemas},
        }


_FIELD_VALIDATION = {
    "name": "fieldValidation",
    "in": "query",
    "schema": {"type": "string", "uniqueItems": True},
    "description": "fieldValidation instructs the server on how to handle objects with unknown or duplicate fields.",
}


def _gvk(t: ResourceType) -> dict[str, str]:
    return {"group": t.group, "version": t.version, "kind": t.kind}


def _openapi_schema(t: ResourceType) -> dict[str, Any]:
    return {
        "type": "object",
        "x-kubernetes-group-version-kind": [_gvk(t)],
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}},
    }


def _openapi_paths(t: ResourceType, ref: dict[str, str]) -> dict[str, Any]:
    """The collection, item and status/scale paths of one kind."""
    gvk = _gvk(t)

    def op(action: str) -> dict[str, Any]:
        return {
            "operationId": f"{action}{t.kind}",
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [_FIELD_VALIDATION],
            "requestBody": {"content": {"application/json": {"schema": ref}}},
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}},
        }

    def read(operation: str, action: str) -> dict[str, Any]:
        return {
            "operationId": f"{operation}{t.kind}",
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        }

    prefix = f"/apis/{t.group}/{t.version}" if t.group else "/api/v1"
    collection = f"{prefix}{'/namespaces/{namespace}' if t.namespaced else ''}/{t.plural}"
    item = f"{collection}/{{name}}"
    paths: dict[str, Any] = {}
    if "create" in t.verbs:
        paths[collection] = {"post": op("post")}
    if "get" in t.verbs:
        paths.setdefault(collection, {})["get"] = read("list", "list")
        paths[item] = {
            "get": read("read", "get"),
            "put": op("put"),
            "patch": op("patch"),
            "delete": read("delete", "delete"),
        }
    for s in t.subresources:
        if s in ("status", "scale"):
            paths[f"{item}/{s}"] = {"put": op("put"), "patch": op("patch")}
    return paths
