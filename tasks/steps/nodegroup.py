"""The nodegroup: CreateNodegroup (or eksctl), the ACTIVE and nodes-Ready sensors and their diagnosis."""

from __future__ import annotations

from prefect import get_run_logger

from tasks import readiness
from tasks.errors import (
    PermanentError,
)
from tasks.nodegroup_plan import NodegroupPlan, nodegroup_spec_differences
from tasks.options import NodegroupMethod
from tasks.readiness import Verdict
from tasks.render import RenderedStack
from tasks.results import NodegroupAction, NodegroupOutcome, PreflightResult
from tasks.steps.runtime import RunContext, sense, sensor, step


@step("create_nodegroup")
def create_nodegroup(ctx: RunContext, rendered: RenderedStack, pre: PreflightResult) -> NodegroupOutcome:
    plan = rendered.nodegroup
    aws = ctx.aws()
    logger = get_run_logger()
    existing = aws.describe_nodegroup(ctx.stack.cluster.name, plan.name)
    if existing is not None:
        diffs = nodegroup_spec_differences(plan, existing)
        if diffs:
            raise PermanentError(
                f"nodegroup {plan.name} exists with a different spec",
                observed="; ".join(diffs),
                hint="align configs/nodegroup.yaml with it, or replace the nodegroup deliberately",
            )
        logger.info(
            "nodegroup %s already exists with the desired spec (%s); nothing to do", plan.name, existing.get("status")
        )
        return NodegroupOutcome(plan.name, NodegroupAction.unchanged, existing.get("status"))
    ctx.mark("create nodegroup", "start")
    if ctx.options.nodegroup_method is NodegroupMethod.eksctl:
        from tasks.adapters.eksctl import create_nodegroup_with_eksctl

        create_nodegroup_with_eksctl(str(ctx.config_dir / ctx.stack.nodegroup.file))
    else:
        request = pre.nodegroup_request
        if request is None:  # the preflight resolves it whenever the nodegroup does not exist yet
            raise PermanentError(
                f"nodegroup {plan.name} does not exist and the preflight resolved no CreateNodegroup request",
                hint="run the flow again: the preflight resolves the subnets and the node role",
            )
        aws.create_nodegroup(request)
        logger.info(
            "nodegroup %s: CreateNodegroup %s x%d in %s",
            plan.name,
            ",".join(plan.instance_types),
            plan.desired_size,
            ", ".join(request["subnets"]),
        )
    ctx.mark("create nodegroup", "done")
    return NodegroupOutcome(plan.name, NodegroupAction.created, "CREATING")


@sensor("wait_for_nodegroup_active")
def wait_for_nodegroup_active(ctx: RunContext, rendered: RenderedStack) -> Verdict:
    """Sensor: nodegroup ACTIVE; CREATE_FAILED / DEGRADED fail at once with the health issues (the boto3 waiter
    would ignore DEGRADED and wait 40 minutes)."""
    aws = ctx.aws()
    name = rendered.nodegroup.name
    return sense(
        ctx,
        f"nodegroup {name} ACTIVE",
        lambda: readiness.nodegroup(aws.describe_nodegroup(ctx.stack.cluster.name, name)),
        ctx.options.timeouts.nodegroup,
        hint="read the health issues above; for NodeCreationFailure check the node role policies and "
        "that Cilium's agent "
        "pods run (nodes without a CNI never become Ready)",
        diagnose=lambda: node_diagnosis(ctx),
    )


@sensor("wait_for_nodes_ready")
def wait_for_nodes_ready(ctx: RunContext, rendered: RenderedStack) -> Verdict:
    """Sensor: the nodegroup's nodes Ready (at least the desired number)."""
    plan = rendered.nodegroup
    hint = "nodes stay NotReady until the Cilium agent runs on them: check the cilium pods below"
    return _sense_nodes(ctx, plan, f"{plan.desired_size} nodes Ready", hint, exact=False)


@sensor("wait_for_nodes_count")
def wait_for_nodes_count(ctx: RunContext, rendered: RenderedStack) -> str:
    """Sensor, after scaling: exactly the desired number of nodes, all Ready."""
    plan = rendered.nodegroup
    title = f"nodegroup {plan.name} at {plan.desired_size} Ready nodes"
    return _sense_nodes(ctx, plan, title, "check the nodegroup in the EKS console", exact=True).summary


def _sense_nodes(ctx: RunContext, plan: NodegroupPlan, title: str, hint: str, *, exact: bool) -> Verdict:
    def probe() -> Verdict:
        with ctx.kube() as kube:
            return readiness.nodes(kube.list_nodes(), expected=plan.desired_size, nodegroup=plan.name, exact=exact)

    return sense(ctx, title, probe, ctx.options.timeouts.nodes, hint=hint, diagnose=lambda: node_diagnosis(ctx))


def node_diagnosis(ctx: RunContext) -> list[str]:
    name, rel = ctx.stack.cilium
    agent = rel.workload("agent")
    with ctx.kube() as kube:
        lines = [
            f"node {n['metadata']['name']}: {'Ready' if readiness.node_ready(n) else 'NotReady'}"
            for n in kube.list_nodes()
        ]
        if agent:
            lines += readiness.pod_problems(kube.list_pods(agent.namespace or rel.namespace, agent.selector))
    return lines
