"""Helm releases: what is deployed, installing or upgrading to the desired version and values, and recovering
releases an interrupted or failed run left pending or failed.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger

from tasks import helm_argv, manifest, preflight
from tasks.diff import diff_values
from tasks.errors import (
    ReleaseNotFound,
    TransientError,
)
from tasks.model import Release
from tasks.names import DEPLOYED, SUPERSEDED
from tasks.render import RenderedStack
from tasks.results import LiveRelease, ReleaseAction, ReleaseOutcome
from tasks.steps.runtime import RunContext, step
from tasks.steps.threads import map_in_threads


def _last_deployed_revision(ctx: RunContext, name: str, namespace: str) -> int | None:
    hist = (
        ctx.helm().run_json(
            helm_argv.history(ctx.helm_binary, name, namespace, ctx.kubeconfig), what=f"history of {name}"
        )
        or []
    )
    deployed = [int(h["revision"]) for h in hist if h.get("status") in (DEPLOYED, SUPERSEDED)]
    return max(deployed) if deployed else None


def recover_left_release(ctx: RunContext, recovery: preflight.Recovery) -> str:
    """A release an interrupted or failed run left behind: pending-* (a killed helm keeps helm's lock on the
    release) is rolled back to the last deployed revision, or uninstalled when there is none; failed is upgraded
    over by the install when it has a deployed revision, else uninstalled so the install starts clean."""
    rel = ctx.stack.releases[recovery.release]
    logger = get_run_logger()
    argv: list[str] | None = None
    if recovery.kind is preflight.RecoveryKind.rollback:
        assert recovery.last_deployed_revision is not None
        argv = helm_argv.rollback(
            ctx.helm_binary,
            recovery.release,
            rel.namespace,
            recovery.last_deployed_revision,
            timeout_seconds=rel.timeout_seconds,
            kubeconfig=ctx.kubeconfig,
        )
    elif recovery.kind is preflight.RecoveryKind.uninstall:
        argv = helm_argv.uninstall(
            ctx.helm_binary,
            recovery.release,
            rel.namespace,
            timeout_seconds=rel.timeout_seconds,
            kubeconfig=ctx.kubeconfig,
        )
    if argv is not None:
        logger.warning("recovering: %s", helm_argv.shell_line(argv))
        ctx.helm().run(argv, what=f"recover release {recovery.release}", timeout=rel.timeout_seconds + 60)
    action = recovery.describe()
    logger.warning("%s", action)
    return action


def _recovery_of(ctx: RunContext, name: str, live: LiveRelease) -> preflight.Recovery | None:
    if not preflight.needs_recovery(live.status):
        return None
    rel = ctx.stack.releases[name]
    return preflight.plan_recovery(name, live.status, live.revision, _last_deployed_revision(ctx, name, rel.namespace))


@step("recover_release")
def recover_release(ctx: RunContext, recovery: preflight.Recovery) -> str:
    return recover_left_release(ctx, recovery)


def release_metadata(ctx: RunContext, name: str, rel: Release) -> dict[str, Any] | None:
    """`helm get metadata` of the release (chart version, revision, status), None when it is not installed."""
    try:
        return (
            ctx.helm().run_json(
                helm_argv.get_metadata(ctx.helm_binary, name, rel.namespace, ctx.kubeconfig),
                what=f"metadata of release {name}",
            )
            or {}
        )
    except ReleaseNotFound:
        return None


def live_release(ctx: RunContext, name: str, rel: Release) -> LiveRelease | None:
    """The deployed release's metadata and user-supplied values, None when it is not installed."""
    meta = release_metadata(ctx, name, rel)
    if meta is None:
        return None
    return _live_from(ctx, name, rel, meta)


def _live_from(ctx: RunContext, name: str, rel: Release, meta: dict[str, Any]) -> LiveRelease:
    helm = ctx.helm()
    config = (
        helm.run_json(
            helm_argv.get_values(ctx.helm_binary, name, rel.namespace, ctx.kubeconfig), what=f"values of release {name}"
        )
        or {}
    )
    revision = meta.get("revision")
    return LiveRelease(
        status=meta.get("status"),
        version=meta.get("version"),
        revision=None if revision is None else int(revision),
        config=config,
        apply_method=meta.get("applyMethod"),
    )


def _desired_unchanged(
    ctx: RunContext, name: str, rel: Release, desired: dict[str, Any]
) -> tuple[bool, LiveRelease | None]:
    live = live_release(ctx, name, rel)
    if live is None:
        return False, None
    return live.deployed and live.runs(rel.version) and not diff_values(live.config, desired), live


