"""Upgrade tasks: what the cluster runs (versions, the previous deployed revision, the install record), Cilium's
pre-flight image pre-pull, the hop itself with its rollouts and verification, and the automatic rollback."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger

from tasks import helm_argv, readiness, upgrade_plan
from tasks.errors import EksCiliumError, PermanentError, ReleaseNotFound
from tasks.model import Component, Stack
from tasks.names import CILIUM_AGENT_DAEMONSET, INSTALL_RECORD, KUBE_SYSTEM, PREFLIGHT_DAEMONSET, PREFLIGHT_RELEASE
from tasks.render import RenderedStack, dump_yaml, write_private
from tasks.results import LiveRelease, Verification
from tasks.steps.releases import install_release, live_release
from tasks.steps.report import verify_stack
from tasks.steps.runtime import RunContext, sense, sensor, step
from tasks.steps.threads import map_in_threads
from tasks.steps.workloads import check_workload


class UpgradeRefused(PermanentError):
    """The plan has hops Cilium's upgrade guide does not allow; nothing was changed."""


class UpgradeRolledBack(PermanentError):
    """A release failed its verification after the upgrade and was rolled back to its previous revision."""


@dataclass(frozen=True)
class ReleaseState:
    """What the cluster runs for one release, for planning and rolling back."""

    live: LiveRelease | None
    previous_revision: int | None = None
    previous_version: str | None = None
    first_version: str | None = None  # the oldest revision helm still keeps (its history is capped)


def read_release_states(ctx: RunContext) -> dict[str, ReleaseState]:
    """Each enabled release's live record and its previous deployed revision (helm history), read at once."""
    names = [n for n, r in ctx.stack.releases.items() if r.enabled]

    def read(name: str) -> ReleaseState:
        rel = ctx.stack.releases[name]
        live = live_release(ctx, name, rel)
        if live is None:
            return ReleaseState(None)
        try:
            history = ctx.helm().run_json(
                helm_argv.history(ctx.helm_binary, name, rel.namespace, ctx.kubeconfig), what=f"history of {name}"
            )
        except ReleaseNotFound:
            history = []
        found = upgrade_plan.previous_deployed(history or [], live.revision)
        first = upgrade_plan.first_version(history or []) or live.version
        previous_revision, previous_version = found or (None, None)
        return ReleaseState(live, previous_revision, previous_version, first)

    return dict(zip(names, map_in_threads(read, names, name="upgrade-read"), strict=True))


@step("record_install")
def record_install(ctx: RunContext, versions: dict[str, str]) -> dict[str, str]:
    """Record the chart version each release was first installed with (kept once written): the upgrade's
    `upgradeCompatibility` comes from here. Returns the record."""
    with ctx.kube() as kube:
        current = kube.get("ConfigMap", KUBE_SYSTEM, INSTALL_RECORD)
        known = dict((current or {}).get("data") or {})
        missing = {k: v for k, v in versions.items() if k not in known}
        if missing:
            kube.merge_config_map(KUBE_SYSTEM, INSTALL_RECORD, missing)
            get_run_logger().info(
                "recorded first-installed versions in ConfigMap %s/%s: %s",
                KUBE_SYSTEM,
                INSTALL_RECORD,
                ", ".join(f"{k} {v}" for k, v in missing.items()),
            )
    return {**known, **missing}


@step("remove_install_record")
def remove_install_record(ctx: RunContext) -> str:
    """Teardown: the record goes with the releases (a new install starts a new history)."""
    with ctx.kube() as kube:
        removed = kube.delete_config_map(KUBE_SYSTEM, INSTALL_RECORD)
    return f"install record {KUBE_SYSTEM}/{INSTALL_RECORD}: {'removed' if removed else 'absent'}"


@sensor("wait_for_preflight_pull")
def wait_for_preflight_pull(ctx: RunContext) -> str:
    """Cilium's pre-flight DaemonSet ready on as many nodes as the agents run on: the new images are pulled."""
    rel = ctx.stack.cilium[1]
    agent = rel.workload("agent")
    where = (
        ((agent.namespace or rel.namespace), agent.name) if agent is not None else (KUBE_SYSTEM, CILIUM_AGENT_DAEMONSET)
    )
    with ctx.kube() as kube:
        agents = kube.get("DaemonSet", *where) or {}
        nodes = int((agents.get("status") or {}).get("desiredNumberScheduled") or 0)

        def probe() -> readiness.Verdict:
            return readiness.daemonset(kube.get("DaemonSet", KUBE_SYSTEM, PREFLIGHT_DAEMONSET), expected_nodes=nodes)

        def diagnose() -> list[str]:
            pods = kube.list_pods(KUBE_SYSTEM, {"k8s-app": PREFLIGHT_DAEMONSET})
            lines = readiness.pod_problems(pods) if pods else [f"no pods of DaemonSet {PREFLIGHT_DAEMONSET} yet"]
            names = [PREFLIGHT_DAEMONSET] + [p["metadata"]["name"] for p in pods]
            lines += [
                f"event {e.get('type')} {e.get('reason')} {e['involvedObject'].get('name')}: {e.get('message')}"
                for e in kube.list_events(KUBE_SYSTEM, names, limit=8)
            ]
            return lines

        verdict = sense(
            ctx,
            probe=probe,
            what=f"pre-flight DaemonSet {KUBE_SYSTEM}/{PREFLIGHT_DAEMONSET} (image pre-pull on {nodes} nodes)",
            timeout=ctx.options.timeouts.rollout,
            hint="the new Cilium image cannot be pulled on some node: see the pods' events; nothing was upgraded",
            diagnose=diagnose,
        )
    return verdict.summary


