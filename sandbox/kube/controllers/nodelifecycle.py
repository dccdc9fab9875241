"""Node lifecycle: nodes follow their nodegroups (registered `node_join_seconds` after the nodegroup was
created, the newest removed with their Pods on scale-down), and turn Ready, losing the not-ready taints, only
while a Ready Pod runs the Cilium agent's image on them (after `node_ready_seconds`); NotReady again when it stops."""

from __future__ import annotations

import copy

from sandbox.kube.controllers.base import K_NODE, K_POD, Context, cond, labels_of, node_ready, pod_ready
from sandbox.kube.controllers.config import NodegroupSource, NodegroupView
from sandbox.kube.controllers.nodes import (
    AGENT_NOT_READY_TAINT,
    NOT_READY_TAINT,
    node_object,
    not_ready_condition,
)
from sandbox.kube.images import runs_agent
from sandbox.kube.objects import Obj
from sandbox.kube.store import now_iso

NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"


class NodeLifecycle:
    def __init__(self, ctx: Context, nodegroups: NodegroupSource | None = None) -> None:
        self.ctx = ctx
        self.nodegroups = nodegroups
        self.node_seq = 0

    # ---- nodes follow the nodegroups -------------------------------------------------------------------
    def sync_nodes(self) -> None:
        if self.nodegroups is None:
            return
        groups = {g.name: g for g in self.nodegroups()}
        by_group: dict[str, list[Obj]] = {}
        for n in self.ctx.store.list(K_NODE):
            member_of = labels_of(n).get(NODEGROUP_LABEL)
            if member_of:
                by_group.setdefault(member_of, []).append(n)
        for gname, members in by_group.items():
            want = groups[gname].desired if gname in groups else 0
            newest_first = sorted(members, key=lambda n: n["metadata"]["creationTimestamp"], reverse=True)
            for n in newest_first[: max(0, len(members) - want)]:
                self.delete_node(n)
        now = self.ctx.clock.time()
        for g in groups.values():
            have = len(by_group.get(g.name, []))
            if have >= g.desired or now - g.created_at < self.ctx.config.node_join_seconds:
                continue
            for _ in range(g.desired - have):
                self.register_node(g)

    def register_node(self, g: NodegroupView) -> Obj:
        self.node_seq += 1
        return self.ctx.objects.create_kind("v1", "Node", node_object(g, self.node_seq))

    def delete_node(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        self.ctx.store.delete(K_NODE, "", name)
        for p in self.ctx.store.list(K_POD):
            if p.get("spec", {}).get("nodeName") == name:
                self.ctx.delete(K_POD, p)

    # ---- Ready follows the agent -----------------------------------------------------------------------
    def _agent_nodes(self) -> set[str]:
        return {p["spec"].get("nodeName") for p in self.ctx.store.list(K_POD) if runs_agent(p) and pod_ready(p)}

    def update_conditions(self) -> None:
        running_on = self._agent_nodes()
        now = self.ctx.clock.monotonic()
        for node in self.ctx.store.list(K_NODE):
            name = node["metadata"]["name"]
            want_ready = name in running_on
            if want_ready and self.ctx.config.node_ready_seconds:
                due = self.ctx.timers.setdefault("node-ready:" + name, now + self.ctx.config.node_ready_seconds)
                want_ready = now >= due
            elif not want_ready:
                self.ctx.timers.pop("node-ready:" + name, None)
            if want_ready != node_ready(node):
                self.set_ready(node, want_ready)

    def set_ready(self, node: Obj, ready: bool) -> Obj:
        return self.ctx.store.update(K_NODE, self._with_ready(node, ready), bump_generation=False)

    @staticmethod
    def _with_ready(node: Obj, ready: bool) -> Obj:
        new = copy.deepcopy(node)
        conds = [c for c in new["status"]["conditions"] if c["type"] != "Ready"]
        ts = now_iso()
        taints = new["spec"].get("taints") or []
        if ready:
            conds.append(cond("Ready", "True", "KubeletReady", "kubelet is posting ready status", lastHeartbeatTime=ts))
            # The node lifecycle controller lifts not-ready; Cilium's operator lifts its agent-not-ready taint.
            taints = [t for t in taints if t["key"] not in (NOT_READY_TAINT, AGENT_NOT_READY_TAINT)]
        else:
            conds.append(not_ready_condition(ts))
            for eff in ("NoSchedule", "NoExecute"):
                if not any(t["key"] == NOT_READY_TAINT and t["effect"] == eff for t in taints):
                    taints.append({"key": NOT_READY_TAINT, "effect": eff})
        new["spec"]["taints"] = taints
        new["status"]["conditions"] = conds
        return new