@step("install_release")
def install_release(ctx: RunContext, name: str, rendered: RenderedStack, force: bool = False) -> ReleaseOutcome:
    """`helm upgrade --install` unless the release already runs the desired version and values (`force`: upgrade
    anyway, which is how a repair reverts live edits of the release's objects)."""
    rel = ctx.stack.releases[name]
    logger = get_run_logger()
    same, status = _desired_unchanged(ctx, name, rel, rendered.values[name])
    recovery = _recovery_of(ctx, name, status) if status is not None else None
    if recovery is not None and recovery.kind is not preflight.RecoveryKind.upgrade_over:
        # Left pending or failed by an earlier attempt of this very task (helm was interrupted, could not record the
        # release's final state, or its hook timed out): recover, then install again.
        recover_left_release(ctx, recovery)
        same, status = _desired_unchanged(ctx, name, rel, rendered.values[name])
    if same and status is not None and not force:
        logger.info(
            "release %s: %s %s already deployed with the desired values (revision %s); nothing to do",
            name,
            rel.chart,
            rel.version,
            status.revision,
        )
        return ReleaseOutcome(name, ReleaseAction.unchanged, status.revision, rel.version)
    argv = helm_argv.upgrade_release(
        ctx.helm_binary,
        name,
        rel,
        ctx.values_file(name),
        kubeconfig=ctx.kubeconfig,
        # helm 4 refuses --force-conflicts on a release it applies client-side (one helm 3 installed).
        force_conflicts=force and ctx.helm_major >= 4 and status is not None and status.server_side,
    )
    logger.info("release %s: %s (timeout %d s)", name, helm_argv.shell_line(argv), rel.timeout_seconds)
    ctx.mark(f"helm {name}", "start")
    result = ctx.helm().run_json(argv, what=f"install release {name}", timeout=rel.timeout_seconds + 60) or {}
    ctx.mark(f"helm {name}", "done")
    revision = result.get("version")
    recorded = live_release(ctx, name, rel)
    if recorded is None or not recorded.deployed:
        # helm only logs a failure to record the final release state and still exits 0 (e.g. the API was briefly
        # unavailable); the release would stay pending and block every later helm operation.
        raise TransientError(
            f"helm installed release {name} but its release record says {recorded.status if recorded else 'nothing'}",
            observed=f"revision {revision}",
            hint="retried automatically: the pending release is recovered first",
        )
    logger.info("release %s: revision %s %s", name, revision, ((result.get("info") or {}).get("status")))
    action = ReleaseAction.installed if status is None else ReleaseAction.upgraded
    return ReleaseOutcome(name, action, None if revision is None else int(revision), rel.version)


def rendered_release(ctx: RunContext, name: str, rel: Release) -> manifest.RenderedRelease | None:
    """What helm recorded for the release: status, revision and the objects of its manifest and hooks; None when
    the release is not installed. The expectations of the workload checks come from here, not from live objects."""
    meta = release_metadata(ctx, name, rel)
    if meta is None:
        return None
    return _rendered_from(ctx, name, rel, meta)


def _rendered_from(ctx: RunContext, name: str, rel: Release, meta: dict[str, Any]) -> manifest.RenderedRelease:
    helm = ctx.helm()
    text = helm.run(
        helm_argv.get_manifest(ctx.helm_binary, name, rel.namespace, ctx.kubeconfig), what=f"manifest of release {name}"
    )
    hooks = helm.run(
        helm_argv.get_hooks(ctx.helm_binary, name, rel.namespace, ctx.kubeconfig), what=f"hooks of release {name}"
    )
    return manifest.rendered_release(name, rel.namespace, meta, text, hooks)


def release_record(ctx: RunContext, name: str, rel: Release) -> tuple[LiveRelease, manifest.RenderedRelease] | None:
    """What helm holds for the release: its metadata and values, and its manifest and hooks; None when it is not
    installed. The metadata is read once and the three reads after it run at once."""
    meta = release_metadata(ctx, name, rel)
    if meta is None:
        return None
    live, rendered = map_in_threads(
        lambda read: read(ctx, name, rel, meta), [_live_from, _rendered_from], name=f"helm-{name}"
    )
    assert isinstance(live, LiveRelease) and isinstance(rendered, manifest.RenderedRelease)
    return live, rendered
