"""Flow `install_stack`: the runbook as a DAG of retryable tasks and polling sensors.

    validate -> discover endpoint (sensor) -> cluster access -> render values -> chart repo -> preflight
      -> helm install cilium (long-running) ---------------------------------------------+
      -> Cilium objects exist (sensor) -> create nodegroup -> ACTIVE (sensor) -> nodes Ready (sensor)
                                                                                         |
      cilium install returns + nodes Ready -> hubble-generate-certs Job (sensor) -> Cilium rollouts (sensors)
      cilium installed + nodes Ready -> tetragon | cilium-dnsproxy (parallel) -> their rollouts (sensors)
      -> verification report

The Cilium install runs concurrently with the nodegroup (shared/design.md hazard 1): its post-install hook
Job needs a Ready node, and nodes become Ready only once Cilium's agent runs on them.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture

from tasks.adapters import kube as kube_adapter
from tasks.adapters.helm import cancel_scope
from tasks.errors import EksCiliumError, PermanentError
from tasks.model import Component, Stack, Workload, load_stack
from tasks.options import DEFAULT_OPTIONS, RunOptions
from tasks.preflight import RecoveryKind, plan_recovery
from tasks.render import RenderedStack
from tasks.results import ClusterEndpoint, NodegroupOutcome, PreflightResult, ReleaseOutcome, WorkloadOutcome
from tasks.steps.access import (
    add_chart_repository,
    discover_endpoint,
    prepare_cluster_access,
    render_values,
    validate_stack,
)
from tasks.steps.lock import cluster_lock
from tasks.steps.nodegroup import create_nodegroup, wait_for_nodegroup_active, wait_for_nodes_ready
from tasks.steps.preflight import run_preflight
from tasks.steps.releases import install_release, recover_release
from tasks.steps.report import plan_install, verify_stack
from tasks.steps.runtime import RunContext, cleanup_context, prepare_context
from tasks.steps.upgrade import record_install
from tasks.steps.workloads import check_workload, wait_for_cilium_objects

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class VerificationFailed(PermanentError):
    """The install ran but some of the runbook's checks failed; `result` holds the structured report."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result
        failed = [c for c in result.get("verification", {}).get("checks", []) if not c["ok"]]
        super().__init__(
            f"{len(failed)} verification check(s) failed",
            observed="; ".join(f"{c['name']}: expected {c['expected']}, observed {c['observed']}" for c in failed),
            hint="see the verification artifact of this run; re-run the flow once the cause is fixed",
        )


def resolve_stack(stack: Stack | None, options: RunOptions) -> Stack:
    if stack is not None:
        return stack
    config_dir = Path(options.config_dir)
    return load_stack(config_dir if config_dir.is_absolute() else PROJECT_ROOT / config_dir, options.environment)


def _wait_all(futures: list[PrefectFuture[Any]], scope: str) -> None:
    """Wait for every future; on the first failure stop this run's helm processes so nothing hangs on a hook
    that can no longer complete, then let the remaining tasks finish and raise the first error."""
    logger = get_run_logger()
    pending = list(futures)
    first_error: BaseException | None = None
    while pending:
        for f in list(pending):
            # A task whose upstream failed never reaches a final state (it stays Pending/NotReady), but its
            # thread does finish: the wrapped concurrent future tells when a task is over either way.
            wrapped = getattr(f, "wrapped_future", None)
            if wrapped.done() if wrapped is not None else f.state.is_final():
                f.wait(0)  # takes the final state from the finished thread, not from a possibly lagging API read
                state = f.state
                pending.remove(f)
                if (state.is_failed() or state.is_crashed()) and first_error is None:
                    try:
                        f.result()
                    except BaseException as e:  # re-raised below, after cleanup
                        first_error = e
                    stopped = cancel_scope(scope)
                    for argv in stopped:
                        logger.warning("stopped `%s` because an earlier step failed", argv)
        time.sleep(0.05)
    if first_error is not None:
        raise first_error


