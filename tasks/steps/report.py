"""What a run reports: the verification of the runbook's expected output, and a dry run's plan."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger

from tasks import install_plan, readiness, verify
from tasks.names import KUBE_SYSTEM
from tasks.readiness import Verdict
from tasks.render import RenderedStack
from tasks.results import PlanStep, PreflightResult, Verification
from tasks.steps.preflight import release_states
from tasks.steps.releases import live_release, rendered_release
from tasks.steps.runtime import RunContext, artifact_key, step
from tasks.steps.threads import map_in_threads
from tasks.steps.workloads import workload_verdict


def observe_stack(ctx: RunContext) -> verify.Observed:
    """Read everything the verification checks look at (no waiting)."""
    states = release_states(ctx)
    installed = [(n, r) for n, r in ctx.stack.releases.items() if r.enabled and n in states]
    renders = map_in_threads(lambda item: rendered_release(ctx, *item), installed, name="verify")
    rendered_by = {n: r for (n, _), r in zip(installed, renders, strict=True)}
    with ctx.kube() as kube:
        nodes = kube.list_nodes()
        expected = len([n for n in nodes if readiness.node_ready(n)])
        workloads: dict[tuple[str, str], Verdict] = {}
        agent_pods: dict[str, list[dict[str, Any]]] = {}
        monitors: dict[str, list[str] | None] = {}
        expected_replicas: dict[tuple[str, str], int] = {}
        for rname, rel in ctx.stack.releases.items():
            if not rel.enabled:
                continue
            rendered = rendered_by.get(rname)
            for w in rel.workloads:
                ns = w.namespace or rel.namespace
                workloads[(rname, w.role)] = workload_verdict(kube, w, ns, expected, rendered)
                replicas = rendered.expected_replicas(w.kind.value, ns, w.name) if rendered is not None else None
                if replicas is not None:
                    expected_replicas[(rname, w.role)] = replicas
                if w.per_node:
                    agent_pods[f"{rname}/{w.role}"] = kube.list_pods(ns, w.selector)
            if rel.service_monitors and rel.namespace not in monitors:
                items = kube.list_custom("monitoring.coreos.com", "v1", "servicemonitors", rel.namespace)
                monitors[rel.namespace] = None if items is None else [i["metadata"]["name"] for i in items]
        ds = [d["metadata"]["name"] for d in kube.list_daemonsets(KUBE_SYSTEM)]
        cilium_cm = kube.get("ConfigMap", *verify.cilium_config_map(ctx.stack))
    return verify.Observed(
        nodes=nodes,
        workloads=workloads,
        agent_pods=agent_pods,
        cilium_config=None if cilium_cm is None else cilium_cm.get("data") or {},
        service_monitors=monitors,
        expected_replicas=expected_replicas,
        kube_system_daemonsets=ds,
        releases={
            k: {"status": v.status, "version": v.chart_version, "revision": v.revision} for k, v in states.items()
        },
    )


@step("verify_stack")
def verify_stack(
    ctx: RunContext, rendered: RenderedStack, stopped_by: str | None = None, not_reached: list[str] | None = None
) -> Verification:
    """The runbook's expected output, checked: a markdown artifact and the structured result. For a run that
    stopped early, `stopped_by` says why and `not_reached` lists the steps it never got to."""
    from prefect.artifacts import create_markdown_artifact

    checks = verify.build_checks(ctx.stack, rendered.nodegroup.desired_size, observe_stack(ctx))
    title = f"Verification of {ctx.stack.cluster.name} ({ctx.stack.cluster.region})"
    extra = None
    if stopped_by is not None:
        extra = [
            f"**The run stopped early**: {stopped_by}",
            "",
            "Steps never reached: " + (", ".join(not_reached) if not_reached else "none"),
        ]
    create_markdown_artifact(
        markdown=verify.markdown(title, checks, extra),
        key=artifact_key("verification", ctx.stack.cluster.name),
        description=title,
    )
    logger = get_run_logger()
    for c in checks:
        (logger.info if c.ok else logger.error)(
            "%s %s: expected %s, observed %s", "ok  " if c.ok else "FAIL", c.name, c.expected, c.observed
        )
    return Verification(tuple(checks), stopped_by, tuple(not_reached or ()))


@step("plan_install")
def plan_install(ctx: RunContext, rendered: RenderedStack, pre: PreflightResult) -> list[PlanStep]:
    """Dry run: what the install would do, step by step, and what would change against the live releases."""
    from prefect.artifacts import create_markdown_artifact

    enabled = [(name, rel) for name, rel in ctx.stack.releases.items() if rel.enabled]
    lives = map_in_threads(lambda item: live_release(ctx, *item), enabled, name="plan")
    steps = install_plan.plan_steps(
        ctx.stack, rendered.values, rendered.nodegroup, {n: r for (n, _), r in zip(enabled, lives, strict=True)}, pre
    )
    create_markdown_artifact(
        markdown=install_plan.plan_markdown(ctx.stack.cluster.name, steps),
        key=artifact_key("plan", ctx.stack.cluster.name),
        description=f"dry-run plan for {ctx.stack.cluster.name}",
    )
    for s in steps:
        get_run_logger().info(
            "plan: %s -> %s%s", s.step, s.action.value, f" ({len(s.changes)} change(s))" if s.changes else ""
        )
    return steps
