"""Strict field validation (the `fieldValidation` query parameter), conservatively: only the top-level keys of the
built-in kinds the emulator serves and the keys of `metadata` are checked; custom resources and kinds without an
allow-list are never rejected."""

from __future__ import annotations

from typing import Any

META_KEYS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)
_BASE = frozenset({"apiVersion", "kind", "metadata"})
_WORKLOAD = _BASE | {"spec", "status"}
TOP_LEVEL: dict[str, frozenset[str]] = {
    **{
        k: _WORKLOAD
        for k in (
            "Namespace",
            "Node",
            "Pod",
            "Service",
            "PersistentVolume",
            "PersistentVolumeClaim",
            "ReplicationController",
            "ResourceQuota",
            "LimitRange",
            "Deployment",
            "DaemonSet",
            "StatefulSet",
            "ReplicaSet",
            "Job",
            "CronJob",
            "Ingress",
            "IngressClass",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler",
            "Lease",
            "CustomResourceDefinition",
            "APIService",
        )
    },
    "ConfigMap": _BASE | {"data", "binaryData", "immutable"},
    "Secret": _BASE | {"data", "stringData", "type", "immutable"},
    "ServiceAccount": _BASE | {"secrets", "imagePullSecrets", "automountServiceAccountToken"},
    "Role": _BASE | {"rules"},
    "ClusterRole": _BASE | {"rules", "aggregationRule"},
    "RoleBinding": _BASE | {"roleRef", "subjects"},
    "ClusterRoleBinding": _BASE | {"roleRef", "subjects"},
    "MutatingWebhookConfiguration": _BASE | {"webhooks"},
    "ValidatingWebhookConfiguration": _BASE | {"webhooks"},
    "PriorityClass": _BASE | {"value", "globalDefault", "description", "preemptionPolicy"},
    "StorageClass": _BASE
    | {"provisioner", "parameters", "reclaimPolicy", "mountOptions", "allowVolumeExpansion", "volumeBindingMode"}
    | {"allowedTopologies"},
    "Endpoints": _BASE | {"subsets"},
    "EndpointSlice": _BASE | {"addressType", "endpoints", "ports"},
    "Event": _BASE
    | {"involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp", "count", "type"}
    | {"eventTime", "series", "action", "related", "reportingComponent", "reportingInstance"},
}


def unknown_fields(kind: str, body: Any, crd: bool = False) -> list[str]:
    """The paths of the fields `body` has that the kind's schema does not declare, in the order they appear."""
    if crd or not isinstance(body, dict) or kind not in TOP_LEVEL:
        return []
    allowed = TOP_LEVEL[kind]
    found = [k for k in body if k not in allowed]
    meta = body.get("metadata")
    if isinstance(meta, dict):
        found += [f"metadata.{k}" for k in meta if k not in META_KEYS]
    return found


def decide(mode: str | None, kind: str, version: str, unknown: list[str]) -> tuple[str | None, list[str]]:
    """What the server does under `fieldValidation=mode`: (the BadRequest message or None, the warnings)."""
    if not unknown or mode not in ("Strict", "Warn"):
        return None, []
    if mode == "Strict":
        fields = ", ".join(f'unknown field "{p}"' for p in unknown)
        return f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding error: {fields}', []
    return None, [f'unknown field "{p}"' for p in unknown]
