"""Drift tasks: observe the live stack without waiting (helm's records, every object the releases render, workloads,
nodes, nodegroup, CNI conflicts), and the repairs that are not plain install steps (server-side apply of what helm
left drifted, the agents' restart after their configuration changed, nodegroup scaling, removing aws-node)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prefect import get_run_logger

from tasks import drift, readiness, verify
from tasks.adapters.kube import Kube
from tasks.errors import EksCiliumError
from tasks.manifest import RenderedObject, RenderedRelease
from tasks.model import Release
from tasks.names import KUBE_SYSTEM, node_nodegroup
from tasks.object_drift import (
    FieldDrift,
    IgnoreRule,
    ObjectRef,
    ignored_paths,
    ref_of,
    release_drift_rows,
    without,
)
from tasks.preflight import CONFLICTING_DAEMONSETS
from tasks.render import RenderedStack
from tasks.results import LiveRelease, NodegroupAction, NodegroupOutcome
from tasks.steps.releases import release_record
from tasks.steps.runtime import RunContext, step
from tasks.steps.threads import map_in_threads
from tasks.steps.workloads import workload_verdict

HELM_RECORDS = "owner!=helm"  # helm's release records are large Secrets; no release renders one
FIELD_MANAGER = "eks-cilium"  # who a repair's server-side apply is recorded as


def certs_ttl_noise(kube: Kube, namespace: str, job_name: str) -> bool:
    """The Hubble certificate hook Job deletes itself 30 minutes after finishing; it is not drift when its CronJob
    is still there to renew the certificates."""
    return kube.get("CronJob", namespace, job_name) is not None


def ignore_rules(rel: Release) -> list[IgnoreRule]:
    """The stack's noise rules of a release (on top of tasks.object_drift's defaults)."""
    return [
        IgnoreRule(tuple(r.paths), r.target.kind, r.target.namespace, r.target.name, r.reason) for r in rel.drift_ignore
    ]


def read_live_objects(kube: Kube, objects: Iterable[RenderedObject]) -> dict[ObjectRef, dict[str, Any]]:
    """The live objects of these rendered ones: one LIST per kind and namespace (in threads), not a GET each."""
    groups = sorted({(o.api_version, o.kind, o.namespace) for o in objects if o.api_version})

    def read(group: tuple[str, str, str]) -> list[dict[str, Any]]:
        api_version, kind, namespace = group
        return kube.list_objects(api_version, kind, namespace, HELM_RECORDS if kind == "Secret" else None) or []

    listed = map_in_threads(read, groups, max_workers=8, name="drift-list")
    return {ref_of(obj, ns): obj for (_, _, ns), items in zip(groups, listed, strict=True) for obj in items}


def release_object_rows(
    kube: Kube, release: RenderedRelease, rel: Release, live: dict[ObjectRef, dict[str, Any]] | None = None
) -> list[FieldDrift]:
    """Object drift of one release (its objects read now unless `live` has them)."""
    found = read_live_objects(kube, release.objects) if live is None else live
    return release_drift_rows(release.objects, found, ignore_rules(rel))


def _records(ctx: RunContext) -> dict[str, tuple[LiveRelease, RenderedRelease] | None]:
    names = [n for n, rel in ctx.stack.releases.items() if rel.enabled]
    found = map_in_threads(lambda n: release_record(ctx, n, ctx.stack.releases[n]), names, name="drift-helm")
    return dict(zip(names, found, strict=True))


def agent_config_item(kube: Kube, ctx: RunContext, config: dict[str, Any] | None) -> drift.DriftItem | None:
    """Cilium's config drift checker, read from every running agent's metrics; None (no row) when the agents do not
    expose it: the checker is off in cilium-config, or the metrics cannot be read (logged)."""
    name, rel = ctx.stack.cilium
    agent = rel.workload("agent")
    port = drift.metrics_port(config)
    if agent is None or port is None:
        return None
    namespace = agent.namespace or rel.namespace
    pods = [p for p in kube.list_pods(namespace, agent.selector) if (p.get("status") or {}).get("phase") == "Running"]

    def read(pod: dict[str, Any]) -> int | None:
        text = kube.pod_get(namespace, pod["metadata"]["name"], port, "metrics")
        return None if text is None else drift.config_delta(text)

    try:
        deltas = map_in_threads(read, pods, max_workers=8, name="drift-metrics")
    except EksCiliumError as e:
        get_run_logger().warning("the agents' %s could not be read (%s): no row", drift.DRIFT_METRIC, e.what)
        return None
    if not pods or any(d is None for d in deltas):
        get_run_logger().info("the agents do not expose %s: no row", drift.DRIFT_METRIC)
        return None
    return drift.agent_config_drift(
        name,
        {
            f"{namespace}/{p['metadata']['name']} on {p['spec'].get('nodeName')}": int(d or 0)
            for p, d in zip(pods, deltas, strict=True)
        },
    )


@step("observe_drift")
def observe_drift(ctx: RunContext, rendered: RenderedStack) -> list[drift.DriftItem]:
    """Every drift check, read once (no waiting): releases (helm's record and every object they render against the
    live one), workloads, nodes, nodegroup, CNI conflicts."""
    items: list[drift.DriftItem] = []
    stack = ctx.stack
    plan = rendered.nodegroup
    records = _records(ctx)
    for name, record in records.items():
        rel = stack.releases[name]
        live_rel = None if record is None else record[0]
        items.append(drift.release_drift(name, rel.version, live_rel, rendered.values[name]))
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
        installed = {n: r[1] for n, r in records.items() if r is not None}
        live = read_live_objects(kube, [o for r in installed.values() for o in r.objects])
        for name, release in installed.items():
            rows = release_object_rows(kube, release, stack.releases[name], live)
            # Right after the release's own check: the report reads release by release.
            at = next(i for i, item in enumerate(items) if item.check == drift.release_check(name)) + 1
            items.insert(at, drift.objects_drift(name, rows, len(release.objects)))
        if stack.cilium[1].enabled and stack.cilium[0] in installed:
            checker = agent_config_item(kube, ctx, None if cilium_cm is None else cilium_cm.get("data"))
            if checker is not None:
                items.append(checker)
    if stack.cilium[1].enabled:
        items.append(drift.cluster_identity_drift(stack, None if cilium_cm is None else cilium_cm.get("data") or {}))
    items.append(drift.nodes_drift(len(ready), len(members), plan.desired_size))
    items.append(drift.nodegroup_drift(plan, live_ng))
    items.append(drift.cni_drift(addons, ds))
    get_run_logger().info("drift: %s", drift.sentence(f"{stack.cluster.name} ({stack.cluster.region})", items))
    return items


@step("apply_drifted_objects")
def apply_drifted_objects(ctx: RunContext, release: str) -> list[str]:
    """After the release's helm upgrade: server-side apply (forced) every object still drifted from the manifest, as
    helm's record now holds it. Returns the objects applied."""
    rel = ctx.stack.releases[release]
    record = release_record(ctx, release, rel)
    if record is None:
        return []
    rendered = record[1]
    with ctx.kube() as kube:
        rows = release_object_rows(kube, rendered, rel)
        refs = sorted({r.ref for r in rows}, key=str)
        for ref in refs:
            obj = rendered.find(ref.kind, ref.namespace, ref.name)
            assert obj is not None, ref  # the rows are of the release's own objects
            # What drift leaves out, a repair leaves alone (HPA replicas, renewed certificates, the stack's rules).
            body = without(obj.body, ignored_paths(obj, rendered.objects, ignore_rules(rel)))
            if obj.namespace:
                body["metadata"] = {**(body.get("metadata") or {}), "namespace": obj.namespace}
            kube.apply(body, FIELD_MANAGER, force=True)
    if refs:
        get_run_logger().warning(
            "release %s: helm left %d object(s) drifted; server-side applied them: %s",
            release,
            len(refs),
            ", ".join(map(str, refs)),
        )
    return [str(r) for r in refs]


def agent_state(ctx: RunContext, release: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(cilium-config's data, the agent DaemonSet's pod template) as they are live: what the agents run from."""
    rel = ctx.stack.releases[release]
    agent = rel.workload("agent")
    with ctx.kube() as kube:
        cm = kube.get("ConfigMap", *verify.cilium_config_map(ctx.stack))
        ds = kube.get("DaemonSet", agent.namespace or rel.namespace, agent.name) if agent is not None else None
    template = None if ds is None else (ds.get("spec") or {}).get("template")
    if isinstance(template, dict):
        # Our own restart's annotation is not configuration.
        notes = dict((template.get("metadata") or {}).get("annotations") or {})
        notes.pop("kubectl.kubernetes.io/restartedAt", None)
        template = {**template, "metadata": {**(template.get("metadata") or {}), "annotations": notes}}
    return (None if cm is None else dict(cm.get("data") or {})), template


@step("restart_agents")
def restart_agents(ctx: RunContext, release: str) -> str:
    """A change of cilium-config alone does not restart the agents (rollOutCiliumPods defaults to false): restart
    them."""
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
