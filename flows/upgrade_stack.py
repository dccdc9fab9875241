"""Flow `upgrade_stack`: move the cluster to the stack's versions the way Cilium's upgrade guide prescribes.

    validate -> discover endpoint (sensor) -> cluster access -> releases' versions and history -> plan (pure)
      -> refused? fail before any change, listing the hops
      -> dry run? the plan
      -> under the cluster lock: install record -> render values (upgradeCompatibility) -> chart repository
         -> for each hop (DNS proxy HA, Cilium, Tetragon): [Cilium: pre-flight pre-pull] -> helm upgrade
            -> rollouts (sensors) -> verification -> on failure: helm rollback -> rollouts -> verification -> fail

Events: eks-cilium.upgrade.started | succeeded | rolled-back (resource = the cluster); the plan and each hop are
artifacts.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from flows.check_drift import cluster_label, cluster_resource
from flows.install_stack import PROJECT_ROOT, resolve_stack
from tasks import upgrade_plan
from tasks.adapters import kube as kube_adapter
from tasks.model import Component, Stack
from tasks.options import DEFAULT_OPTIONS, RunOptions
from tasks.steps.access import (
    add_chart_repository,
    discover_endpoint,
    prepare_cluster_access,
    render_values,
    validate_stack,
)
from tasks.steps.lock import cluster_lock
from tasks.steps.runtime import RunContext, artifact_key, cleanup_context, prepare_context
from tasks.steps.upgrade import (
    ReleaseState,
    UpgradeRefused,
    UpgradeRolledBack,
    read_release_states,
    record_install,
    require_ready,
    run_hop,
    stack_with,
)

UPGRADE_EVENT = "eks-cilium.upgrade"


@flow(name="upgrade-stack", log_prints=False, validate_parameters=True)
def upgrade_stack(
    stack: Stack | None = None,
    options: RunOptions = DEFAULT_OPTIONS,
    allow_downgrade: bool = False,
    prepull_patches: bool = True,
) -> dict[str, Any]:
    """Upgrade the releases to the stack's versions: one minor at a time, pre-pulled images, the DNS proxy before
    the agents roll, verification after each release and an automatic rollback when it fails."""
    kube_adapter.warm_up()
    stack = resolve_stack(stack, options)
    ctx = prepare_context(stack, options, PROJECT_ROOT)
    try:
        return _upgrade(ctx, stack, options, allow_downgrade, prepull_patches)
    finally:
        cleanup_context(ctx)


def plan_for(
    ctx: RunContext, allow_downgrade: bool = False, prepull_patches: bool = True
) -> tuple[upgrade_plan.UpgradePlan, dict[str, ReleaseState]]:
    """The upgrade plan from what the cluster runs (an artifact)."""
    states = read_release_states(ctx)
    plan = upgrade_plan.plan_upgrade(
        ctx.stack,
        {n: (s.live.version if s.live is not None else None) for n, s in states.items()},
        {n: s.previous_version for n, s in states.items()},
        allow_downgrade=allow_downgrade,
        prepull_patches=prepull_patches,
    )
    create_markdown_artifact(
        markdown=plan.markdown(cluster_label(ctx.stack)),
        key=artifact_key("upgrade-plan", ctx.stack.cluster.name),
        description=f"upgrade plan for {cluster_label(ctx.stack)}",
    )
    return plan, states


def _event(stack: Stack, what: str, payload: dict[str, Any]) -> None:
    emit_event(event=f"{UPGRADE_EVENT}.{what}", resource=cluster_resource(stack), payload=payload)


def _upgrade(
    ctx: RunContext, stack: Stack, options: RunOptions, allow_downgrade: bool, prepull_patches: bool
) -> dict[str, Any]:
    logger = get_run_logger()
    validate_stack(ctx)
    cluster = discover_endpoint(ctx)
    prepare_cluster_access(ctx, cluster)
    plan, states = plan_for(ctx, allow_downgrade, prepull_patches)
    base = {"cluster": stack.cluster.name, "region": stack.cluster.region, "plan": plan.as_dict()}
    if not plan.allowed:
        raise UpgradeRefused(
            f"the upgrade of {cluster_label(stack)} is refused; nothing was changed",
            observed="; ".join(plan.refusals),
            hint="change the versions in the stack as each refusal says, then run the upgrade again",
        )
    for hop in plan.hops:
        logger.info("plan: %s", hop)
    if options.dry_run or not plan.changes:
        return {**base, "dry_run": options.dry_run, "ok": True, "hops": []}
    _event(stack, "started", {"summary": f"{cluster_label(stack)}: " + "; ".join(map(str, plan.changes))})
    hops: list[dict[str, Any]] = []
    with cluster_lock(stack, ctx.kubeconfig, options.lock_wait_seconds):
        # A cluster installed before the record existed: what it runs now is the best knowledge of its first versions.
        record_install(ctx, {n: s.first_version for n, s in states.items() if s.first_version})
        rendered = render_values(ctx, cluster)
        add_chart_repository(ctx)
        # Each hop is verified against what the cluster should run by then: the hops done at their new versions,
        # the ones still to come at the versions they run now.
        versions = {h.release: h.from_version for h in plan.changes if h.from_version}
        for hop in plan.changes:
            if hop.component is Component.cilium:
                # The DNS proxy HA must serve while the agents restart: ready before they roll, whether it moved.
                require_ready(ctx, Component.dnsproxy, rendered)
            versions[hop.release] = hop.to_version
            try:
                record = run_hop(replace(ctx, stack=stack_with(stack, versions)), hop, rendered, states[hop.release])
            except UpgradeRolledBack as e:
                _event(stack, "rolled-back", {"summary": str(e.what), "hop": hop.as_dict(), "failed": e.observed})
                e.report = {**base, "ok": False, "hops": hops, "rolled_back": hop.as_dict(), "error": str(e)}
                raise
            hops.append(record)
            create_markdown_artifact(
                markdown=f"# Upgrade hop: {hop}\n\n" + "\n".join(f"- {d}" for d in record["done"]),
                key=artifact_key(f"upgrade-{hop.release}", stack.cluster.name),
                description=str(hop),
            )
    summary = f"{cluster_label(stack)}: upgraded " + ", ".join(f"{h.release} to {h.to_version}" for h in plan.changes)
    _event(stack, "succeeded", {"summary": summary, "hops": [h.as_dict() for h in plan.changes]})
    logger.info("%s", summary)
    return {**base, "dry_run": False, "ok": True, "hops": hops}


def run_upgrade(
    stack: Stack | None, options: RunOptions, allow_downgrade: bool = False, prepull_patches: bool = True
) -> dict[str, Any]:
    """Run the flow and return its result, or raise the flow's error (used by the CLI and tests)."""
    state = upgrade_stack(
        stack=stack,
        options=options,
        allow_downgrade=allow_downgrade,
        prepull_patches=prepull_patches,
        return_state=True,
    )
    result = state.result()
    assert isinstance(result, dict), f"upgrade-stack returned {type(result).__name__}"
    return result
