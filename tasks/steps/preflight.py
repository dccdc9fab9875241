"""The preflight: every check that must pass before anything changes, reported together."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger

from tasks import helm_argv, preflight
from tasks.errors import (
    AccessDenied,
    CommandError,
    EksCiliumError,
    PermanentError,
    PreflightFailed,
)
from tasks.model import Release
from tasks.names import KUBE_SYSTEM, node_nodegroup
from tasks.nodegroup_plan import (
    NodegroupFacts,
    NodegroupPlan,
    NodegroupResolution,
    nodegroup_spec_differences,
    role_candidates,
)
from tasks.nodegroup_plan import resolve_nodegroup as resolve_nodegroup_request
from tasks.render import RenderedStack
from tasks.results import ClusterEndpoint, PreflightResult
from tasks.steps.releases import _last_deployed_revision
from tasks.steps.runtime import RunContext, step
from tasks.steps.threads import map_in_threads


def release_states(ctx: RunContext) -> dict[str, preflight.ReleaseState]:
    helm = ctx.helm()
    states: dict[str, preflight.ReleaseState] = {}
    for ns in sorted({r.namespace for r in ctx.stack.releases.values()}):
        try:
            argv = helm_argv.list_releases(ctx.helm_binary, ns, ctx.kubeconfig, helm_major=ctx.helm_major)
            listed = helm.run_json(argv, what=f"list releases in {ns}") or []
        except CommandError:
            listed = []
        for item in listed:
            name = item.get("name")
            rel = ctx.stack.releases.get(name)
            if rel is None or rel.namespace != ns:
                continue
            chart = str(item.get("chart", ""))
            states[name] = preflight.ReleaseState(
                name,
                ns,
                item.get("status"),
                int(item.get("revision") or 0),
                chart.rsplit("-", 1)[-1] if "-" in chart else None,
            )
    for name, state in states.items():
        if preflight.needs_recovery(state.status):
            state.last_deployed_revision = _last_deployed_revision(ctx, name, state.namespace)
    return states


def _chart_available(ctx: RunContext, name: str, rel: Release) -> str | None:
    helm = ctx.helm()
    if rel.chart.startswith(("oci://", "/", "./", "../")):
        try:
            helm.run(
                helm_argv.show_chart(ctx.helm_binary, rel.chart, rel.version),
                what=f"read chart {rel.chart} {rel.version}",
            )
        except CommandError as e:
            return f"chart {rel.chart} version {rel.version} is not available: {e.stderr.strip()[:300]}"
        return None
    found = (
        helm.run_json(helm_argv.search_repo(ctx.helm_binary, rel.chart, rel.version), what=f"search {rel.chart}") or []
    )
    if not any(str(f.get("version", "")).lstrip("v") == rel.version.lstrip("v") for f in found):
        return (
            f"chart {rel.chart} version {rel.version} is not in repository {ctx.stack.chart_repository.url}; "
            f"`helm search repo {rel.chart} --versions` lists what it has"
        )
    return None


def _render_check(ctx: RunContext, name: str, rel: Release) -> str | None:
    """`helm upgrade --install --dry-run=server`: renders against the cluster's API versions, changes nothing."""
    argv = helm_argv.upgrade_release(
        ctx.helm_binary, name, rel, ctx.values_file(name), kubeconfig=ctx.kubeconfig, timeout_seconds=60, dry_run=True
    )
    try:
        ctx.helm().run(argv, what=f"render {name} against the cluster")
    except CommandError as e:
        if e.transient:
            raise
        text = e.stderr.strip().splitlines()
        return text[0][:600] if text else f"helm exited {e.returncode}"
    return None


def resolve_nodegroup(ctx: RunContext, plan: NodegroupPlan, cluster: ClusterEndpoint) -> NodegroupResolution:
    """Read what the nodegroup's subnets and role are chosen from, then choose (nodegroup_plan.resolve_nodegroup)."""
    aws = ctx.aws()
    described: list[dict[str, Any]] = []
    tables: list[dict[str, Any]] = []
    if not plan.subnets and cluster.subnets:
        described = aws.describe_subnets(list(cluster.subnets))
        vpc = cluster.vpc or (described[0]["VpcId"] if described else None)
        if plan.private_networking and vpc:
            tables = aws.describe_route_tables(vpc)
    name = ctx.stack.cluster.name
    role_names = [] if plan.node_role else aws.list_role_names()
    candidates = role_candidates(plan, name, role_names)
    # An automatic choice needs exactly one candidate: looking up several would only be thrown away.
    lookups = candidates if plan.node_role or len(candidates) == 1 else []
    facts = NodegroupFacts(
        cluster_subnets=cluster.subnets,
        described_subnets=tuple(described),
        route_tables=tuple(tables),
        role_arns={r: aws.get_role_arn(r) for r in lookups},
        role_names=tuple(role_names),
    )
    return resolve_nodegroup_request(plan, name, facts)


