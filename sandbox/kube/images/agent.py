"""The Cilium agent (`quay.io/cilium/cilium`): once running on a node, it lifts the node's
`node.cilium.io/agent-not-ready` taint (the node's Ready condition follows the agent in `NodeLifecycle`).

It reads cilium-config once, when it starts (as the real agent does), and serves its Prometheus metrics on its
`prometheus` port through the API server's pod proxy: with `enable-drift-checker: "true"` in the configuration it
started with, `cilium_drift_checker_config_delta` counts the keys of the live ConfigMap it has not applied."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.kube.controllers.base import Context
    from sandbox.kube.store import Store

AGENT_NOT_READY_TAINT = "node.cilium.io/agent-not-ready"
K_NODE = ("", "nodes")
K_CONFIGMAP = ("", "configmaps")
CONFIG_MAP = "cilium-config"
DRIFT_METRIC = "cilium_drift_checker_config_delta"
# The configuration each agent Pod (by uid) started with: what its process holds in memory.
STARTED_WITH: dict[str, dict[str, str]] = {}


def run(ctx: Context, pod: dict[str, Any], container: dict[str, Any]) -> None:
    uid = str(pod["metadata"].get("uid") or "")
    if uid and uid not in STARTED_WITH:
        STARTED_WITH[uid] = _config(ctx.store, pod)
    node = ctx.store.get(K_NODE, "", pod["spec"].get("nodeName") or "")
    if node is None:
        return
    taints = node.get("spec", {}).get("taints") or []
    kept = [t for t in taints if t.get("key") != AGENT_NOT_READY_TAINT]
    if len(kept) != len(taints):
        new = copy.deepcopy(node)
        new["spec"]["taints"] = kept
        ctx.store.update(K_NODE, new, bump_generation=False)


def _config(store: Store, pod: dict[str, Any]) -> dict[str, str]:
    cm = store.get(K_CONFIGMAP, pod["metadata"].get("namespace") or "", CONFIG_MAP)
    return dict((cm or {}).get("data") or {})


def _serves_prometheus(pod: dict[str, Any], port: str) -> bool:
    return any(
        p.get("name") == "prometheus" and str(p.get("containerPort")) == port
        for c in pod["spec"].get("containers") or []
        for p in c.get("ports") or []
    )


def metrics(store: Store, pod: dict[str, Any], port: str, path: str) -> str | None:
    """What GET http://POD:PORT/PATH answers, None when nothing listens there (not an agent, not its port, not
    running yet)."""
    started = STARTED_WITH.get(str(pod["metadata"].get("uid") or ""))
    if started is None or path.strip("/") != "metrics" or not _serves_prometheus(pod, port):
        return None
    lines = ["# HELP cilium_version Cilium version", "# TYPE cilium_version gauge", "cilium_version 1"]
    if started.get("enable-drift-checker") == "true":
        live = _config(store, pod)
        delta = sum(1 for k in set(started) | set(live) if started.get(k) != live.get(k))
        lines += [
            f"# HELP {DRIFT_METRIC} Number of config keys the agent has not applied",
            f"# TYPE {DRIFT_METRIC} gauge",
            f"{DRIFT_METRIC} {delta}",
        ]
    return "\n".join(lines) + "\n"
