"""Flow `teardown_stack`: remove the stack from a test cluster in reverse order — DNS proxy, Tetragon, the
nodegroup (with its sensor), Cilium — guarded by a confirmation that must equal the cluster name. Idempotent:
what is already gone is reported as absent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.install_stack import PROJECT_ROOT, resolve_stack
from tasks import helm_argv
from tasks import markdown as md
from tasks.errors import ConfigError, ReleaseNotFound
from tasks.model import Component, Stack
from tasks.options import DEFAULT_OPTIONS, RunOptions
from tasks.readiness import Verdict
from tasks.steps.access import discover_endpoint, prepare_cluster_access, render_values, validate_stack
from tasks.steps.lock import cluster_lock
from tasks.steps.releases import live_release
from tasks.steps.runtime import RunContext, artifact_key, cleanup_context, prepare_context, sense, step
from tasks.steps.upgrade import remove_install_record


@dataclass(frozen=True)
class TeardownStep:
    kind: Literal["release", "nodegroup"]
    name: str


def teardown_order(stack: Stack, nodegroup: str) -> list[TeardownStep]:
    """What a teardown removes, in order (pure): the DNS proxy and Tetragon, the nodegroup (its nodes need Cilium
    until they are gone), Cilium last."""
    order = [
        TeardownStep("release", found[0])
        for c in (Component.dnsproxy, Component.tetragon)
        if (found := stack.release_for(c)) is not None
    ]
    return [*order, TeardownStep("nodegroup", nodegroup), TeardownStep("release", stack.cilium[0])]


@task(name="plan_teardown", cache_policy=NO_CACHE)
def plan_teardown(ctx: RunContext, order: list[TeardownStep]) -> list[dict[str, str]]:
    """Dry run of a teardown: what would be removed, in order, and what is already absent. Reads only."""
    from prefect.artifacts import create_markdown_artifact

    plan: list[dict[str, str]] = []
    for s in order:
        if s.kind == "release":
            rel = ctx.stack.releases[s.name]
            live = live_release(ctx, s.name, rel)
            present = live is not None
            detail = (
                f"helm uninstall {s.name} -n {rel.namespace} (chart {live.version}, revision {live.revision}, "
                f"{live.status})"
                if live
                else f"release {s.name} is not installed"
            )
        else:
            ng = ctx.aws().describe_nodegroup(ctx.stack.cluster.name, s.name)
            present = ng is not None
            detail = (
                f"DeleteNodegroup {s.name} ({ng.get('status')}), then wait until it is gone"
                if ng
                else f"nodegroup {s.name} does not exist"
            )
        plan.append({"step": f"{s.kind} {s.name}", "action": "remove" if present else "absent", "detail": detail})
    lines = md.report(
        f"Teardown plan for {ctx.stack.cluster.name} (dry run: nothing was changed)",
        None,
        ("#", "step", "action", "detail"),
        [(i, p["step"], p["action"], p["detail"]) for i, p in enumerate(plan, 1)],
    )
    create_markdown_artifact(
        markdown="\n".join(lines),
        key=artifact_key("teardown-plan", ctx.stack.cluster.name),
        description=f"teardown dry run for {ctx.stack.cluster.name}",
    )
    logger = get_run_logger()
    for p in plan:
        logger.info("teardown plan: %s -> %s (%s)", p["step"], p["action"], p["detail"])
    return plan


@step("uninstall_release")
def uninstall_release(ctx: RunContext, name: str) -> str:
    rel = ctx.stack.releases[name]
    if live_release(ctx, name, rel) is None:
        return f"release {name}: absent"
    argv = helm_argv.uninstall(
        ctx.helm_binary, name, rel.namespace, timeout_seconds=rel.timeout_seconds, kubeconfig=ctx.kubeconfig
    )
    try:
        ctx.helm().run(argv, what=f"uninstall release {name}", timeout=rel.timeout_seconds + 60)
    except ReleaseNotFound:
        return f"release {name}: absent"
    get_run_logger().info("release %s uninstalled from %s", name, rel.namespace)
    return f"release {name}: uninstalled"


@step("delete_nodegroup")
def delete_nodegroup(ctx: RunContext, nodegroup: str) -> str:
    aws = ctx.aws()
    if aws.describe_nodegroup(ctx.stack.cluster.name, nodegroup) is None:
        return f"nodegroup {nodegroup}: absent"
    aws.delete_nodegroup(ctx.stack.cluster.name, nodegroup)

    def probe() -> Verdict:
        ng = aws.describe_nodegroup(ctx.stack.cluster.name, nodegroup)
        if ng is None:
            return Verdict(True, "deleted")
        if ng.get("status") == "DELETE_FAILED":
            return Verdict(
                False,
                "DELETE_FAILED",
                failed=True,
                details=[f"{i.get('code')}: {i.get('message')}" for i in (ng.get("health") or {}).get("issues") or []],
            )
        return Verdict(False, str(ng.get("status")))

    sense(
        ctx,
        f"nodegroup {nodegroup} deleted",
        probe,
        ctx.options.timeouts.nodegroup,
        hint="check the nodegroup in the EKS console; instances may be protected or the ASG may be stuck",
    )
    return f"nodegroup {nodegroup}: deleted"


@flow(name="teardown-stack", log_prints=False, validate_parameters=True)
def teardown_stack(confirm: str, stack: Stack | None = None, options: RunOptions = DEFAULT_OPTIONS) -> dict[str, Any]:
    """Remove DNS proxy, Tetragon, the nodegroup and Cilium (in that order). `confirm` must be the cluster name."""
    stack = resolve_stack(stack, options)
    if confirm != stack.cluster.name:
        raise ConfigError(
            f"teardown of {stack.cluster.name} was not confirmed",
            observed=f"confirm={confirm!r}",
            hint=f"pass confirm={stack.cluster.name!r} to remove the stack from this cluster",
        )
    ctx = prepare_context(stack, options, PROJECT_ROOT)
    try:
        validate_stack(ctx)
        cluster = discover_endpoint(ctx)
        prepare_cluster_access(ctx, cluster)
        rendered = render_values(ctx, cluster)
        order = teardown_order(stack, rendered.nodegroup.name)
        if options.dry_run:
            # A dry run changes nothing, so it takes no lock: it reports what a teardown would remove, in order.
            plan = plan_teardown(ctx, order)
            return {
                "cluster": stack.cluster.name,
                "region": stack.cluster.region,
                "dry_run": True,
                "plan": plan,
                "actions": [],
            }
        with cluster_lock(stack, ctx.kubeconfig, options.lock_wait_seconds):  # a Lease in the cluster: access first
            done = [
                uninstall_release(ctx, s.name) if s.kind == "release" else delete_nodegroup(ctx, s.name) for s in order
            ]
            done.append(remove_install_record(ctx))
        get_run_logger().info("teardown of %s: %s", stack.cluster.name, "; ".join(done))
        return {"cluster": stack.cluster.name, "region": stack.cluster.region, "dry_run": False, "actions": done}
    finally:
        cleanup_context(ctx)