@flow(name="install-stack", log_prints=False, validate_parameters=True)
def install_stack(stack: Stack | None = None, options: RunOptions = DEFAULT_OPTIONS) -> dict[str, Any]:
    """Install Cilium Enterprise (Hubble, Timescape), the nodegroup, Tetragon and the DNS proxy HA on an EKS
    cluster created with default add-ons disabled, verify the runbook's expected output and report it."""
    kube_adapter.warm_up()
    stack = resolve_stack(stack, options)
    ctx = prepare_context(stack, options, PROJECT_ROOT)
    logger = get_run_logger()
    logger.info(
        "cluster %s in %s; releases %s; dry_run=%s",
        stack.cluster.name,
        stack.cluster.region,
        ", ".join(f"{n} {r.version}" for n, r in stack.releases.items() if r.enabled),
        options.dry_run,
    )

    try:
        validate_stack(ctx)
        # The cluster's lock is a Lease in the cluster: reach the cluster first, then hold the lock from preflight
        # on, so two runs never change one cluster at once; a dry run changes nothing and does not wait for it.
        cluster_f = discover_endpoint.submit(ctx)
        access_f = prepare_cluster_access.submit(ctx, cluster_f, return_state=False)
        _wait_all([cluster_f, access_f], str(ctx.workdir))
        with nullcontext() if options.dry_run else cluster_lock(stack, ctx.kubeconfig, options.lock_wait_seconds):
            return _install(ctx, stack, options, cluster_f, access_f)
    finally:
        cleanup_context(ctx)


@dataclass
class Submitted:
    """The install's submitted steps: every future, each one's meaning in words (for the report of a run that
    stopped early: which steps it never reached), and the release installs whose outcomes the result lists."""

    futures: list[PrefectFuture[Any]] = field(default_factory=list)
    labels: list[tuple[PrefectFuture[Any], str]] = field(default_factory=list)
    installs: list[PrefectFuture[ReleaseOutcome]] = field(default_factory=list)

    def add(self, future: PrefectFuture[Any], label: str | None = None) -> None:
        self.futures.append(future)
        if label is not None:
            self.labels.append((future, label))


def _install(
    ctx: RunContext,
    stack: Stack,
    options: RunOptions,
    cluster_f: PrefectFuture[ClusterEndpoint],
    access_f: PrefectFuture[str],
) -> dict[str, Any]:
    rendered_f = render_values.submit(ctx, cluster_f, wait_for=[access_f], return_state=False)
    repo_f = add_chart_repository.submit(ctx, wait_for=[rendered_f], return_state=False)
    pre_f = run_preflight.submit(ctx, cluster_f, rendered_f, wait_for=[access_f, repo_f], return_state=False)
    _wait_all([cluster_f, access_f, rendered_f, repo_f, pre_f], str(ctx.workdir))
    pre, rendered = pre_f.result(), rendered_f.result()
    base = {"cluster": stack.cluster.name, "region": stack.cluster.region, "endpoint": cluster_f.result().endpoint}
    if options.dry_run:
        plan = plan_install(ctx, rendered, pre)
        return {**base, "dry_run": True, "ok": True, "plan": [s.as_dict() for s in plan]}

    recovered, since_revision = _recover_left_releases(ctx, stack, pre)
    submitted = Submitted(futures=[cluster_f, access_f, rendered_f, repo_f, pre_f])
    nodegroup_f = _submit_cilium(ctx, stack, rendered, pre, pre_f, since_revision, submitted)
    try:
        _wait_all(submitted.futures, str(ctx.workdir))
    except EksCiliumError as e:
        # The report comes out whatever stopped the run: the rows as observed now, and the steps never reached.
        _attach_report(e, ctx, rendered, base, submitted.labels)
        raise

    # The versions first installed, kept once written: a later upgrade's upgradeCompatibility comes from here.
    record_install(ctx, {o.release: o.version for o in (f.result() for f in submitted.installs)})
    report = verify_stack(ctx, rendered)
    result = {
        **base,
        "dry_run": False,
        "ok": report.ok,
        "verification": report.as_dict(),
        "releases": {r.release: r.as_dict() for r in (f.result() for f in submitted.installs)},
        "nodegroup": nodegroup_f.result().as_dict(),
        "timeline": ctx.timeline(),
        "recovered": recovered,
    }
    if not report.ok:
        raise VerificationFailed(result)
    get_run_logger().info("install complete: every verification check passed")
    return result


def _recover_left_releases(ctx: RunContext, stack: Stack, pre: PreflightResult) -> tuple[list[str], int]:
    """Recover the releases an interrupted or failed run left pending-* or failed (the preflight let them through).
    Returns what was done, and the Cilium revision the Cilium objects sensor must see exceeded: it must not mistake
    a failed revision left behind (and upgraded over now) for this run's; after an uninstall it starts again."""
    recoveries = {
        name: plan_recovery(name, state.status, state.revision, state.last_deployed_revision)
        for name, state in pre.releases.items()
    }
    recovered = [recover_release(ctx, r) for r in recoveries.values() if r is not None]
    cilium_name = stack.cilium[0]
    cilium_recovery = recoveries.get(cilium_name)
    if cilium_recovery is not None and cilium_recovery.kind is RecoveryKind.uninstall:
        return recovered, 0
    state = pre.releases.get(cilium_name)
    return recovered, (state.revision or 0) if state is not None else 0


