"""Server-side Tables for `kubectl get` (meta.k8s.io/v1 Table), with the columns kubectl users expect."""

from __future__ import annotations

import calendar
import time
from typing import Any


def _age(obj: dict[str, Any]) -> str:
    return _since(obj["metadata"].get("creationTimestamp"))


def _since(ts: str | None) -> str:
    """kubectl's short duration since the timestamp `ts`."""
    if not ts:
        return "<unknown>"
    secs = max(0, int(time.time() - calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))))
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    return f"{secs // 3600}h"


def _pod_row(o: dict[str, Any]) -> list[Any]:
    st = o.get("status", {})
    cs = st.get("containerStatuses") or []
    total = len(o.get("spec", {}).get("containers") or [])
    ready = sum(1 for c in cs if c.get("ready"))
    status = st.get("phase", "Pending")
    for c in cs:
        waiting = (c.get("state") or {}).get("waiting")
        if waiting:
            status = waiting.get("reason", status)
    if o["metadata"].get("deletionTimestamp"):
        status = "Terminating"
    restarts = sum(int(c.get("restartCount", 0)) for c in cs)
    return [
        o["metadata"]["name"],
        f"{ready}/{total}",
        status,
        restarts,
        _age(o),
        st.get("podIP", "<none>"),
        o.get("spec", {}).get("nodeName", "<none>"),
    ]


def _node_row(o: dict[str, Any]) -> list[Any]:
    conds = {c["type"]: c["status"] for c in o.get("status", {}).get("conditions") or []}
    status = "Ready" if conds.get("Ready") == "True" else "NotReady"
    roles = (
        ",".join(
            k.split("/", 1)[1] for k in (o["metadata"].get("labels") or {}) if k.startswith("node-role.kubernetes.io/")
        )
        or "<none>"
    )
    return [
        o["metadata"]["name"],
        status,
        roles,
        _age(o),
        o.get("status", {}).get("nodeInfo", {}).get("kubeletVersion", ""),
    ]


def _ds_row(o: dict[str, Any]) -> list[Any]:
    s = o.get("status", {})
    sel = ",".join(
        f"{k}={v}" for k, v in (o.get("spec", {}).get("template", {}).get("spec", {}).get("nodeSelector") or {}).items()
    )
    return [
        o["metadata"]["name"],
        s.get("desiredNumberScheduled", 0),
        s.get("currentNumberScheduled", 0),
        s.get("numberReady", 0),
        s.get("updatedNumberScheduled", 0),
        s.get("numberAvailable", 0),
        sel or "<none>",
        _age(o),
    ]


def _deploy_row(o: dict[str, Any]) -> list[Any]:
    s = o.get("status", {})
    return [
        o["metadata"]["name"],
        f"{s.get('readyReplicas', 0)}/{o.get('spec', {}).get('replicas', 1)}",
        s.get("updatedReplicas", 0),
        s.get("availableReplicas", 0),
        _age(o),
    ]


def _job_row(o: dict[str, Any]) -> list[Any]:
    s = o.get("status", {})
    conds = {c["type"]: c["status"] for c in s.get("conditions") or []}
    status = "Complete" if conds.get("Complete") == "True" else "Failed" if conds.get("Failed") == "True" else "Running"
    return [
        o["metadata"]["name"],
        status,
        f"{s.get('succeeded', 0)}/{o.get('spec', {}).get('completions', 1)}",
        "",
        _age(o),
    ]