def cluster_facts(ctx: RunContext, rendered: RenderedStack) -> preflight.ClusterFacts:
    """What the account and the cluster say, read once: add-ons, caller, RBAC, nodes, DaemonSets, CRDs, releases."""
    aws = ctx.aws()
    name = ctx.stack.cluster.name
    try:
        addons: list[str] | None = aws.list_addons(name)
    except AccessDenied:
        raise
    except PermanentError as e:
        addons = None
        get_run_logger().warning("could not list EKS add-ons (%s); relying on the DaemonSet check", e.what)
    try:
        principal = aws.caller_arn()
    except EksCiliumError:
        principal = "(unknown caller)"
    with ctx.kube() as kube:
        allowed, reason = kube.can_i("*", "*", "*")
        nodes = kube.list_nodes()
        facts = preflight.ClusterFacts(
            cluster=name,
            region=ctx.stack.cluster.region,
            principal=principal,
            addons=addons,
            kube_system_daemonsets=[d["metadata"]["name"] for d in kube.list_daemonsets(KUBE_SYSTEM)],
            nodes=[n["metadata"]["name"] for n in nodes],
            node_nodegroups={n["metadata"]["name"]: node_nodegroup(n) for n in nodes},
            own_nodegroup=rendered.nodegroup.name,
            servicemonitor_crd=kube.crd_exists(preflight.SERVICEMONITOR_CRD),
            admin_allowed=allowed,
            admin_reason=reason,
            cilium_release=ctx.stack.cilium[0],
            recover_pending=ctx.options.recover_pending,
            components={rname: rel.component for rname, rel in ctx.stack.releases.items()},
        )
    facts.releases = release_states(ctx)
    return facts


def _check_charts(ctx: RunContext, facts: preflight.ClusterFacts, enabled: dict[str, Release]) -> None:
    # One helm process per release: run concurrently, they are most of the preflight's time.
    available = map_in_threads(lambda item: _chart_available(ctx, *item), list(enabled.items()), name="preflight")
    for rname, missing in zip(enabled, available, strict=True):
        if missing:
            facts.missing_chart_versions[rname] = missing


def _check_renders(ctx: RunContext, facts: preflight.ClusterFacts, enabled: dict[str, Release]) -> None:
    """Render each release against the cluster, except where helm cannot yet: the chart is missing, or the release
    is left pending (helm refuses even a dry run) or never deployed (removed first); both are recovered first."""
    to_render = []
    for rname, rel in enabled.items():
        state = facts.releases.get(rname)
        if state is not None and preflight.recovered_before_install(state):
            get_run_logger().warning("release %s is %s: it will be recovered before the install", rname, state.status)
        elif rname not in facts.missing_chart_versions:
            to_render.append((rname, rel))
    errors = map_in_threads(lambda item: _render_check(ctx, *item), to_render, name="preflight")
    for (rname, _), err in zip(to_render, errors, strict=True):
        if err:
            facts.render_errors[rname] = err


@step("run_preflight")
def run_preflight(ctx: RunContext, cluster: ClusterEndpoint, rendered: RenderedStack) -> PreflightResult:
    """Every check that must pass before anything changes; all problems are reported together."""
    facts = cluster_facts(ctx, rendered)
    enabled = {rname: rel for rname, rel in ctx.stack.releases.items() if rel.enabled}
    _check_charts(ctx, facts, enabled)
    # Rendering against the cluster needs the chart; skip it where the chart is missing or the CRD check already fails.
    if not preflight.evaluate(facts, rendered.values):
        _check_renders(ctx, facts, enabled)
    resolution = resolve_nodegroup(ctx, rendered.nodegroup, cluster)
    facts.nodegroup_errors = list(resolution.problems)
    existing = ctx.aws().describe_nodegroup(ctx.stack.cluster.name, rendered.nodegroup.name)
    if existing is not None:
        facts.nodegroup_errors += preflight.existing_nodegroup_problems(
            rendered.nodegroup.name, nodegroup_spec_differences(rendered.nodegroup, existing)
        )
    problems = preflight.evaluate(facts, rendered.values)
    if problems:
        raise PreflightFailed(problems)
    get_run_logger().info(
        "preflight passed: no default add-ons, %d node(s), ServiceMonitor CRD present, caller is cluster-admin",
        len(facts.nodes),
    )
    return PreflightResult(resolution.request, existing is not None, dict(facts.releases))
