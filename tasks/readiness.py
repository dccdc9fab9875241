"""Readiness verdicts (pure), matching the real tools: `kubectl rollout status` for DaemonSets and
Deployments, Job conditions, Node Ready. Each verdict says what is missing in words a person can act on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tasks.names import node_nodegroup


@dataclass(frozen=True)
class Verdict:
    ready: bool
    summary: str
    failed: bool = False  # terminal: waiting longer cannot help
    details: list[str] = field(default_factory=list)


def _int(value: Any) -> int:
    return int(value or 0)


def _generation_observed(obj: dict[str, Any]) -> bool:
    """kubectl: `metadata.generation <= status.observedGeneration` (missing counts as 0)."""
    return _int((obj.get("metadata") or {}).get("generation")) <= _int(
        (obj.get("status") or {}).get("observedGeneration")
    )


def _waiting_for_generation(obj: dict[str, Any]) -> Verdict:
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    return Verdict(
        False,
        f"waiting for the controller to observe generation {meta.get('generation')} "
        f"(observed {status.get('observedGeneration') or 0})",
    )


def daemonset(ds: dict[str, Any] | None, *, expected_nodes: int | None = None) -> Verdict:
    """`kubectl rollout status daemonset` (1.33), in its order: a strategy other than RollingUpdate is an error at once;
    then the generation must be observed, then updated >= desired, then available >= desired. `expected_nodes`
    (per-node DaemonSets) is our check on top: scheduled on at least that many nodes."""
    if ds is None:
        return Verdict(False, "does not exist")
    strategy = ((ds.get("spec") or {}).get("updateStrategy") or {}).get("type")
    if strategy != "RollingUpdate":
        return Verdict(
            False,
            f"rollout status is only available for RollingUpdate strategy type (updateStrategy is "
            f"{strategy or 'not set'}): set spec.updateStrategy.type RollingUpdate",
            failed=True,
        )
    if not _generation_observed(ds):
        return _waiting_for_generation(ds)
    s = ds.get("status") or {}
    desired, updated, available = (
        _int(s.get(k)) for k in ("desiredNumberScheduled", "updatedNumberScheduled", "numberAvailable")
    )
    summary = f"{available}/{desired} available, {updated}/{desired} updated"
    if updated < desired:
        return Verdict(False, f"rollout in progress: {summary}")
    if available < desired:
        return Verdict(False, f"waiting for pods: {summary}")
    if expected_nodes is not None and desired < expected_nodes:
        return Verdict(False, f"scheduled on {desired} of {expected_nodes} nodes")
    return Verdict(True, summary)


def deployment(d: dict[str, Any] | None, *, expected_replicas: int | None = None) -> Verdict:
    """`kubectl rollout status deployment` (1.33), in its order: the generation must be observed; then a Progressing
    condition with reason ProgressDeadlineExceeded is terminal; then (when spec.replicas is set) updated >= spec;
    then no old replicas pending termination (status.replicas <= updated); then available >= updated. It never reads
    the Available condition. `expected_replicas` (what the release renders) is our check on top: a live object asking
    for fewer replicas than the release renders was scaled down outside helm, and waiting cannot fix that."""
    if d is None:
        return Verdict(False, "does not exist")
    spec_replicas = (d.get("spec") or {}).get("replicas")
    if expected_replicas is not None and _int(spec_replicas) < expected_replicas:
        return Verdict(
            False,
            f"{_int(spec_replicas)} replica(s) requested but the release renders {expected_replicas}: "
            "scaled down outside helm",
            failed=True,
        )
    if not _generation_observed(d):
        return _waiting_for_generation(d)
    s = d.get("status") or {}
    progressing: dict[str, Any] = next((c for c in s.get("conditions") or [] if c.get("type") == "Progressing"), {})
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return Verdict(False, f"progress deadline exceeded: {progressing.get('message', '')}".strip(), failed=True)
    total, updated, available = (_int(s.get(k)) for k in ("replicas", "updatedReplicas", "availableReplicas"))
    if spec_replicas is not None and updated < int(spec_replicas):
        return Verdict(False, f"rollout in progress: {updated}/{spec_replicas} updated")
    if total > updated:
        return Verdict(False, f"old replicas pending termination: {total} total, {updated} updated")
    if available < updated:
        return Verdict(False, f"waiting for pods: {available}/{updated} updated replicas available")
    return Verdict(True, f"{available}/{updated if spec_replicas is None else spec_replicas} available")


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
    return Verdict(
        False,
        f"not complete: {int(s.get('active') or 0)} active, {int(s.get('succeeded') or 0)} succeeded, "
        f"{int(s.get('failed') or 0)} failed",
    )


def node_ready(node: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )


def nodes(
    node_list: list[dict[str, Any]], *, expected: int, nodegroup: str | None = None, exact: bool = False
) -> Verdict:
    """At least `expected` of the (nodegroup's) nodes Ready; `exact`: exactly that many registered, all Ready."""
    members = [n for n in node_list if nodegroup is None or node_nodegroup(n) == nodegroup]
    ready = [n for n in members if node_ready(n)]
    not_ready = []
    for n in members:
        if not node_ready(n):
            c: dict[str, Any] = next(
                (c for c in (n.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), {}
            )
            not_ready.append(f"{n['metadata']['name']}: {c.get('reason', 'NotReady')} {c.get('message', '')}".strip())
    summary = f"{len(ready)}/{expected} nodes Ready ({len(members)} registered)"
    ok = len(ready) == expected == len(members) if exact else len(ready) >= expected
    return Verdict(ok, summary, details=not_ready)


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
                reasons.append(
                    f"{cs.get('name')}: {w.get('reason', '')}{' - ' + w['message'] if w.get('message') else ''}"
                    f" (restarts {cs.get('restartCount', 0)})"
                )
        sched = conds.get("PodScheduled") or {}
        if sched.get("status") == "False":
            reasons.append(f"unschedulable: {sched.get('message', '')}")
        node = (p.get("spec") or {}).get("nodeName") or "no node"
        out.append(
            f"{p['metadata'].get('namespace')}/{p['metadata']['name']} on {node}: phase {st.get('phase', 'Pending')}"
            + (f"; {'; '.join(reasons)}" if reasons else "")
        )
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
