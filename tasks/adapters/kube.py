"""Kubernetes adapter: the official client, configured from a kubeconfig (the same file helm and kubectl use).

Objects are returned as plain dicts (API field names) so that the pure readiness and drift logic never sees
client classes. Errors become TransientError (429, 5xx, connection problems) or PermanentError (401, 403,
invalid requests); a 404 on a read is `None`; a 409 on a write that asked for it is `Conflict` (the object exists
already, or changed since it was read), so callers never look at message text.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client, config

from tasks.adapters.kube_calls import TIMEOUT, Conflict, _call

__all__ = ["Conflict", "Kube", "warm_up"]  # Conflict is part of this adapter's interface
from tasks.adapters.kube_objects import ObjectsApi

_API_CLASSES = (
    "CoreV1Api",
    "AppsV1Api",
    "BatchV1Api",
    "ApiextensionsV1Api",
    "AuthorizationV1Api",
    "CustomObjectsApi",
    "CoordinationV1Api",
)


LEASE_GROUP, LEASE_VERSION, LEASES = "coordination.k8s.io", "v1", "leases"


def warm_up() -> None:
    """Import the client's API modules in the background. kubernetes 37 loads them lazily and the first client of
    a process pays ~1.5 s of imports; a flow starts this while it waits for AWS, so its first cluster call doesn't."""
    threading.Thread(
        target=lambda: [getattr(client, name) for name in _API_CLASSES], name="kube-warm-up", daemon=True
    ).start()


_SHARED: dict[str, Kube] = {}
_SHARED_LOCK = threading.Lock()


