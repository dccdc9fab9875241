"""Readiness verdicts (pure), matching the real tools: `kubectl rollout status` for DaemonSets and
Deployments, Job conditions, Node Ready. Each verdict says what is missing in words a person can act on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Verdict:
    ready: bool
    summary: str
    failed: bool = False  # terminal: waiting longer cannot help
    details: list[str] = field(default_factory=list)


def _gen_ok(obj: dict[str, Any]) -> bool:
    return int(obj.get("status", {}).get("observedGeneration") or 0) >= int(obj.get("metadata", {}).get("generation") or 0)


def daemonset(ds: dict[str, Any] | None, *, expected_nodes: int | None = None) -> Verdict:
    if ds is None:
        return Verdict(False, "does not exist")
    s = ds.get("status") or {}
    desired = int(s.get("desiredNumberScheduled") or 0)
    updated = int(s.get("updatedNumberScheduled") or 0)
    available = int(s.get("numberAvailable") or 0)
    summary = f"{available}/{desired} available, {updated}/{desired} updated"
    if not _gen_ok(ds):
        return Verdict(False, f"waiting for the controller to observe generation {ds['metadata'].get('generation')}")
    if updated < desired:
        return Verdict(False, f"rollout in progress: {summary}")
    if available < desired:
        return Verdict(False, f"waiting for pods: {summary}")
    if expected_nodes is not None and desired < expected_nodes:
        return Verdict(False, f"scheduled on {desired} of {expected_nodes} nodes")
    return Verdict(True, summary)


def deployment(d: dict[str, Any] | None) -> Verdict:
    if d is None:
        return Verdict(False, "does not exist")
    spec_replicas = int((d.get("spec") or {}).get("replicas", 1))
    s = d.get("status") or {}
    updated, ready, available = (int(s.get(k) or 0) for k in ("updatedReplicas", "readyReplicas", "availableReplicas"))
    summary = f"{available}/{spec_replicas} available"
    conds = {c.get("type"): c for c in s.get("conditions") or []}
    progressing = conds.get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return Verdict(False, f"progress deadline exceeded: {progressing.get('message', '')}", failed=True)
    if not _gen_ok(d):
        return Verdict(False, f"waiting for the controller to observe generation {d['metadata'].get('generation')}")
    if updated < spec_replicas:
        return Verdict(False, f"rollout in progress: {updated}/{spec_replicas} updated")
    if int(s.get("replicas") or 0) > updated:
        return Verdict(False, f"old replicas pending termination: {s.get('replicas')} total, {updated} updated")
    if available < spec_replicas or ready < spec_replicas:
        return Verdict(False, f"waiting for pods: {summary}")
    if (conds.get("Available") or {}).get("status") != "True":
        return Verdict(False, f"condition Available is not True: {summary}")
    return Verdict(True, summary)


def job(j: dict[str, Any] | None) -> Verdict:
    if j is None:
        return Verdict(False, "does not exist")
    conds = {c.get("type"): c for c in (j.get("status") or {}).get("conditions") or []}
    if (conds.get("Failed") or {}).get("status") == "True":
        c = conds["Failed"]
        return Verdict(False, f"failed: {c.get('reason', '')} {c.get('message', '')}".strip(), failed=True)
    if (conds.get("Complete") or {}).get("status") == "True":
        return Verdict(True, "complete")
    s = j.get("status") or {}
    return Verdict(False, f"not complete: {int(s.get('active') or 0)} active, {int(s.get('succeeded') or 0)} succeeded, "
                          f"{int(s.get('failed') or 0)} failed")


def node_ready(node: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (node.get("status") or {}).get("conditions") or [])


def nodes(node_list: list[dict[str, Any]], *, expected: int, nodegroup: str | None = None) -> Verdict:
    members = [n for n in node_list if nodegroup is None
               or ((n.get("metadata") or {}).get("labels") or {}).get("eks.amazonaws.com/nodegroup") == nodegroup]
    ready = [n for n in members if node_ready(n)]
    not_ready = []
    for n in members:
        if not node_ready(n):
            c: dict[str, Any] = next((c for c in (n.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {})
            not_ready.append(f"{n['metadata']['name']}: {c.get('reason', 'NotReady')} {c.get('message', '')}".strip())
    summary = f"{len(ready)}/{expected} nodes Ready ({len(members)} registered)"
    return Verdict(len(ready) >= expected, summary, details=not_ready)


def pod_problems(pods: list[dict[str, Any]]) -> list[str]:
    """One line per pod that is not Running and Ready: phase, waiting reasons, scheduling message."""
    out = []
    for p in pods:
        st = p.get("status") or {}
        conds = {c.get("type"): c for c in st.get("conditions") or []}
        if st.get("phase") == "Running" and (conds.get("Ready") or {}).get("status") == "True":
            continue
        if st.get("phase") == "Succeeded":
            continue
        reasons = []
        for cs in st.get("containerStatuses") or []:
            w = (cs.get("state") or {}).get("waiting")
            if w:
                reasons.append(f"{cs.get('name')}: {w.get('reason', '')}{' - ' + w['message'] if w.get('message') else ''}"
                               f" (restarts {cs.get('restartCount', 0)})")
        sched = conds.get("PodScheduled") or {}
        if sched.get("status") == "False":
            reasons.append(f"unschedulable: {sched.get('message', '')}")
        node = (p.get("spec") or {}).get("nodeName") or "no node"
        out.append(f"{p['metadata'].get('namespace')}/{p['metadata']['name']} on {node}: phase {st.get('phase', 'Pending')}"
                   + (f"; {'; '.join(reasons)}" if reasons else ""))
    return out


def nodegroup(ng: dict[str, Any] | None) -> Verdict:
    if ng is None:
        return Verdict(False, "does not exist")
    status = ng.get("status", "")
    issues = (ng.get("health") or {}).get("issues") or []
    text = [f"{i.get('code')}: {i.get('message')} ({', '.join(i.get('resourceIds') or [])})" for i in issues]
    if status == "ACTIVE":
        return Verdict(True, "ACTIVE")
    if status in ("CREATE_FAILED", "DEGRADED", "DELETE_FAILED", "DELETING"):
        return Verdict(False, f"{status}" + (f": {'; '.join(text)}" if text else ""), failed=True, details=text)
    return Verdict(False, status or "unknown", details=text)


def cluster(c: dict[str, Any] | None) -> Verdict:
    if c is None:
        return Verdict(False, "does not exist", failed=True)
    status = c.get("status", "")
    if status == "ACTIVE" and c.get("endpoint"):
        return Verdict(True, "ACTIVE")
    if status in ("FAILED", "DELETING"):
        return Verdict(False, status, failed=True)
    return Verdict(False, status or "unknown")
