"""The scheduler: each unbound Pod goes to the fitting node with the fewest Pods, or is marked Unschedulable
with the scheduler's message (pods under a `pending` pod policy never fit).

A node fits when the Pod's nodeSelector and required node affinity match its labels, the Pod tolerates its
NoSchedule/NoExecute taints, and no required pod anti-affinity term (the Pod's, or a placed Pod's against it)
matches a Pod already in the same topology domain (e.g. `kubernetes.io/hostname`)."""

from __future__ import annotations

import copy
from typing import Any

from sandbox.kube.controllers.base import K_NODE, K_POD, Context, cond, labels_of, schedulable_on
from sandbox.kube.controllers.config import PodFaultMode, PodPolicy
from sandbox.kube.objects import Obj


def unschedulable_message(nodes: int, reasons: dict[str, int], policy: PodPolicy | None) -> str:
    if policy is not None:
        return f"0/{nodes} nodes are available: {policy.message}."
    if not nodes:
        return "no nodes available to schedule pods"
    return f"0/{nodes} nodes are available: " + ", ".join(f"{c} node(s) {w}" for w, c in sorted(reasons.items())) + "."


NODE_AFFINITY = "didn't match Pod's node affinity/selector"
ANTI_AFFINITY = "didn't match pod anti-affinity rules"


