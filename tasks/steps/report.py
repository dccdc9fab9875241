"""What a run reports: the verification of the runbook's expected output, and a dry run's plan."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger

from tasks import helm_argv, readiness, verify
from tasks.diff import diff_values
from tasks.readiness import Verdict
from tasks.render import RenderedStack
from tasks.steps.preflight import release_states
from tasks.steps.releases import _desired_unchanged, rendered_release
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
        ds = [d["metadata"]["name"] for d in kube.list_daemonsets("kube-system")]
        cilium_cm = kube.get("ConfigMap", *verify.cilium_config_map(ctx.stack))
    return verify.Observed(
        nodes=nodes,
        workloads=workloads,
        agent_pods=agent_pods,
        service_monitors=monitors,
        expected_replicas=expected_replicas,
        kube_system_daemonsets=ds,
        cilium_config=None if cilium_cm is None else cilium_cm.get("data") or {},
        releases={
            k: {"status": v.status, "version": v.chart_version, "revision": v.revision} for k, v in states.items()
        },
    )


@step("verify_stack")
def verify_stack(
    ctx: RunContext, rendered: RenderedStack, stopped_by: str | None = None, not_reached: list[str] | None = None
) -> dict[str, Any]:
    """The runbook's expected output, checked: a markdown artifact and the structured result. For a run that
    stopped early, `stopped_by` says why and `not_reached` lists the steps it never got to."""
    from prefect.artifacts import create_markdown_artifact

    checks = verify.build_checks(ctx.stack, rendered.nodegroup.desired_size, observe_stack(ctx))
    ok = all(c.ok for c in checks) and stopped_by is None
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
    return {"ok": ok, "checks": verify.as_dicts(checks), "stopped_by": stopped_by, "not_reached": not_reached or []}


@step("plan_install")
def plan_install(ctx: RunContext, rendered: RenderedStack, pre: dict[str, Any]) -> dict[str, Any]:
    """Dry run: what the install would do, step by step, and what would change against the live releases."""
    from prefect.artifacts import create_markdown_artifact

    steps: list[dict[str, Any]] = []
    for name, rel in ctx.stack.releases.items():
        if not rel.enabled:
            continue
        same, status = _desired_unchanged(ctx, name, rel, rendered.values[name])
        argv = helm_argv.upgrade_install(
            "helm",
            name,
            rel.chart,
            rel.version,
            rel.namespace,
            f"{name}-values.yaml",
            timeout_seconds=rel.timeout_seconds,
            create_namespace=rel.create_namespace,
        )
        if status is None:
            action, changes = "install", list[str]()
        elif same:
            action, changes = "unchanged", []
        else:
            live_version = status.get("version")
            changes = [str(d) for d in diff_values(status.get("config") or {}, rendered.values[name])]
            if str(live_version).lstrip("v") != rel.version.lstrip("v"):
                changes.insert(0, f"chart version: live {live_version} -> desired {rel.version}")
            action = "upgrade"
        steps.append(
            {"step": f"release {name}", "action": action, "command": helm_argv.shell_line(argv), "changes": changes}
        )
    ng = rendered.nodegroup
    steps.insert(
        1 if steps else 0,
        {
            "step": f"nodegroup {ng.name}",
            "action": "unchanged" if pre.get("nodegroup_exists") else "create",
            "command": f"CreateNodegroup {ng.name}: {','.join(ng.instance_types)} x{ng.desired_size}",
            "changes": [],
            "request": pre.get("nodegroup_request"),
        },
    )
    lines = [
        f"# Plan for {ctx.stack.cluster.name} (dry run: nothing was changed)",
        "",
        "| step | action | command |",
        "|---|---|---|",
    ]
    for s in steps:
        lines.append(f"| {s['step']} | {s['action']} | `{s['command']}` |")
    for s in steps:
        if s["changes"]:
            lines += ["", f"## {s['step']}: changes", *[f"- `{c}`" for c in s["changes"]]]
    create_markdown_artifact(
        markdown="\n".join(lines),
        key=artifact_key("plan", ctx.stack.cluster.name),
        description=f"dry-run plan for {ctx.stack.cluster.name}",
    )
    for s in steps:
        get_run_logger().info(
            "plan: %s -> %s%s", s["step"], s["action"], f" ({len(s['changes'])} change(s))" if s["changes"] else ""
        )
    return {"steps": steps}