@step("prepull_cilium_images")
def prepull_cilium_images(ctx: RunContext, release: str, rendered: RenderedStack) -> str:
    """The upgrade guide's pre-flight check: install the chart in pre-flight mode (its DaemonSet pulls the new agent
    image on every node), wait until it is ready where the agents run, remove it. Removed on failure too."""
    rel = ctx.stack.releases[release]
    values_file = ctx.values_file(PREFLIGHT_RELEASE)
    write_private(Path(values_file), dump_yaml(upgrade_plan.preflight_values(rendered.values[release])))
    helm = ctx.helm()
    argv = helm_argv.upgrade_install(
        ctx.helm_binary,
        PREFLIGHT_RELEASE,
        rel.chart,
        rel.version,
        KUBE_SYSTEM,
        values_file,
        timeout_seconds=rel.timeout_seconds,
        kubeconfig=ctx.kubeconfig,
    )
    logger = get_run_logger()
    logger.info("pre-pull: %s", helm_argv.shell_line(argv))
    try:
        helm.run(argv, what=f"install the pre-flight release {PREFLIGHT_RELEASE}", timeout=rel.timeout_seconds + 60)
        summary = wait_for_preflight_pull(ctx)
    finally:
        remove = helm_argv.uninstall(
            ctx.helm_binary, PREFLIGHT_RELEASE, KUBE_SYSTEM, timeout_seconds=120, kubeconfig=ctx.kubeconfig
        )
        with contextlib.suppress(ReleaseNotFound):  # the install itself may have failed before creating it
            helm.run(remove, what=f"remove the pre-flight release {PREFLIGHT_RELEASE}", timeout=180)
    logger.info("pre-pull done (%s); pre-flight release removed", summary)
    return summary


@step("rollback_release")
def rollback_release(ctx: RunContext, release: str, revision: int) -> str:
    """`helm rollback` to the previous deployed revision."""
    rel = ctx.stack.releases[release]
    argv = helm_argv.rollback(
        ctx.helm_binary,
        release,
        rel.namespace,
        revision,
        timeout_seconds=rel.timeout_seconds,
        kubeconfig=ctx.kubeconfig,
    )
    get_run_logger().warning("rolling back: %s", helm_argv.shell_line(argv))
    ctx.helm().run(argv, what=f"roll back release {release} to revision {revision}", timeout=rel.timeout_seconds + 60)
    return f"release {release}: rolled back to revision {revision}"


def _rollouts(ctx: RunContext, release: str, rendered: RenderedStack) -> list[EksCiliumError]:
    """Every workload of the release watched by its sensor; the failures (all are watched)."""
    failures: list[EksCiliumError] = []
    for w in ctx.stack.releases[release].workloads:
        try:
            check_workload(ctx, release, w.role, rendered.nodegroup.desired_size)
        except EksCiliumError as e:
            failures.append(e)
    return failures


def require_ready(ctx: RunContext, component: Component, rendered: RenderedStack) -> None:
    """The component's workloads rolled out (sensors), or the upgrade stops here, before the next hop changes
    anything."""
    found = ctx.stack.release_for(component)
    if found is None or not found[1].enabled:
        return
    failures = _rollouts(ctx, found[0], rendered)
    if failures:
        raise PermanentError(
            f"release {found[0]} is not ready, and the next hop needs it; nothing more was upgraded",
            observed="; ".join(e.what for e in failures),
            hint="fix it first (see its pods' events), then run the upgrade again",
        )


def _failed_rows(report: Verification, stack: Stack, release: str) -> list[str]:
    """The failed rows that concern this release or the cluster as a whole (not another release's own rows: those
    are that release's hop to judge)."""
    others = {n for n, r in stack.releases.items() if r.enabled and n != release}
    return [
        f"{c.name}: expected {c.expected}, observed {c.observed}"
        for c in report.checks
        if not c.ok and c.name.split(":", 1)[0].removeprefix("release ") not in others
    ]


def stack_with(stack: Stack, versions: dict[str, str]) -> Stack:
    """The stack with some releases at other versions: what the cluster should run at a point of the upgrade
    (releases whose hop has run at their new version, the others at the version they still run)."""
    releases = {
        n: (r.model_copy(update={"version": versions[n]}) if n in versions else r) for n, r in stack.releases.items()
    }
    return stack.model_copy(update={"releases": releases})


