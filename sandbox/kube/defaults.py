"""Defaulting the API server applies on create/update, limited to what clients' waiters read."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable
from typing import Any

_service_ips = (str(ipaddress.IPv4Address("10.100.0.10") + i) for i in itertools.count())


def _pod_spec(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})
        image = str(c.get("image", ""))
        c.setdefault(
            "imagePullPolicy",
            "Always" if image.endswith(":latest") or ":" not in image.rsplit("/", 1)[-1] else "IfNotPresent",
        )
        for p in c.get("ports") or []:
            p.setdefault("protocol", "TCP")


def _template(obj: dict[str, Any]) -> None:
    tpl = obj.setdefault("spec", {}).setdefault("template", {})
    tpl.setdefault("metadata", {})
    _pod_spec(tpl.setdefault("spec", {}))


def _rolling(strategy: dict[str, Any], max_unavailable: Any, max_surge: Any) -> None:
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        strategy.setdefault("type", "RollingUpdate")
        strategy.setdefault("rollingUpdate", {}).setdefault("maxUnavailable", max_unavailable)
        strategy["rollingUpdate"].setdefault("maxSurge", max_surge)


def _namespace(obj: dict[str, Any]) -> None:
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {}).setdefault("phase", "Active")
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


def _deployment(obj: dict[str, Any]) -> None:
    _template(obj)
    spec = obj["spec"]
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    _rolling(spec.setdefault("strategy", {"type": "RollingUpdate"}), "25%", "25%")


def _daemonset(obj: dict[str, Any]) -> None:
    _template(obj)
    spec = obj["spec"]
    spec.setdefault("revisionHistoryLimit", 10)
    _rolling(spec.setdefault("updateStrategy", {"type": "RollingUpdate"}), 1, 0)


def _replicaset(obj: dict[str, Any]) -> None:
    _template(obj)
    obj["spec"].setdefault("replicas", 1)


def _statefulset(obj: dict[str, Any]) -> None:
    _replicaset(obj)
    obj["spec"].setdefault("podManagementPolicy", "OrderedReady")
    obj["spec"].setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    obj["spec"].setdefault("serviceName", "")


def _job(obj: dict[str, Any]) -> None:
    _template(obj)
    spec = obj["spec"]
    spec["template"]["spec"]["restartPolicy"] = spec["template"]["spec"].get("restartPolicy") or "Never"
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completions", 1)
    spec.setdefault("parallelism", 1)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    name, uid = obj["metadata"]["name"], obj["metadata"].get("uid", "")
    uid_label = {
        "batch.kubernetes.io/job-name": name,
        "job-name": name,
        "batch.kubernetes.io/controller-uid": uid,
        "controller-uid": uid,
    }
    spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    spec["template"]["metadata"].setdefault("labels", {}).update(uid_label)


def _cronjob(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)


def _pod(obj: dict[str, Any]) -> None:
    _pod_spec(obj.setdefault("spec", {}))
    obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})


def _service(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName" and "clusterIP" not in spec:
        spec["clusterIP"] = next(_service_ips)
    if spec.get("clusterIP") and spec.get("clusterIP") != "None":
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    for p in spec.get("ports") or []:
        p.setdefault("protocol", "TCP")
        p.setdefault("targetPort", p.get("port"))
    obj.setdefault("status", {"loadBalancer": {}})


def _secret(obj: dict[str, Any]) -> None:
    obj.setdefault("type", "Opaque")


def _crd(obj: dict[str, Any]) -> None:
    for v in (obj.get("spec") or {}).get("versions", []) or []:
        v.setdefault("served", True)
        v.setdefault("storage", True)


_BY_KIND: dict[str, Callable[[dict[str, Any]], None]] = {
    "Namespace": _namespace,
    "Deployment": _deployment,
    "DaemonSet": _daemonset,
    "ReplicaSet": _replicaset,
    "StatefulSet": _statefulset,
    "Job": _job,
    "CronJob": _cronjob,
    "Pod": _pod,
    "Service": _service,
    "Secret": _secret,
    "CustomResourceDefinition": _crd,
}


def apply_defaults(kind: str, obj: dict[str, Any]) -> None:
    defaults = _BY_KIND.get(kind)
    if defaults is not None:
        defaults(obj)