def _submit_cilium(
    ctx: RunContext,
    stack: Stack,
    rendered: RenderedStack,
    pre: PreflightResult,
    pre_f: PrefectFuture[PreflightResult],
    since_revision: int,
    submitted: Submitted,
) -> PrefectFuture[NodegroupOutcome]:
    """Cilium's install alongside the nodegroup (hazard 1), its Job and rollouts, then the other releases."""
    cilium_name, cilium_rel = stack.cilium
    ng = rendered.nodegroup
    expected = ng.desired_size
    cilium_f = install_release.submit(ctx, cilium_name, rendered, wait_for=[pre_f], return_state=False)
    objects_f = wait_for_cilium_objects.submit(ctx, since_revision, wait_for=[pre_f], return_state=False)
    nodegroup_f = create_nodegroup.submit(ctx, rendered, pre, wait_for=[objects_f], return_state=False)
    active_f = wait_for_nodegroup_active.submit(ctx, rendered, wait_for=[nodegroup_f], return_state=False)
    nodes_f = wait_for_nodes_ready.submit(ctx, rendered, wait_for=[active_f], return_state=False)
    submitted.installs.append(cilium_f)
    submitted.add(cilium_f, f"helm install {cilium_name}")
    submitted.add(objects_f, "Cilium objects applied")
    submitted.add(nodegroup_f, f"create nodegroup {ng.name}")
    submitted.add(active_f, f"nodegroup {ng.name} ACTIVE")
    submitted.add(nodes_f, f"{ng.desired_size} nodes Ready")
    # The certificate Job runs after the install's post-install hook is possible (nodes Ready); rollouts after it.
    jobs = [w for w in cilium_rel.workloads if w.kind.value == "Job"]
    certs_f = [_check(ctx, cilium_name, w, expected, [cilium_f, nodes_f], submitted) for w in jobs]
    for w in cilium_rel.workloads:
        if w.kind.value != "Job":
            _check(ctx, cilium_name, w, expected, [*certs_f, cilium_f, nodes_f], submitted)
    for component in (Component.tetragon, Component.dnsproxy):
        found = stack.release_for(component)
        if found is None or not found[1].enabled:
            continue
        name, rel = found
        # Tetragon and the DNS proxy need nodes whose Cilium agent runs (nodes Ready), not the Hubble certificates
        # that Cilium's install still waits for: starting them here overlaps their image pulls with that Job.
        inst = install_release.submit(ctx, name, rendered, wait_for=[objects_f, nodes_f], return_state=False)
        submitted.installs.append(inst)
        submitted.add(inst, f"helm install {name}")
        for w in rel.workloads:
            _check(ctx, name, w, expected, [inst], submitted)
    return nodegroup_f


def _check(
    ctx: RunContext,
    release: str,
    w: Workload,
    expected_nodes: int,
    wait_for: list[PrefectFuture[Any]],
    submitted: Submitted,
) -> PrefectFuture[WorkloadOutcome]:
    f = check_workload.submit(ctx, release, w.role, expected_nodes, wait_for=wait_for, return_state=False)
    submitted.add(f, f"{release}: {w.kind.value} {w.name}")
    return f


def _attach_report(
    error: EksCiliumError,
    ctx: RunContext,
    rendered: RenderedStack,
    base: dict[str, Any],
    labels: list[tuple[PrefectFuture[Any], str]],
) -> None:
    """Give a run that stopped early its verification report (`error.report`): the checks as observed now, which
    steps it never reached, and the error. Best effort: a cluster that cannot be read leaves the error alone."""
    not_reached = [label for f, label in labels if not f.state.is_final()]
    try:
        report = verify_stack(ctx, rendered, stopped_by=error.what, not_reached=not_reached)
    except Exception as e:  # the original error is what the user must see
        get_run_logger().warning("could not build the verification report after the failure: %s", e)
        return
    error.report = {
        **base,
        "dry_run": False,
        "ok": False,
        "verification": report.as_dict(),
        "error": str(error),
        "not_reached": not_reached,
        "timeline": ctx.timeline(),
    }


def run_install(stack: Stack | None, options: RunOptions) -> dict[str, Any]:
    """Run the flow and return its structured result, or raise the flow's error (used by the CLI)."""
    state = install_stack(stack=stack, options=options, return_state=True)
    if state.is_completed():
        return state.result()
    try:
        state.result()
    except EksCiliumError:
        raise
    raise RuntimeError(state.message or "the flow failed")
