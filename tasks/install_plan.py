"""A dry run's plan (pure): from the live releases and the preflight, what the install would do, step by step,
with the command each step runs and what it would change."""

from __future__ import annotations

from typing import Any

from tasks import helm_argv
from tasks import markdown as md
from tasks.diff import diff_values
from tasks.model import Release, Stack
from tasks.nodegroup_plan import NodegroupPlan
from tasks.results import LiveRelease, PlanAction, PlanStep, PreflightResult


def release_step(name: str, rel: Release, desired: dict[str, Any], live: LiveRelease | None) -> PlanStep:
    command = helm_argv.shell_line(helm_argv.upgrade_release("helm", name, rel, f"{name}-values.yaml"))
    if live is None:
        return PlanStep(f"release {name}", PlanAction.install, command)
    changes = [str(d) for d in diff_values(live.config, desired)]
    if not live.runs(rel.version):
        changes.insert(0, f"chart version: live {live.version} -> desired {rel.version}")
    if live.deployed and not changes:
        return PlanStep(f"release {name}", PlanAction.unchanged, command)
    return PlanStep(f"release {name}", PlanAction.upgrade, command, tuple(changes))


def nodegroup_step(ng: NodegroupPlan, pre: PreflightResult) -> PlanStep:
    return PlanStep(
        f"nodegroup {ng.name}",
        PlanAction.unchanged if pre.nodegroup_exists else PlanAction.create,
        f"CreateNodegroup {ng.name}: {','.join(ng.instance_types)} x{ng.desired_size}",
        request=pre.nodegroup_request,
    )


def plan_steps(
    stack: Stack,
    values: dict[str, dict[str, Any]],
    nodegroup: NodegroupPlan,
    live: dict[str, LiveRelease | None],
    pre: PreflightResult,
) -> list[PlanStep]:
    """The install's steps in order: the first release (Cilium), the nodegroup, then the other releases."""
    steps = [
        release_step(name, rel, values[name], live.get(name)) for name, rel in stack.releases.items() if rel.enabled
    ]
    steps.insert(1 if steps else 0, nodegroup_step(nodegroup, pre))
    return steps


def plan_markdown(cluster: str, steps: list[PlanStep]) -> str:
    rows = [(s.step, s.action.value, f"`{s.command}`") for s in steps]
    lines = md.report(f"Plan for {cluster} (dry run: nothing was changed)", None, ("step", "action", "command"), rows)
    return "\n".join(lines + md.details([(f"{s.step}: changes", s.changes) for s in steps]))
