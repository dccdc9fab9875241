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
from tasks.network import pick_node_role, private_subnets
from tasks.nodegroup_plan import NodegroupPlan, create_nodegroup_request, nodegroup_spec_differences
from tasks.render import RenderedStack
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
    argv = helm_argv.upgrade_install(
        ctx.helm_binary,
        name,
        rel.chart,
        rel.version,
        rel.namespace,
        ctx.values_file(name),
        timeout_seconds=60,
        create_namespace=rel.create_namespace,
        kubeconfig=ctx.kubeconfig,
        dry_run=True,
    )
    try:
        ctx.helm().run(argv, what=f"render {name} against the cluster")
    except CommandError as e:
        if e.transient:
            raise
        text = e.stderr.strip().splitlines()
        return text[0][:600] if text else f"helm exited {e.returncode}"
    return None


def resolve_nodegroup(
    ctx: RunContext, plan: NodegroupPlan, cluster: dict[str, Any]
) -> tuple[dict[str, Any] | None, list[str]]:
    """The CreateNodegroup request with subnets and role resolved, or the problems preventing it."""
    aws = ctx.aws()
    problems: list[str] = []
    subnets = list(plan.subnets)
    if not subnets:
        described = aws.describe_subnets(cluster["subnets"]) if cluster["subnets"] else []
        if plan.private_networking:
            vpc = cluster.get("vpc") or (described[0]["VpcId"] if described else None)
            tables = aws.describe_route_tables(vpc) if vpc else []
            subnets = private_subnets(described, tables)
            if not subnets:
                problems.append(
                    f"nodegroup {plan.name}: privateNetworking is true but none of the cluster's subnets "
                    f"({', '.join(cluster['subnets']) or 'none'}) is private (each routes 0.0.0.0/0 to an internet "
                    "gateway). Fix: add private subnets to the cluster, or list subnets in the nodegroup file"
                )
        else:
            subnets = [s["SubnetId"] for s in described]
    role = plan.node_role
    if role and not role.startswith("arn:"):
        arn = aws.get_role_arn(role)
        if arn is None:
            problems.append(
                f"nodegroup {plan.name}: IAM role {role!r} does not exist. Fix: create it with "
                "AmazonEKSWorkerNodePolicy, AmazonEC2ContainerRegistryPullOnly and AmazonEKS_CNI_Policy"
            )
        role = arn
    elif not role:
        candidates = pick_node_role(aws.list_role_names(), ctx.stack.cluster.name)
        if len(candidates) == 1:
            role = aws.get_role_arn(candidates[0])
        else:
            found = (
                "candidates: " + ", ".join(candidates)
                if candidates
                else "no role name contains the cluster name and node"
            )
            problems.append(
                f"nodegroup {plan.name}: cannot choose the node IAM role automatically ({found}). "
                "Fix: set nodegroup.node_role in the stack to the role's name or ARN"
            )
    if problems or not role:
        return None, problems
    return create_nodegroup_request(plan, ctx.stack.cluster.name, subnets, role), []


@step("run_preflight")
def run_preflight(ctx: RunContext, cluster: dict[str, Any], rendered: RenderedStack) -> dict[str, Any]:
    """Every check that must pass before anything changes; all problems are reported together."""
    logger = get_run_logger()
    aws = ctx.aws()
    name = ctx.stack.cluster.name
    try:
        addons: list[str] | None = aws.list_addons(name)
    except AccessDenied:
        raise
    except PermanentError as e:
        addons = None
        logger.warning("could not list EKS add-ons (%s); relying on the DaemonSet check", e.what)
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
            kube_system_daemonsets=[d["metadata"]["name"] for d in kube.list_daemonsets("kube-system")],
            nodes=[n["metadata"]["name"] for n in nodes],
            node_nodegroups={
                n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get("eks.amazonaws.com/nodegroup", "")
                for n in nodes
            },
            own_nodegroup=rendered.nodegroup.name,
            servicemonitor_crd=kube.crd_exists(preflight.SERVICEMONITOR_CRD),
            admin_allowed=allowed,
            admin_reason=reason,
            cilium_release=ctx.stack.cilium[0],
            recover_pending=ctx.options.recover_pending,
        )
    facts.releases = release_states(ctx)
    enabled = {rname: rel for rname, rel in ctx.stack.releases.items() if rel.enabled}
    # One helm process per release: run concurrently, they are most of the preflight's time.
    available = map_in_threads(lambda item: _chart_available(ctx, *item), list(enabled.items()), name="preflight")
    for rname, missing in zip(enabled, available, strict=True):
        if missing:
            facts.missing_chart_versions[rname] = missing
    # Rendering against the cluster needs the chart; skip it where the chart is missing or the CRD check already fails.
    blocking = preflight.evaluate(facts, rendered.values)
    if not blocking:
        to_render = []
        for rname, rel in enabled.items():
            state = facts.releases.get(rname)
            recovery = (
                None
                if state is None
                else preflight.plan_recovery(rname, state.status, state.revision, state.last_deployed_revision)
            )
            if state is not None and recovery and recovery.kind is not preflight.RecoveryKind.upgrade_over:
                # helm refuses even a dry run while the release is pending, and a release that never deployed is
                # removed first; both are recovered before the install.
                logger.warning("release %s is %s: it will be recovered before the install", rname, state.status)
            elif rname not in facts.missing_chart_versions:
                to_render.append((rname, rel))
        for (rname, _), err in zip(
            to_render, map_in_threads(lambda item: _render_check(ctx, *item), to_render, name="preflight"), strict=True
        ):
            if err:
                facts.render_errors[rname] = err
    ng_request, ng_problems = resolve_nodegroup(ctx, rendered.nodegroup, cluster)
    facts.nodegroup_errors = ng_problems
    existing = aws.describe_nodegroup(name, rendered.nodegroup.name)
    if existing is not None:
        diffs = nodegroup_spec_differences(rendered.nodegroup, existing)
        if diffs:
            facts.nodegroup_errors.append(
                f"nodegroup {rendered.nodegroup.name} exists with a different spec ({'; '.join(diffs)}). "
                "This flow never changes "
                "a nodegroup silently. Fix: align configs/nodegroup.yaml with it, or replace the nodegroup deliberately"
            )
    problems = preflight.evaluate(facts, rendered.values)
    if problems:
        raise PreflightFailed(problems)
    logger.info(
        "preflight passed: no default add-ons, %d node(s), ServiceMonitor CRD present, caller is cluster-admin",
        len(facts.nodes),
    )
    return {
        "nodegroup_request": ng_request,
        "nodegroup_exists": existing is not None,
        "releases": {k: vars(v) for k, v in facts.releases.items()},
    }
