"""Flow `teardown_stack`: remove the stack from a test cluster in reverse order — DNS proxy, Tetragon, the
nodegroup (with its sensor), Cilium — guarded by a confirmation that must equal the cluster name. Idempotent:
what is already gone is reported as absent."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.install_stack import PROJECT_ROOT, resolve_stack
from tasks import helm_argv
from tasks.errors import CommandError, ConfigError
from tasks.locking import cluster_lock
from tasks.model import Component, Stack
from tasks.options import DEFAULT_OPTIONS, RunOptions
from tasks.readiness import Verdict
from tasks.steps import (
    Ctx,
    cleanup_context,
    discover_endpoint,
    live_release,
    prepare_cluster_access,
    prepare_context,
    render_values,
    sense,
    step,
    validate_stack,
)


@step("uninstall_release")
def uninstall_release(ctx: Ctx, name: str) -> str:
    rel = ctx.stack.releases[name]
    if live_release(ctx, name, rel) is None:
        return f"release {name}: absent"
    argv = helm_argv.uninstall(ctx.helm_binary, name, rel.namespace, timeout_seconds=rel.timeout_seconds, kubeconfig=ctx.kubeconfig)
    try:
        ctx.helm().run(argv, what=f"uninstall release {name}", timeout=rel.timeout_seconds + 60)
    except CommandError as e:
        if "not found" not in e.stderr:
            raise
        return f"release {name}: absent"
    get_run_logger().info("release %s uninstalled from %s", name, rel.namespace)
    return f"release {name}: uninstalled"


@step("delete_nodegroup")
def delete_nodegroup(ctx: Ctx, nodegroup: str) -> str:
    aws = ctx.aws()
    if aws.describe_nodegroup(ctx.stack.cluster.name, nodegroup) is None:
        return f"nodegroup {nodegroup}: absent"
    aws.delete_nodegroup(ctx.stack.cluster.name, nodegroup)

    def probe() -> Verdict:
        ng = aws.describe_nodegroup(ctx.stack.cluster.name, nodegroup)
        if ng is None:
            return Verdict(True, "deleted")
        if ng.get("status") == "DELETE_FAILED":
            return Verdict(False, "DELETE_FAILED", failed=True,
                           details=[f"{i.get('code')}: {i.get('message')}" for i in (ng.get("health") or {}).get("issues") or []])
        return Verdict(False, str(ng.get("status")))

    sense(ctx, f"nodegroup {nodegroup} deleted", probe, ctx.options.timeouts.nodegroup,
          hint="check the nodegroup in the EKS console; instances may be protected or the ASG may be stuck")
    return f"nodegroup {nodegroup}: deleted"


@flow(name="teardown-stack", log_prints=False, validate_parameters=True)
def teardown_stack(confirm: str, stack: Stack | None = None, options: RunOptions = DEFAULT_OPTIONS) -> dict[str, Any]:
    """Remove DNS proxy, Tetragon, the nodegroup and Cilium (in that order). `confirm` must be the cluster name."""
    stack = resolve_stack(stack, options)
    if confirm != stack.cluster.name:
        raise ConfigError(f"teardown of {stack.cluster.name} was not confirmed", observed=f"confirm={confirm!r}",
                          hint=f"pass confirm={stack.cluster.name!r} to remove the stack from this cluster")
    ctx = prepare_context(stack, options, PROJECT_ROOT)
    try:
        validate_stack(ctx)
        with cluster_lock(stack, options.lock_wait_seconds):
            cluster = discover_endpoint(ctx)
            prepare_cluster_access(ctx, cluster)
            rendered = render_values(ctx, cluster)
            done: list[str] = []
            order = [Component.dnsproxy, Component.tetragon]
            for component in order:
                found = stack.release_for(component)
                if found is not None:
                    done.append(uninstall_release(ctx, found[0]))
            done.append(delete_nodegroup(ctx, rendered.nodegroup.name))
            done.append(uninstall_release(ctx, stack.cilium[0]))
        get_run_logger().info("teardown of %s: %s", stack.cluster.name, "; ".join(done))
        return {"cluster": stack.cluster.name, "region": stack.cluster.region, "actions": done}
    finally:
        cleanup_context(ctx)