def _requirement(req: dict[str, Any], labels: dict[str, str]) -> bool:
    """One matchExpressions requirement (In, NotIn, Exists, DoesNotExist, Gt, Lt) against labels."""
    key, op, values = req.get("key", ""), req.get("operator", ""), req.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt") and key in labels and values:
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A metav1.LabelSelector (matchLabels and matchExpressions); a null selector matches nothing."""
    if selector is None:
        return False
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(_requirement(r, labels) for r in selector.get("matchExpressions") or [])


def node_affinity_matches(pod_spec: dict[str, Any], node: Obj) -> bool:
    """requiredDuringSchedulingIgnoredDuringExecution: any one nodeSelectorTerm whose requirements all match
    (matchExpressions on the node's labels, matchFields on `metadata.name`); an empty term matches nothing."""
    affinity = (pod_spec.get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if not required:
        return True
    labels, fields = labels_of(node), {"metadata.name": node["metadata"]["name"]}

    def term_matches(t: dict[str, Any]) -> bool:
        exprs, flds = t.get("matchExpressions") or [], t.get("matchFields") or []
        return (
            bool(exprs or flds)
            and all(_requirement(r, labels) for r in exprs)
            and all(_requirement(r, fields) for r in flds)
        )

    return any(term_matches(t) for t in required.get("nodeSelectorTerms") or [])


def _anti_terms(pod: Obj) -> list[dict[str, Any]]:
    anti = ((pod.get("spec") or {}).get("affinity") or {}).get("podAntiAffinity") or {}
    return list(anti.get("requiredDuringSchedulingIgnoredDuringExecution") or [])


def _term_selects(term: dict[str, Any], owner: Obj, other: Obj) -> bool:
    """Whether `owner`'s anti-affinity term selects `other` (namespaces default to the owner's own)."""
    namespaces = term.get("namespaces") or ([] if "namespaceSelector" in term else [owner["metadata"].get("namespace")])
    if namespaces and other["metadata"].get("namespace") not in namespaces:
        return False
    return selector_matches(term.get("labelSelector"), labels_of(other))


def anti_affinity_ok(pod: Obj, node: Obj, placed: list[tuple[Obj, Obj]]) -> bool:
    """No placed Pod in the node's topology domain is selected by the Pod's terms, nor selects the Pod by its own.
    `placed` is (pod, the node it is bound to)."""
    node_labels = labels_of(node)
    for other, other_node in placed:
        other_labels = labels_of(other_node)
        for owner, target, terms in ((pod, other, _anti_terms(pod)), (other, pod, _anti_terms(other))):
            for term in terms:
                key = term.get("topologyKey", "")
                if (
                    key in node_labels
                    and other_labels.get(key) == node_labels[key]
                    and _term_selects(term, owner, target)
                ):
                    return False
    return True


def node_fits(pod_spec: dict[str, Any], node: Obj) -> tuple[bool, str]:
    """What the node alone decides (node selector, taints, required node affinity), else the scheduler's reason;
    the DaemonSet controller places its Pods by this too."""
    ok, why = schedulable_on(pod_spec, node)
    if not ok:
        return ok, why
    if not node_affinity_matches(pod_spec, node):
        return False, NODE_AFFINITY
    return True, ""


def fits(pod: Obj, node: Obj, placed: list[tuple[Obj, Obj]]) -> tuple[bool, str]:
    """Whether `pod` may go to `node` given the Pods already bound (with their nodes), else the scheduler's reason."""
    ok, why = node_fits(pod.get("spec") or {}, node)
    if not ok:
        return ok, why
    if not anti_affinity_ok(pod, node, placed):
        return False, ANTI_AFFINITY
    return True, ""


class Scheduler:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self) -> None:
        nodes = self.ctx.store.list(K_NODE)
        for pod in self.ctx.store.list(K_POD):
            if pod.get("spec", {}).get("nodeName") or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                continue
            policy = self.ctx.config.policy_for(pod)
            reasons: dict[str, int] = {}
            chosen = None
            if policy is None or policy.mode != PodFaultMode.PENDING:
                chosen = self._choose(pod, nodes, reasons)
            if chosen:
                self._bind(pod, chosen)
            else:
                self._unschedulable(pod, unschedulable_message(len(nodes), reasons, policy))

    @staticmethod
    def _placed(pods: list[Obj], nodes: list[Obj]) -> list[tuple[Obj, Obj]]:
        """Every bound, not finished Pod with its node."""
        by_name = {n["metadata"]["name"]: n for n in nodes}
        return [
            (p, by_name[p["spec"]["nodeName"]])
            for p in pods
            if p["spec"].get("nodeName") in by_name and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        ]

    def _choose(self, pod: Obj, nodes: list[Obj], reasons: dict[str, int]) -> str | None:
        """The least loaded node that fits; the reasons the others do not fit are counted into `reasons`."""
        pods = self.ctx.store.list(K_POD)
        counts: dict[str, int] = {}
        for p in pods:
            if p["spec"].get("nodeName"):
                counts[p["spec"]["nodeName"]] = counts.get(p["spec"]["nodeName"], 0) + 1
        # Only anti-affinity needs the placed Pods with their nodes; most pods have no such term anywhere.
        placed = self._placed(pods, nodes) if any(_anti_terms(p) for p in (pod, *pods)) else []
        for node in sorted(nodes, key=lambda n: counts.get(n["metadata"]["name"], 0)):
            ok, why = fits(pod, node, placed)
            if ok:
                return str(node["metadata"]["name"])
            reasons[why] = reasons.get(why, 0) + 1
        return None

    def _bind(self, pod: Obj, node: str) -> None:
        new = copy.deepcopy(pod)
        new["spec"]["nodeName"] = node
        new["status"]["conditions"] = [cond("PodScheduled", "True", lastProbeTime=None)]
        self.ctx.store.update(K_POD, new, bump_generation=False)
        where = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        self.ctx.events.record(pod, "Pod", "Scheduled", f"Successfully assigned {where} to {node}")

    def _unschedulable(self, pod: Obj, msg: str) -> None:
        old = (pod.get("status", {}).get("conditions") or [{}])[0]
        if old.get("message") == msg:
            return
        new = copy.deepcopy(pod)
        condition = cond("PodScheduled", "False", "Unschedulable", msg, lastProbeTime=None)
        new["status"] = {"phase": "Pending", "qosClass": "BestEffort", "conditions": [condition]}
        self.ctx.store.update(K_POD, new, bump_generation=False)
        self.ctx.events.record(pod, "Pod", "FailedScheduling", msg, "Warning")
