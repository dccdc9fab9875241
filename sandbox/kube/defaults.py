"""Defaulting the API server applies on create/update, limited to what clients' waiters read."""

from __future__ import annotations

import ipaddress
import itertools
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


def apply_defaults(kind: str, obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if kind == "Namespace":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif kind == "Deployment":
        _template(obj)
        spec = obj["spec"]
        spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        strat = spec.setdefault("strategy", {"type": "RollingUpdate"})
        if strat.get("type", "RollingUpdate") == "RollingUpdate":
            strat.setdefault("type", "RollingUpdate")
            strat.setdefault("rollingUpdate", {}).setdefault("maxUnavailable", "25%")
            strat["rollingUpdate"].setdefault("maxSurge", "25%")
    elif kind == "DaemonSet":
        _template(obj)
        spec = obj["spec"]
        spec.setdefault("revisionHistoryLimit", 10)
        strat = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
        if strat.get("type", "RollingUpdate") == "RollingUpdate":
            strat.setdefault("type", "RollingUpdate")
            strat.setdefault("rollingUpdate", {}).setdefault("maxUnavailable", 1)
            strat["rollingUpdate"].setdefault("maxSurge", 0)
    elif kind in ("ReplicaSet", "StatefulSet"):
        _template(obj)
        obj["spec"].setdefault("replicas", 1)
        if kind == "StatefulSet":
            obj["spec"].setdefault("podManagementPolicy", "OrderedReady")
            obj["spec"].setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
            obj["spec"].setdefault("serviceName", "")
    elif kind == "Job":
        _template(obj)
        spec = obj["spec"]
        spec["template"]["spec"]["restartPolicy"] = spec["template"]["spec"].get("restartPolicy") or "Never"
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completions", 1)
        spec.setdefault("parallelism", 1)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        uid = obj["metadata"].get("uid", "")
        uid_label = {
            "batch.kubernetes.io/job-name": obj["metadata"]["name"],
            "job-name": obj["metadata"]["name"],
            "batch.kubernetes.io/controller-uid": uid,
            "controller-uid": uid,
        }
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        spec["template"]["metadata"].setdefault("labels", {}).update(uid_label)
    elif kind == "CronJob":
        spec = obj.setdefault("spec", {})
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
    elif kind == "Pod":
        _pod_spec(obj.setdefault("spec", {}))
        obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})
    elif kind == "Service" and isinstance(spec, dict):
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
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
    elif kind == "ServiceAccount":
        pass
    elif kind == "CustomResourceDefinition":
        for v in (spec or {}).get("versions", []) or []:
            v.setdefault("served", True)
            v.setdefault("storage", True)
