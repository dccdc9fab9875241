"""Kubernetes adapter, the generic object API: any kind by its apiVersion (LIST per kind and namespace, server-side
apply), for the objects a chart renders that the typed client APIs do not cover. Mixed into `Kube`."""

from __future__ import annotations

from typing import Any, cast

from tasks.adapters.kube_calls import TIMEOUT, _call
from tasks.errors import PermanentError

# The resource (plural) of the kinds the charts render, so reading them needs no discovery request; any other kind is
# looked up once per process in the API server's discovery document of its group version.
KNOWN_RESOURCES: dict[tuple[str, str], tuple[str, bool]] = {
    ("", "ConfigMap"): ("configmaps", True),
    ("", "Secret"): ("secrets", True),
    ("", "Service"): ("services", True),
    ("", "ServiceAccount"): ("serviceaccounts", True),
    ("", "Namespace"): ("namespaces", False),
    ("apps", "DaemonSet"): ("daemonsets", True),
    ("apps", "Deployment"): ("deployments", True),
    ("apps", "StatefulSet"): ("statefulsets", True),
    ("batch", "Job"): ("jobs", True),
    ("batch", "CronJob"): ("cronjobs", True),
    ("rbac.authorization.k8s.io", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io", "RoleBinding"): ("rolebindings", True),
    ("rbac.authorization.k8s.io", "ClusterRole"): ("clusterroles", False),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): ("clusterrolebindings", False),
    ("policy", "PodDisruptionBudget"): ("poddisruptionbudgets", True),
    ("monitoring.coreos.com", "ServiceMonitor"): ("servicemonitors", True),
    ("autoscaling", "HorizontalPodAutoscaler"): ("horizontalpodautoscalers", True),
}


APPLY_PATCH = "application/apply-patch+yaml"


def api_path(api_version: str) -> str:
    """The path prefix of a group version: /api/v1 for the core group, /apis/GROUP/VERSION for the others."""
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


class ObjectsApi:
    """Needs `api` (the client's ApiClient) and `_resources` (the discovery cache) from the class it is mixed into."""

    api: Any
    _resources: dict[tuple[str, str], tuple[str, bool] | None]

    def _raw(
        self,
        what: str,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        """A request on an API path (for kinds the typed APIs do not cover), the answer as JSON; None on 404."""

        def request() -> Any:
            serialized = self.api.param_serialize(
                method,
                path,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
            )
            response = self.api.call_api(*serialized, _request_timeout=TIMEOUT)
            response.read()
            return self.api.response_deserialize(response, {"200": "object", "201": "object"}).data

        # A missing object is an answer for a read; for a write (an apply) it is an error.
        return _call(what, request, missing_ok=method == "GET")

    def resource_of(self, api_version: str, kind: str) -> tuple[str, bool] | None:
        """(plural, namespaced) of a kind; None when the API server does not serve it (its CRD is missing)."""
        group = api_version.rpartition("/")[0]
        known = KNOWN_RESOURCES.get((group, kind))
        if known is not None:
            return known
        key = (api_version, kind)
        if key not in self._resources:
            doc = self._raw(f"discover the resources of {api_version}", "GET", api_path(api_version)) or {}
            found = next(
                (r for r in doc.get("resources") or [] if r.get("kind") == kind and "/" not in r["name"]), None
            )
            self._resources[key] = None if found is None else (str(found["name"]), bool(found.get("namespaced")))
        return self._resources[key]

    def list_objects(
        self, api_version: str, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]] | None:
        """Every object of a kind in a namespace ("" for cluster-scoped kinds) with one LIST; None when the kind is
        not served. Each item carries its apiVersion and kind (a LIST's items do not)."""
        resource = self.resource_of(api_version, kind)
        if resource is None:
            return None
        plural, namespaced = resource
        base = api_path(api_version)
        path = f"{base}/namespaces/{namespace}/{plural}" if namespaced and namespace else f"{base}/{plural}"
        query = [("labelSelector", label_selector)] if label_selector else []
        where = f" in {namespace}" if namespaced and namespace else ""
        res = self._raw(f"list {plural}{where}", "GET", path, query=query)
        if res is None:
            return None
        return [{"apiVersion": api_version, "kind": kind, **item} for item in res.get("items") or []]

    def apply(self, obj: dict[str, Any], manager: str, *, force: bool = True) -> dict[str, Any]:
        """Server-side apply of a whole object as `manager`; `force` takes over fields another manager (a `kubectl
        edit`, `kubectl scale`) owns, which is what a repair means."""
        kind, api_version = str(obj["kind"]), str(obj["apiVersion"])
        resource = self.resource_of(api_version, kind)
        meta = obj.get("metadata") or {}
        name, namespace = str(meta["name"]), str(meta.get("namespace") or "")
        if resource is None:
            raise PermanentError(
                f"apply {kind} {namespace}/{name}: the API server does not serve {kind} ({api_version})",
                hint="install the CustomResourceDefinition first",
            )
        plural, namespaced = resource
        base = api_path(api_version)
        path = f"{base}/namespaces/{namespace}/{plural}/{name}" if namespaced else f"{base}/{plural}/{name}"
        query = [("fieldManager", manager), ("force", "true" if force else "false")]
        res = self._raw(
            f"apply {kind} {namespace}/{name}", "PATCH", path, query=query, body=obj, content_type=APPLY_PATCH
        )
        return cast(dict[str, Any], res or {})
