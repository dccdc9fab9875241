"""The Pod status a kubelet reports: phase, conditions, container statuses and IPs."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from sandbox.kube.controllers.base import cond, spec_hash
from sandbox.kube.objects import Obj
from sandbox.kube.store import now_iso

CONTAINER_CREATING = "ContainerCreating"


@dataclass(frozen=True)
class PodState:
    """What the kubelet wants to report: phase and readiness, a waiting reason, a restart count, completion."""

    phase: str
    ready: bool
    waiting: tuple[str, str] | None = None  # (reason, message)
    restarts: int | None = None
    terminated: bool = False


def _container_state(state: PodState, old: Obj, prev: Obj) -> dict[str, Any]:
    if state.terminated:
        started = old.get("startTime", now_iso())
        return {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": now_iso()}}
    if state.waiting:
        reason, message = state.waiting
        return {"waiting": {"reason": reason, **({"message": message} if message else {})}}
    if prev.get("state", {}).get("running"):
        return dict(prev["state"])
    return {"running": {"startedAt": now_iso()}}


def container_statuses(pod: Obj, state: PodState) -> list[Obj]:
    old = pod.get("status", {})
    old_cs = {c["name"]: c for c in old.get("containerStatuses") or []}
    statuses = []
    for c in pod["spec"].get("containers") or []:
        prev = old_cs.get(c["name"], {})
        image = c.get("image", "")
        statuses.append(
            {
                "name": c["name"],
                "image": image,
                "imageID": f"{image}@sha256:{spec_hash(image)}" if not state.waiting else "",
                "ready": state.ready,
                "started": state.phase == "Running" and not state.waiting,
                "restartCount": state.restarts if state.restarts is not None else int(prev.get("restartCount", 0)),
                "state": _container_state(state, old, prev),
                "containerID": "" if state.waiting else f"containerd://{spec_hash(pod['metadata']['uid'] + c['name'])}",
            }
        )
    return statuses


def pod_conditions(old: Obj, ready: bool) -> list[Obj]:
    """PodScheduled, Initialized, ContainersReady, Ready; an unchanged condition keeps its transition time."""
    flag = "True" if ready else "False"
    conds = [
        cond("PodScheduled", "True"),
        cond("Initialized", "True"),
        cond("ContainersReady", flag),
        cond("Ready", flag),
    ]
    old_conds = {c["type"]: c for c in old.get("conditions") or []}
    return [
        old_conds[c["type"]] if c["type"] in old_conds and old_conds[c["type"]]["status"] == c["status"] else c
        for c in conds
    ]


def pod_status(pod: Obj, node: Obj, state: PodState) -> Obj:
    old = pod.get("status", {})
    host_ip = next((a["address"] for a in node["status"].get("addresses") or [] if a["type"] == "InternalIP"), "")
    pod_ip = host_ip if pod["spec"].get("hostNetwork") else f"10.0.{random.randint(0, 127)}.{random.randint(2, 250)}"
    status = {
        "phase": state.phase,
        "conditions": pod_conditions(old, state.ready),
        "containerStatuses": container_statuses(pod, state),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": old.get("podIP") or pod_ip,
        "podIPs": [{"ip": old.get("podIP") or pod_ip}],
        "qosClass": old.get("qosClass", "BestEffort"),
        "startTime": old.get("startTime") or now_iso(),
    }
    if state.waiting and state.waiting[0] == CONTAINER_CREATING:
        status.pop("podIP")
        status.pop("podIPs")
    return status


def changed(old: Obj, new: Obj) -> bool:
    """Whether a new status differs from the old one in anything but startTime."""
    return {k: v for k, v in old.items() if k != "startTime"} != {k: v for k, v in new.items() if k != "startTime"}