@dataclass
class Kube(ObjectsApi):
    """A client bound to one kubeconfig file. `Kube.shared(path)` reuses one client (and its credential, which
    the client refreshes itself) across the tasks and sensor polls of a process."""

    kubeconfig: str
    persistent: bool = False

    @classmethod
    def shared(cls, kubeconfig: str) -> Kube:
        with _SHARED_LOCK:
            if kubeconfig not in _SHARED:
                _SHARED[kubeconfig] = cls(kubeconfig, persistent=True)
            return _SHARED[kubeconfig]

    @staticmethod
    def forget(kubeconfig: str) -> None:
        with _SHARED_LOCK:
            kube = _SHARED.pop(kubeconfig, None)
        if kube is not None:
            kube.api.close()

    def __post_init__(self) -> None:
        self._resources = {}
        new_client: Callable[..., Any] = config.new_client_from_config  # the kubernetes package has no types
        self.api = new_client(config_file=self.kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.ext = client.ApiextensionsV1Api(self.api)
        self.authz = client.AuthorizationV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.coordination = client.CoordinationV1Api(self.api)

    def close(self) -> None:
        if not self.persistent:
            self.api.close()

    def __enter__(self) -> Kube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _dict(self, obj: Any) -> dict[str, Any]:
        return cast(dict[str, Any], self.api.sanitize_for_serialization(obj))

    def _items(self, obj: Any) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._dict(obj)["items"])

    # ---- reads ---------------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        readers: dict[str, Callable[[], Any]] = {
            "DaemonSet": lambda: self.apps.read_namespaced_daemon_set(name, namespace, _request_timeout=TIMEOUT),
            "Deployment": lambda: self.apps.read_namespaced_deployment(name, namespace, _request_timeout=TIMEOUT),
            "StatefulSet": lambda: self.apps.read_namespaced_stateful_set(name, namespace, _request_timeout=TIMEOUT),
            "Job": lambda: self.batch.read_namespaced_job(name, namespace, _request_timeout=TIMEOUT),
            "CronJob": lambda: self.batch.read_namespaced_cron_job(name, namespace, _request_timeout=TIMEOUT),
            "ConfigMap": lambda: self.core.read_namespaced_config_map(name, namespace, _request_timeout=TIMEOUT),
            "Namespace": lambda: self.core.read_namespace(name, _request_timeout=TIMEOUT),
        }
        if kind not in readers:
            raise ValueError(f"no reader for kind {kind}")
        obj = _call(f"read {kind} {namespace}/{name}", readers[kind], missing_ok=True)
        return None if obj is None else self._dict(obj)

    def pod_get(self, namespace: str, pod: str, port: int, path: str) -> str | None:
        """GET http://POD:PORT/PATH through the API server's pod proxy (e.g. an agent's /metrics); None on 404."""
        return _call(
            f"read {path} of Pod {namespace}/{pod} port {port}",
            lambda: self.core.connect_get_namespaced_pod_proxy_with_path(
                f"{pod}:{port}", namespace, path, _request_timeout=TIMEOUT
            ),
            missing_ok=True,
        )

    def list_pods(self, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        sel = ",".join(f"{k}={v}" for k, v in selector.items())
        res = _call(
            f"list pods {sel} in {namespace}",
            lambda: self.core.list_namespaced_pod(namespace, label_selector=sel, _request_timeout=TIMEOUT),
        )
        return self._items(res)

    def list_nodes(self) -> list[dict[str, Any]]:
        res = _call("list nodes", lambda: self.core.list_node(_request_timeout=TIMEOUT))
        return self._items(res)

    def list_daemonsets(self, namespace: str) -> list[dict[str, Any]]:
        res = _call(
            f"list DaemonSets in {namespace}",
            lambda: self.apps.list_namespaced_daemon_set(namespace, _request_timeout=TIMEOUT),
        )
        return self._items(res)

    def list_events(
        self, namespace: str, involved_names: list[str] | None = None, limit: int = 10
    ) -> list[dict[str, Any]]:
        res = _call(
            f"list events in {namespace}", lambda: self.core.list_namespaced_event(namespace, _request_timeout=TIMEOUT)
        )
        items = self._items(res)
        if involved_names is not None:
            wanted = set(involved_names)
            items = [e for e in items if (e.get("involvedObject") or {}).get("name") in wanted]
        items.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return items[-limit:]

    def crd_exists(self, name: str) -> bool:
        return (
            _call(
                f"read CRD {name}",
                lambda: self.ext.read_custom_resource_definition(name, _request_timeout=TIMEOUT),
                missing_ok=True,
            )
            is not None
        )

    def list_custom(self, group: str, version: str, plural: str, namespace: str) -> list[dict[str, Any]] | None:
        """None when the resource type does not exist (CRD missing)."""
        res = _call(
            f"list {plural}.{group} in {namespace}",
            lambda: self.custom.list_namespaced_custom_object(
                group, version, namespace, plural, _request_timeout=TIMEOUT
            ),
            missing_ok=True,
        )
        return None if not isinstance(res, dict) else list(res.get("items", []))

    def helm_release_secrets(self, namespace: str, release: str) -> list[dict[str, Any]]:
        """helm's release records (labels carry status and version); cheaper than running helm in a sensor."""
        res = _call(
            f"list helm records of {release}",
            lambda: self.core.list_namespaced_secret(
                namespace, label_selector=f"owner=helm,name={release}", _request_timeout=TIMEOUT
            ),
        )
        return [
            {"metadata": {"name": s["metadata"]["name"], "labels": s["metadata"].get("labels") or {}}}
            for s in self._dict(res)["items"]
        ]

    def can_i(self, verb: str, resource: str, group: str = "*", namespace: str | None = None) -> tuple[bool, str]:
        body = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb, resource=resource, group=group, namespace=namespace
                )
            )
        )
        res = _call(
            "check the caller's permissions (SelfSubjectAccessReview)",
            lambda: self.authz.create_self_subject_access_review(body, _request_timeout=TIMEOUT),
        )
        st = self._dict(res).get("status") or {}
        return bool(st.get("allowed")), str(st.get("reason") or "")

    def version(self) -> dict[str, Any]:
        res = _call(
            "read the API server version", lambda: client.VersionApi(self.api).get_code(_request_timeout=TIMEOUT)
        )
        return self._dict(res)

    # ---- writes --------------------------------------------------------------------------------------
    def restart_daemonset(self, namespace: str, name: str) -> None:
        """What `kubectl rollout restart` does: a new template annotation, so every pod is replaced."""
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}}
        _call(
            f"restart DaemonSet {namespace}/{name}",
            lambda: self.apps.patch_namespaced_daemon_set(name, namespace, body, _request_timeout=TIMEOUT),
        )

    def merge_config_map(self, namespace: str, name: str, data: dict[str, str]) -> dict[str, Any]:
        """Create the ConfigMap with `data`, or merge `data` into the one that exists."""
        body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, namespace=namespace), data=data)
        try:
            created = _call(
                f"create ConfigMap {namespace}/{name}",
                lambda: self.core.create_namespaced_config_map(namespace, body, _request_timeout=TIMEOUT),
                conflict_ok=True,
            )
            return self._dict(created)
        except Conflict:
            patched = _call(
                f"update ConfigMap {namespace}/{name}",
                lambda: self.core.patch_namespaced_config_map(
                    name, namespace, {"data": data}, _request_timeout=TIMEOUT
                ),
            )
            return self._dict(patched)

    def delete_config_map(self, namespace: str, name: str) -> bool:
        """False when there was nothing to delete."""
        res = _call(
            f"delete ConfigMap {namespace}/{name}",
            lambda: self.core.delete_namespaced_config_map(name, namespace, _request_timeout=TIMEOUT),
            missing_ok=True,
        )
        return res is not None

    def delete_daemonset(self, namespace: str, name: str) -> None:
        _call(
            f"delete DaemonSet {namespace}/{name}",
            lambda: self.apps.delete_namespaced_daemon_set(name, namespace, _request_timeout=TIMEOUT),
            missing_ok=True,
        )

    # ---- Leases (the cluster lock) -------------------------------------------------------------------------------
    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        obj = _call(
            f"read Lease {namespace}/{name}",
            lambda: self.coordination.read_namespaced_lease(name, namespace, _request_timeout=TIMEOUT),
            missing_ok=True,
        )
        return None if obj is None else self._dict(obj)

    # Writes go through the generic object API with plain dicts: CoordinationV1Api turns a body into a V1Lease, whose
    # datetimes serialise without a fraction when their microseconds are 0, and the API server refuses such a
    # MicroTime (its layout wants exactly six digits). Reads and deletes use CoordinationV1Api.
    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Conflict(reason="AlreadyExists") when the Lease exists: someone else created it first."""
        name = body["metadata"]["name"]
        obj = _call(
            f"create Lease {namespace}/{name}",
            lambda: self.custom.create_namespaced_custom_object(
                LEASE_GROUP, LEASE_VERSION, namespace, LEASES, body, _request_timeout=TIMEOUT
            ),
            conflict_ok=True,
        )
        return cast(dict[str, Any], obj)

    def replace_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT with the resourceVersion in `body`; Conflict(reason="Conflict") when the Lease changed since read."""
        name = body["metadata"]["name"]
        obj = _call(
            f"update Lease {namespace}/{name}",
            lambda: self.custom.replace_namespaced_custom_object(
                LEASE_GROUP, LEASE_VERSION, namespace, LEASES, name, body, _request_timeout=TIMEOUT
            ),
            conflict_ok=True,
        )
        return cast(dict[str, Any], obj)

    def patch_lease(
        self, namespace: str, name: str, resource_version: str, spec: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch `spec` only if the Lease still has `resource_version` (Conflict otherwise); None when it is gone.
        Unlike a PUT, a patch never re-creates a Lease someone deleted (a PUT on a missing Lease creates it)."""
        body = {"metadata": {"resourceVersion": resource_version}, "spec": spec}
        obj = _call(
            f"update Lease {namespace}/{name}",
            lambda: self.custom.patch_namespaced_custom_object(
                LEASE_GROUP,
                LEASE_VERSION,
                namespace,
                LEASES,
                name,
                body,
                _request_timeout=TIMEOUT,
                _content_type="application/merge-patch+json",
            ),
            missing_ok=True,
            conflict_ok=True,
        )
        return None if obj is None else cast(dict[str, Any], obj)

    def delete_lease(self, namespace: str, name: str, resource_version: str | None = None) -> bool:
        """False when there was nothing to delete; with `resource_version`, Conflict when the Lease changed since."""
        pre = client.V1Preconditions(resource_version=resource_version) if resource_version else None
        res = _call(
            f"delete Lease {namespace}/{name}",
            lambda: self.coordination.delete_namespaced_lease(
                name, namespace, body=client.V1DeleteOptions(preconditions=pre), _request_timeout=TIMEOUT
            ),
            missing_ok=True,
            conflict_ok=True,
        )
        return res is not None