def _service_row(o: dict[str, Any]) -> list[Any]:
    spec, status = o.get("spec") or {}, o.get("status") or {}
    kind = spec.get("type", "ClusterIP")
    external = ",".join(spec.get("externalIPs") or [])
    if kind == "LoadBalancer":
        balancers = (status.get("loadBalancer") or {}).get("ingress") or []
        ingress = [i.get("ip") or i.get("hostname", "") for i in balancers]
        external = ",".join(filter(None, [*ingress, external])) or "<pending>"
    elif kind == "ExternalName":
        external = spec.get("externalName", "")
    ports = ",".join(
        (f"{p['port']}:{p['nodePort']}" if p.get("nodePort") else f"{p['port']}") + f"/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    selector = ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items())
    return [
        o["metadata"]["name"],
        kind,
        spec.get("clusterIP") or "<none>",
        external or "<none>",
        ports or "<none>",
        _age(o),
        selector or "<none>",
    ]


def _configmap_row(o: dict[str, Any]) -> list[Any]:
    return [o["metadata"]["name"], len(o.get("data") or {}) + len(o.get("binaryData") or {}), _age(o)]


def _secret_row(o: dict[str, Any]) -> list[Any]:
    return [o["metadata"]["name"], o.get("type") or "Opaque", len(o.get("data") or {}), _age(o)]


def _event_row(o: dict[str, Any]) -> list[Any]:
    meta, involved = o["metadata"], o.get("involvedObject") or {}
    # events.k8s.io writers set eventTime (with microseconds) instead of lastTimestamp.
    event_time = o.get("eventTime")
    last = o.get("lastTimestamp") or (event_time[:19] + "Z" if event_time else None) or meta.get("creationTimestamp")
    source = (o.get("source") or {}).get("component") or o.get("reportingComponent") or ""
    return [
        _since(last),
        o.get("type", "Normal"),
        o.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        involved.get("fieldPath", ""),
        source,
        o.get("message", ""),
        _since(o.get("firstTimestamp") or meta.get("creationTimestamp")),
        int(o.get("count") or 1),
        meta["name"],
    ]


def _lease_row(o: dict[str, Any]) -> list[Any]:
    return [o["metadata"]["name"], (o.get("spec") or {}).get("holderIdentity") or "", _age(o)]


COLUMNS: dict[str, tuple[list[str], Any]] = {
    "Pod": (["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node"], _pod_row),
    "Node": (["Name", "Status", "Roles", "Age", "Version"], _node_row),
    "DaemonSet": (["Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age"], _ds_row),
    "Deployment": (["Name", "Ready", "Up-to-date", "Available", "Age"], _deploy_row),
    "Job": (["Name", "Status", "Completions", "Duration", "Age"], _job_row),
    "Lease": (["Name", "Holder", "Age"], _lease_row),
    "Service": (["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"], _service_row),
    "ConfigMap": (["Name", "Data", "Age"], _configmap_row),
    "Secret": (["Name", "Type", "Data", "Age"], _secret_row),
    "Event": (
        ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen", "Count", "Name"],
        _event_row,
    ),
}
# kube-apiserver's printers: these columns are integers, and these (per kind) only show with `-o wide`.
_INTEGER_COLUMNS = {"Restarts", "Desired", "Current", "Up-to-date", "Available", "Data", "Count"}
_WIDE_COLUMNS: dict[str, set[str]] = {
    "Pod": {"IP", "Node"},
    "Service": {"Selector"},
    "Event": {"Subobject", "Source", "First Seen", "Count", "Name"},
}


def table(kind: str, items: list[dict[str, Any]], resource_version: str, include_object: str) -> dict[str, Any]:
    names, row = COLUMNS.get(kind, (["Name", "Age"], lambda o: [o["metadata"]["name"], _age(o)]))
    cols = [
        {
            "name": n,
            "type": "integer" if n in _INTEGER_COLUMNS else "string",
            "format": "name" if n == "Name" else "",
            "description": n,
            "priority": 1 if n in _WIDE_COLUMNS.get(kind, set()) else 0,
        }
        for n in names
    ]
    rows = []
    for o in items:
        if include_object == "Object":
            embedded: dict[str, Any] = o
        else:
            embedded = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}
        rows.append({"cells": row(o), "object": embedded})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": cols,
        "rows": rows,
    }
