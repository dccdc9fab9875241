"""Flow `check_drift`: compare the live cluster with the desired stack and report (or repair) what changed.

report (default): no mutation and no lock; a markdown artifact with one row per check, the structured
result, and a Prefect event `eks-cilium.drift.detected` (resource = the cluster) when anything drifted.
repair: takes the cluster lock and re-runs only the affected install steps through the same tasks as
`install_stack` (a drifted release is upgraded even when helm's record is as desired: the upgrade reverts live edits;
what helm leaves drifted is server-side applied), then reports again. Cilium's agents are restarted only when the
repair changed cilium-config and not their pod template (the chart does not roll them; a DaemonSet change does).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event
from prefect.states import Completed, Failed, State

from flows.install_stack import PROJECT_ROOT, resolve_stack
from tasks import drift
from tasks.adapters import kube as kube_adapter
from tasks.errors import DriftDetected, EksCiliumError
from tasks.model import Component, Stack
from tasks.names import DRIFTED_STATE, KUBE_SYSTEM
from tasks.options import DEFAULT_OPTIONS, DriftMode, RunOptions
from tasks.render import RenderedStack
from tasks.steps.access import (
    add_chart_repository,
    discover_endpoint,
    prepare_cluster_access,
    render_values,
    validate_stack,
)
from tasks.steps.drift import (
    agent_state,
    apply_drifted_objects,
    observe_drift,
    remove_conflicting_daemonsets,
    restart_agents,
    scale_nodegroup,
)
from tasks.steps.lock import cluster_lock
from tasks.steps.nodegroup import wait_for_nodes_count
from tasks.steps.releases import install_release
from tasks.steps.runtime import RunContext, artifact_key, cleanup_context, prepare_context
from tasks.steps.upgrade import upgrade_releases
from tasks.steps.workloads import check_workload

DRIFT_EVENT = "eks-cilium.drift.detected"


class DriftFound(DriftDetected):
    """Raised when `fail_on_drift` is set and the report is not clean; `result` holds the report."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result
        super().__init__(
            f"{DriftDetected.MARKER} on {result['cluster']}",
            observed="; ".join(result["summary"]["problems"]),
            hint="run check-drift with mode=repair, or install-stack, to converge",
        )


def cluster_resource(stack: Stack) -> dict[str, str]:
    return {
        "prefect.resource.id": f"eks-cilium.cluster.{stack.cluster.region}.{stack.cluster.name}",
        "prefect.resource.name": stack.cluster.name,
        "eks-cilium.region": stack.cluster.region,
    }


def cluster_label(stack: Stack) -> str:
    return f"{stack.cluster.name} ({stack.cluster.region})"


def _report(stack: Stack, items: list[drift.DriftItem], title: str) -> dict[str, Any]:
    label = cluster_label(stack)
    create_markdown_artifact(
        markdown=drift.markdown(title, items, label),
        key=artifact_key("drift", stack.cluster.name),
        description=drift.sentence(label, items),
    )
    return {
        "summary": drift.summary(items, label),
        "checks": drift.as_dicts(items),
        "objects": drift.object_rows(items),
    }


@flow(name="check-drift", log_prints=False, validate_parameters=True)
def check_drift(
    stack: Stack | None = None,
    options: RunOptions = DEFAULT_OPTIONS,
    mode: DriftMode = DriftMode.report,
    fail_on_drift: bool = False,
) -> dict[str, Any] | State[Any]:
    """Report (or repair) differences between the live cluster and the desired stack. A report that is not clean
    ends in a state named `Drifted` (Failed with `fail_on_drift`, else Completed with the report)."""
    kube_adapter.warm_up()
    stack = resolve_stack(stack, options)
    ctx = prepare_context(stack, options, PROJECT_ROOT)
    try:
        result = _check(ctx, stack, options, mode, fail_on_drift)
    except DriftFound as e:
        # The state's name is what the runs list shows and the fleet reads: `Drifted`, failed or not.
        return Failed(name=DRIFTED_STATE, message=str(e), data=e)
    finally:
        cleanup_context(ctx)
    if not result["summary"]["clean"]:
        return Completed(name=DRIFTED_STATE, message=result["summary"]["sentence"][:1000], data=result)
    return result


def _check(ctx: RunContext, stack: Stack, options: RunOptions, mode: DriftMode, fail_on_drift: bool) -> dict[str, Any]:
    logger = get_run_logger()
    validate_stack(ctx)
    cluster = discover_endpoint(ctx)
    prepare_cluster_access(ctx, cluster)
    rendered = render_values(ctx, cluster)
    items = observe_drift(ctx, rendered)
    title = f"Drift report for {stack.cluster.name} ({stack.cluster.region})"
    result: dict[str, Any] = {
        "cluster": stack.cluster.name,
        "region": stack.cluster.region,
        "mode": mode.value,
        **_report(stack, items, title),
    }
    if not result["summary"]["clean"]:
        summary = result["summary"]
        event = emit_event(
            event=DRIFT_EVENT,
            resource=cluster_resource(stack),
            payload={
                # A sentence, so that a notification's body can be `{{ event.payload.summary }}`.
                "summary": summary["sentence"],
                "counts": {k: summary[k] for k in (drift.OK, drift.DRIFTED, drift.BROKEN)},
                "mode": mode.value,
                "drifted": [i.check for i in items if not i.ok],
                "problems": summary["problems"],
                "objects": result["objects"],
            },
        )
        result["event"] = {"event": DRIFT_EVENT, "id": str(event.id) if event else None}
        logger.warning("drift detected: %s", "; ".join(result["summary"]["problems"]))
    if mode is DriftMode.repair and not result["summary"]["clean"]:
        with cluster_lock(stack, ctx.kubeconfig, options.lock_wait_seconds):
            repaired, failures = repair(ctx, rendered, items)
        after = observe_drift(ctx, rendered)
        result["repaired"] = repaired
        result["before"] = {k: result[k] for k in ("summary", "checks", "objects")}
        result.update(_report(stack, after, f"Drift report for {stack.cluster.name} after repair"))
        logger.info("after repair: %s", result["summary"])
        if failures:
            # Every workload was checked and the after-repair report made; the first failure is the run's error.
            result["errors"] = [str(f) for f in failures]
            failures[0].report = result
            raise failures[0]
    if fail_on_drift and not result["summary"]["clean"]:
        raise DriftFound(result)
    return result


