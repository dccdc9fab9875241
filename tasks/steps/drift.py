"""Drift tasks: observe the live stack without waiting, and the repairs that are not plain install steps
(agents restart after a values-only Cilium change, nodegroup scaling, removing a re-appeared aws-node)."""

from __future__ import annotations

from prefect import get_run_logger

from tasks import drift, readiness, verify
from tasks.adapters.kube import Kube
from tasks.errors import EksCiliumError
from tasks.names import KUBE_SYSTEM, node_nodegroup
from tasks.preflight import CONFLICTING_DAEMONSETS
from tasks.render import RenderedStack
from tasks.results import NodegroupAction, NodegroupOutcome
from tasks.steps.releases import live_release
from tasks.steps.runtime import RunContext, step
from tasks.steps.workloads import workload_verdict


def certs_ttl_noise(kube: Kube, namespace: str, job_name: str) -> bool:
    """The Hubble certificate hook Job deletes itself 30 minutes after finishing; it is not drift when its CronJob
    is still there to renew the certificates."""
    return kube.get("CronJob", namespace, job_name) is not None


@step("observe_drift")
def observe_drift(ctx: RunContext, rendered: RenderedStack) -> list[drift.DriftItem]:
    """Every drift check, read once (no waiting): releases, workloads, nodes, nodegroup, CNI conflicts."""
    items: list[drift.DriftItem] = []
    stack = ctx.stack
    plan = rendered.nodegroup
    for name, rel in stack.releases.items():
        if rel.enabled:
            items.append(drift.release_drift(name, rel.version, live_release(ctx, name, rel), rendered.values[name]))
    aws = ctx.aws()
    live_ng = aws.describe_nodegroup(stack.cluster.name, plan.name)
    try:
        addons: list[str] | None = aws.list_addons(stack.cluster.name)
    except EksCiliumError as e:
        if e.transient:
            raise
        addons = None
    with ctx.kube() as kube:
        nodes = kube.list_nodes()
        members = [n for n in nodes if node_nodegroup(n) == plan.name]
        ready = [n for n in members if readiness.node_ready(n)]
        for name, rel in stack.releases.items():
            if not rel.enabled:
                continue
            for w in rel.workloads:
                ns = w.namespace or rel.namespace
                verdict = workload_verdict(kube, w, ns, len(ready))
                noise = (
                    w.kind.value == "Job" and verdict.summary == "does not exist" and certs_ttl_noise(kube, ns, w.name)
                )
                items.append(drift.workload_drift(name, w.kind.value, f"{ns}/{w.name}", verdict, ttl_noise=noise))
        ds = [d["metadata"]["name"] for d in kube.list_daemonsets(KUBE_SYSTEM)]
        cilium_cm = kube.get("ConfigMap", *verify.cilium_config_map(stack)) if stack.cilium[1].enabled else None
    if stack.cilium[1].enabled:
        items.append(drift.cluster_identity_drift(stack, None if cilium_cm is None else cilium_cm.get("data") or {}))
    items.append(drift.nodes_drift(len(ready), len(members), plan.desired_size))
    items.append(drift.nodegroup_drift(plan, live_ng))
    items.append(drift.cni_drift(addons, ds))
    get_run_logger().info("drift: %s", drift.summary(items))
    return items


@step("restart_agents")
def restart_agents(ctx: RunContext, release: str) -> str:
    """Config-only Cilium upgrades do not restart the agents (rollOutCiliumPods defaults to false): restart them."""
    rel = ctx.stack.releases[release]
    agent = rel.workload("agent")
    if agent is None:
        return "no agent workload"
    with ctx.kube() as kube:
        kube.restart_daemonset(agent.namespace or rel.namespace, agent.name)
    get_run_logger().info(
        "restarted DaemonSet %s/%s so the agents load the new configuration",
        agent.namespace or rel.namespace,
        agent.name,
    )
    return agent.name


@step("scale_nodegroup")
def scale_nodegroup(ctx: RunContext, rendered: RenderedStack) -> NodegroupOutcome:
    plan = rendered.nodegroup
    ctx.aws().update_nodegroup_scaling(
        ctx.stack.cluster.name,
        plan.name,
        {"minSize": plan.min_size, "maxSize": plan.max_size, "desiredSize": plan.desired_size},
    )
    get_run_logger().info("nodegroup %s scaled back to %d", plan.name, plan.desired_size)
    return NodegroupOutcome(plan.name, NodegroupAction.scaled, None)


@step("remove_conflicting_daemonsets")
def remove_conflicting_daemonsets(ctx: RunContext) -> list[str]:
    removed = []
    with ctx.kube() as kube:
        for d in kube.list_daemonsets(KUBE_SYSTEM):
            name = d["metadata"]["name"]
            if name in CONFLICTING_DAEMONSETS:
                kube.delete_daemonset(KUBE_SYSTEM, name)
                removed.append(name)
    get_run_logger().warning("removed conflicting DaemonSet(s) %s", ", ".join(f"{KUBE_SYSTEM}/{r}" for r in removed))
    return removed