def run_hop(
    ctx: RunContext,
    hop: upgrade_plan.Hop,
    rendered: RenderedStack,
    state: ReleaseState,
    *,
    repair: bool = False,
) -> dict[str, Any]:
    """One release's hop: pre-pull (Cilium), upgrade, rollouts, verification; on failure roll back to the revision
    that ran before, wait, verify again and raise UpgradeRolledBack naming what failed. `ctx.stack` holds the
    versions the cluster should run once this hop is done. `repair`: the upgrade also reverts live edits (forced,
    then server-side apply of what helm left drifted). Returns the hop's record."""
    from tasks.steps.drift import apply_drifted_objects

    logger = get_run_logger()
    done: list[str] = []
    if hop.prepull:
        done.append(f"pre-pull: {prepull_cilium_images(ctx, hop.release, rendered)}")
    try:
        outcome = install_release(ctx, hop.release, rendered, force=repair)
    except EksCiliumError as e:
        after = live_release(ctx, hop.release, ctx.stack.releases[hop.release])
        before_rev = state.live.revision if state.live is not None else None
        if after is None or (after.revision == before_rev and after.deployed):
            raise  # helm changed nothing (a chart version that does not exist, the API away): no rollback
        # helm's own wait failed (e.g. a post-upgrade hook that needs Ready nodes while the new agents crash):
        # the release is left failed; the rollback below restores the revision that ran before.
        failed = [f"{e.what}: {e.observed or ''}".strip(": ")]
        done.append(f"release {hop.release}: upgrade to {hop.to_version} FAILED ({e.what})")
    else:
        done.append(f"release {hop.release}: {outcome.action.value} to {hop.to_version} (revision {outcome.revision})")
        if repair:
            applied = apply_drifted_objects(ctx, hop.release)
            done += [f"release {hop.release}: server-side applied {', '.join(applied)}"] if applied else []
        failures = _rollouts(ctx, hop.release, rendered)
        report = verify_stack(ctx, rendered)
        failed = [e.what for e in failures] + _failed_rows(report, ctx.stack, hop.release)
    if not failed:
        logger.info("hop %s: verified", hop)
        return {"hop": hop.as_dict(), "ok": True, "done": done}
    revision = state.live.revision if state.live is not None else None
    if revision is None:
        raise PermanentError(
            f"{hop}: failed and there is no previous revision to roll back to", observed="; ".join(failed)
        )
    done.append(rollback_release(ctx, hop.release, revision))
    back = dataclasses.replace(ctx, stack=stack_with(ctx.stack, {hop.release: hop.from_version or hop.to_version}))
    after_failures = _rollouts(back, hop.release, rendered)
    rows = _failed_rows(verify_stack(back, rendered), back.stack, hop.release)
    recovered = not after_failures and not rows
    raise UpgradeRolledBack(
        f"upgrade of {hop.release} to {hop.to_version} failed and was rolled back to revision {revision} "
        f"({hop.from_version})" + ("" if recovered else "; the rolled-back release is NOT healthy either"),
        observed="; ".join(failed),
        hint="fix the cause (the failed checks above), then run the upgrade again"
        if recovered
        else "inspect the release by hand: " + "; ".join([e.what for e in after_failures] + rows),
    )


def upgrade_releases(ctx: RunContext, rendered: RenderedStack, names: list[str]) -> tuple[list[str], set[str]]:
    """The upgrade path for releases a drift repair found on another chart version: every one planned first (a
    refusal raises UpgradeRefused before anything changes), the install record kept, the DNS proxy ready before a
    Cilium hop, then the hops in the guide's order, each also reverting live edits. Going back is allowed to the
    previous deployed revision's chart only: that undoes an out-of-band upgrade. Returns what was done and the
    releases upgraded."""
    from tasks.steps.access import apply_upgrade_compatibility

    states = read_release_states(ctx)
    plan = upgrade_plan.plan_upgrade(
        stack_with(ctx.stack, {}),
        {n: (s.live.version if s.live is not None else None) for n, s in states.items()},
        {n: s.previous_version for n, s in states.items()},
        allow_downgrade=True,
    )
    wanted = [h for h in plan.changes if h.release in names]
    refused = [r for r in plan.refusals if any(r.startswith(f"release {n}:") for n in names)]
    if refused:
        raise UpgradeRefused(
            "releases on another chart version may not be moved to the stack's directly; nothing was changed",
            observed="; ".join(refused),
            hint="change the versions in the stack as each message says, or run upgrade-stack",
        )
    record_install(ctx, {n: s.first_version for n, s in states.items() if s.first_version})
    apply_upgrade_compatibility(ctx, rendered)
    done: list[str] = []
    versions = {h.release: h.from_version for h in wanted if h.from_version}
    for hop in wanted:
        if hop.component is Component.cilium:
            require_ready(ctx, Component.dnsproxy, rendered)
        versions[hop.release] = hop.to_version
        at = dataclasses.replace(ctx, stack=stack_with(ctx.stack, versions))
        done += run_hop(at, hop, rendered, states[hop.release], repair=True)["done"]
    return done, {h.release for h in wanted}