def repair(
    ctx: RunContext, rendered: RenderedStack, items: list[drift.DriftItem]
) -> tuple[list[str], list[EksCiliumError]]:
    """Re-run only the steps the drifted checks name, through the install flow's own tasks. Every workload of a
    repaired release is checked even when one fails; a release that fails to install stops the releases after it
    (Cilium comes first: the others need it). Returns what was done and what failed."""
    done: list[str] = []
    wanted = [i.repair for i in items if i.repair is not None]
    if any(isinstance(r, drift.RemoveConflictingDaemonSets) for r in wanted):
        done += [f"removed {KUBE_SYSTEM}/{d}" for d in remove_conflicting_daemonsets(ctx)]
    if any(isinstance(r, drift.ScaleNodegroup) for r in wanted):
        scale_nodegroup(ctx, rendered)
        wait_for_nodes_count(ctx, rendered)
        done.append("nodegroup scaled back")
    upgrades = [n for n in ctx.stack.releases if drift.UpgradeRelease(n) in wanted]
    # Several checks may name one release (its values, its objects, the cluster identity): one upgrade each.
    releases = [n for n in ctx.stack.releases if drift.ReinstallRelease(n) in wanted and n not in upgrades]
    restarted: set[str] = set()
    cni = ctx.stack.cilium[0]
    # Cilium first when it is reinstalled: every other release needs a working CNI, an upgrade's hops too.
    failures = _reinstall(ctx, rendered, [n for n in releases if n == cni], done, restarted)
    if upgrades and not failures:
        add_chart_repository(ctx)
        try:
            upgrade_done, upgraded = upgrade_releases(ctx, rendered, upgrades)
            done += upgrade_done
            restarted |= {n for n in upgraded if n == cni}  # an upgrade rolls the agents
        except EksCiliumError as e:
            failures.append(e)
            done.append(f"upgrade: FAILED ({e.what})")
    if not failures or cni not in releases:
        failures += _reinstall(ctx, rendered, [n for n in releases if n != cni], done, restarted)
    for r in wanted:
        # The agents run without part of cilium-config: restart them (unless the reinstall just did) and wait.
        if isinstance(r, drift.RestartAgents) and r.release not in restarted and not failures:
            restart_agents(ctx, r.release)
            restarted.add(r.release)
            done.append(f"release {r.release}: agents restarted")
            try:
                check_workload(ctx, r.release, "agent", rendered.nodegroup.desired_size)
            except EksCiliumError as e:
                failures.append(e)
                done.append(f"release {r.release}: agents not ready after the restart ({e.what})")
    return done, failures


def _reinstall(
    ctx: RunContext, rendered: RenderedStack, releases: list[str], done: list[str], restarted: set[str]
) -> list[EksCiliumError]:
    """Upgrade the releases in the stack's order (Cilium first), server-side apply what helm left drifted, restart
    Cilium's agents when their configuration changed and nothing else restarts them; check every workload of each."""
    failures: list[EksCiliumError] = []
    if releases:
        add_chart_repository(ctx)
    for name in releases:
        rel = ctx.stack.releases[name]
        agents = rel.component is Component.cilium and rel.workload("agent") is not None
        before = agent_state(ctx, name) if agents else (None, None)
        try:
            outcome = install_release(ctx, name, rendered, force=True)
            applied = apply_drifted_objects(ctx, name)
        except EksCiliumError as e:
            failures.append(e)
            done.append(f"release {name}: FAILED ({e.what})")
            break
        done.append(f"release {name}: {outcome.action.value} (revision {outcome.revision})")
        if applied:
            done.append(f"release {name}: server-side applied {', '.join(applied)}")
        if agents:
            after = agent_state(ctx, name)
            if drift.agents_need_restart(before[0], after[0], before[1], after[1]):
                restart_agents(ctx, name)
                restarted.add(name)
                done.append(f"release {name}: agents restarted")
            elif before[1] != after[1]:
                restarted.add(name)  # their pod template changed: the DaemonSet rolls them itself
        for w in rel.workloads:
            if w.kind.value == "Job":
                continue
            try:
                check_workload(ctx, name, w.role, rendered.nodegroup.desired_size)
            except EksCiliumError as e:
                failures.append(e)
                done.append(f"release {name}: {w.kind.value} {w.name} not ready ({e.what})")
    return failures


def run_drift(stack: Stack | None, options: RunOptions, mode: DriftMode) -> dict[str, Any]:
    """Run the flow and return its report, or raise the flow's error (used by the CLI)."""
    state = check_drift(stack=stack, options=options, mode=mode, return_state=True)
    result = state.result()
    assert isinstance(result, dict), f"check-drift returned {type(result).__name__}"
    return result
