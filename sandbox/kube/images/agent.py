"""The Cilium agent (`quay.io/cilium/cilium`): once running on a node, it lifts the node's
`node.cilium.io/agent-not-ready` taint (the node's Ready condition follows the agent in `NodeLifecycle`)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.kube.controllers.base import Context

AGENT_NOT_READY_TAINT = "node.cilium.io/agent-not-ready"
K_NODE = ("", "nodes")


def run(ctx: Context, pod: dict[str, Any], container: dict[str, Any]) -> None:
    node = ctx.store.get(K_NODE, "", pod["spec"].get("nodeName") or "")
    if node is None:
        return
    taints = node.get("spec", {}).get("taints") or []
    kept = [t for t in taints if t.get("key") != AGENT_NOT_READY_TAINT]
    if len(kept) != len(taints):
        new = copy.deepcopy(node)
        new["spec"]["taints"] = kept
        ctx.store.update(K_NODE, new, bump_generation=False)
