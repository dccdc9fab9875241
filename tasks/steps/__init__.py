"""The runbook's steps as Prefect tasks: thin wrappers that fetch state, call the pure decisions and act.

Every task that touches AWS or the cluster is uncached and retries only transient errors. Sensors poll with
their own deadline (tasks.sensing.wait_until), log progress and keep a progress artifact up to date.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks import helm_argv, manifest, preflight, readiness, verify
from tasks.access import exec_kubeconfig
from tasks.adapters.aws import Aws, check_region
from tasks.adapters.eks_token import cached_credential
from tasks.adapters.helm import Helm
from tasks.adapters.kube import Kube
from tasks.diff import diff_values
from tasks.errors import (
    CommandError,
    ConfigError,
    EksCiliumError,
    PermanentError,
    PreflightFailed,
    ToolError,
    TransientError,
)
from tasks.model import Release, Stack, Workload
from tasks.network import pick_node_role, private_subnets
from tasks.nodegroup_plan import NodegroupPlan, create_nodegroup_request, nodegroup_spec_differences
from tasks.options import NodegroupMethod, RunOptions
from tasks.readiness import Verdict
from tasks.render import RenderedStack, dump_yaml, load_inputs, private_dir, render_stack, write_private
from tasks.sensing import wait_until
from tasks.threads import map_in_threads
from tasks.values import normalise_endpoint


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """retry_condition_fn: retry only errors we classified as transient."""
    try:
        state.result()
    except EksCiliumError as e:
        return e.transient
    except Exception:
        return False
    return False


# Fault injection for the crash tests (tests/test_crash_e2e.py): with EKS_CILIUM_CRASH_AFTER_STEP=<step name> the
# process is SIGKILLed right after that step's work is done and before Prefect records it - the worst moment.
CRASH_AFTER_STEP = "EKS_CILIUM_CRASH_AFTER_STEP"


def _crash_point(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run_step(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if os.environ.get(CRASH_AFTER_STEP) == name:
            get_run_logger().warning("fault injection (%s): killing this process after step %s", CRASH_AFTER_STEP, name)
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    return run_step


def step(name: str) -> Any:
    """A task that touches AWS or the cluster: uncached, retried on transient errors only."""
    make = task(
        name=name, retries=3, retry_delay_seconds=[1, 3, 10], retry_condition_fn=retry_transient, cache_policy=NO_CACHE
    )
    return lambda fn: make(_crash_point(name, fn))


def sensor(name: str) -> Any:
    """A polling task: uncached, no retries (it enforces its own deadline and tolerates transient errors)."""
    make = task(name=name, cache_policy=NO_CACHE)
    return lambda fn: make(_crash_point(name, fn))


@dataclass
class Ctx:
    """What the steps share: the validated stack, where files live, how to reach the cluster."""

    stack: Stack
    options: RunOptions
    config_dir: Path
    workdir: Path
    helm_binary: str
    helm_env: dict[str, str] = field(default_factory=dict)
    helm_major: int = 3

    # Files the steps write live at fixed places in the run's private directory, so no task needs to hand
    # state to another through a mutated object (tasks run in threads and may see copies of this context).
    @property
    def kubeconfig(self) -> str:
        return str(self.workdir / "kubeconfig")

    def values_file(self, release: str) -> str:
        return str(self.workdir / f"{release}-values.yaml")

    def timeline(self) -> list[dict[str, Any]]:
        path = self.workdir / "timeline.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def helm(self, redact: tuple[str, ...] = ()) -> Helm:
        return Helm(self.helm_binary, self.helm_env, redact, scope=str(self.workdir))

    def aws(self) -> Aws:
        return Aws(self.stack.cluster.region)

    def kube(self) -> Kube:
        return Kube.shared(self.kubeconfig)

    def mark(self, step: str, event: str) -> None:
        with (self.workdir / "timeline.jsonl").open("a") as fh:
            fh.write(json.dumps({"step": step, "event": event, "t": time.time()}) + "\n")


def _progress(what: str) -> Any:
    """A progress artifact plus a logger callback for wait_until."""
    from prefect.artifacts import create_progress_artifact, update_progress_artifact

    logger = get_run_logger()
    try:
        artifact_id = create_progress_artifact(progress=0.0, description=what)
    except Exception:  # artifacts are a convenience; the sensor works without them
        artifact_id = None

    def on_progress(v: Verdict, elapsed: float) -> None:
        logger.info("%s: %s (%.1f s)", what, v.summary, elapsed)
        if isinstance(artifact_id, uuid.UUID):
            with contextlib.suppress(Exception):
                update_progress_artifact(
                    artifact_id=artifact_id, progress=100.0 if v.ready else min(95.0, 5.0 + elapsed)
                )

    return on_progress


def sense(ctx: Ctx, what: str, probe: Any, timeout: int, hint: str, diagnose: Any = None) -> Verdict:
    ctx.mark(what, "start")
    v = wait_until(
        probe,
        what=what,
        timeout=timeout,
        interval=ctx.options.poll_interval_seconds,
        hint=hint,
        diagnose=diagnose,
        on_progress=_progress(what),
    )
    ctx.mark(what, "done")
    return v


# ---- validation, endpoint, access -------------------------------------------------------------------------
@task(name="validate_stack", cache_policy=NO_CACHE)
def validate_stack(ctx: Ctx) -> RenderedStack:
    """Everything that can be checked without the cluster: region, files, overrides, cross-checks, nodegroup mapping."""
    check_region(ctx.stack.cluster.region)
    rendered = render_stack(
        load_inputs(ctx.config_dir, ctx.stack), None, ctx.options.values_overrides, require_endpoint=False
    )
    logger = get_run_logger()
    for w in rendered.warnings:
        logger.warning("values: %s", w)
    if rendered.errors:
        raise ConfigError(
            "the values do not pass the cross-checks",
            observed="\n    " + "\n    ".join(map(str, rendered.errors)),
            hint="fix the values files or the overrides as each line says",
        )
    if ctx.options.nodegroup_method is NodegroupMethod.eksctl and shutil.which("eksctl") is None:
        raise ToolError(
            "nodegroup_method=eksctl but eksctl is not on PATH", hint="install eksctl or use nodegroup_method=native"
        )
    return rendered


@sensor("discover_endpoint")
def discover_endpoint(ctx: Ctx) -> dict[str, Any]:
    """Sensor: DescribeCluster until ACTIVE with an endpoint; FAILED/DELETING and unknown clusters fail fast."""
    aws = ctx.aws()
    name = ctx.stack.cluster.name
    seen: dict[str, Any] = {}

    def probe() -> Verdict:
        c = aws.describe_cluster(name)
        seen.update(c)
        return readiness.cluster(c)

    sense(
        ctx,
        f"EKS cluster {name} ACTIVE",
        probe,
        ctx.options.timeouts.endpoint,
        hint=f"check the cluster in the EKS console ({ctx.stack.cluster.region}); raise "
        "timeouts.endpoint if it is still being created",
    )
    endpoint = normalise_endpoint(seen["endpoint"])
    return {
        "endpoint": seen["endpoint"],
        "host": endpoint.host,
        "port": endpoint.port,
        "ca": (seen.get("certificateAuthority") or {}).get("data", ""),
        "subnets": list((seen.get("resourcesVpcConfig") or {}).get("subnetIds") or []),
        "vpc": (seen.get("resourcesVpcConfig") or {}).get("vpcId"),
        "version": seen.get("version"),
    }


@step("prepare_cluster_access")
def prepare_cluster_access(ctx: Ctx, cluster: dict[str, Any]) -> str:
    """A 0600 kubeconfig whose user is the EKS exec credential plugin; checks the API answers."""
    cfg = exec_kubeconfig(
        ctx.stack.cluster.name, ctx.stack.cluster.region, cluster["endpoint"], cluster["ca"], cache_dir=str(ctx.workdir)
    )
    path = write_private(Path(ctx.kubeconfig), yaml.safe_dump(cfg))
    # Mint the first token here, where boto3 is already loaded, into the plugin's cache: the plugin processes that
    # the kubernetes client, helm and kubectl start then find it (~50 ms) instead of importing boto3 (~1.5 s).
    cached_credential(ctx.workdir, ctx.stack.cluster.name, ctx.stack.cluster.region)
    with ctx.kube() as kube:
        v = kube.version()
    get_run_logger().info(
        "connected to %s (Kubernetes %s)", cluster["endpoint"], v.get("git_version") or v.get("gitVersion")
    )
    return str(path)


@task(name="render_values", cache_policy=NO_CACHE)
def render_values(ctx: Ctx, cluster: dict[str, Any]) -> RenderedStack:
    """Values with the discovered endpoint, written 0600 into the run's private directory."""
    rendered = render_stack(
        load_inputs(ctx.config_dir, ctx.stack), normalise_endpoint(cluster["endpoint"]), ctx.options.values_overrides
    )
    if rendered.errors:
        raise ConfigError(
            "the rendered values do not pass the cross-checks",
            observed="\n    " + "\n    ".join(map(str, rendered.errors)),
            hint="fix the values as each line says",
        )
    for name, values in rendered.values.items():
        write_private(Path(ctx.values_file(name)), dump_yaml(values))
    get_run_logger().info("rendered values for %s (k8sServiceHost=%s)", ", ".join(rendered.values), cluster["host"])
    return rendered


def _repo_credentials(ctx: Ctx) -> tuple[str | None, str | None]:
    block = ctx.stack.chart_repository.credentials_secret_block
    if not block:
        return None, None
    from prefect.blocks.system import Secret

    try:
        value: Any = Secret.load(block).get()  # type: ignore[union-attr]
    except ValueError as e:
        raise ConfigError(
            f"Prefect Secret block {block!r} could not be loaded",
            observed=str(e),
            hint=f"create it: Secret(value={{'username': ..., 'password': ...}}).save({block!r})",
        ) from None
    if not isinstance(value, dict) or not value.get("username") or not value.get("password"):
        raise ConfigError(
            f"Prefect Secret block {block!r} must hold {{'username': ..., 'password': ...}}",
            observed=f"it holds a {type(value).__name__}"
            + (f" with keys {sorted(value)}" if isinstance(value, dict) else ""),
        )
    return str(value["username"]), str(value["password"])


@step("add_chart_repository")
def add_chart_repository(ctx: Ctx) -> str:
    repo = ctx.stack.chart_repository
    user, password = _repo_credentials(ctx)
    helm = ctx.helm(redact=(password,) if password else ())
    helm.run(
        helm_argv.repo_add(ctx.helm_binary, repo.name, repo.url, username=user),
        what=f"add chart repository {repo.name}",
        stdin=password,
    )
    helm.run(helm_argv.repo_update(ctx.helm_binary, repo.name), what=f"update chart repository {repo.name}")
    get_run_logger().info("chart repository %s -> %s", repo.name, repo.url)
    return repo.url


# ---- preflight ------------------------------------------------------------------------------------------
def release_states(ctx: Ctx) -> dict[str, preflight.ReleaseState]:
    helm = ctx.helm()
    states: dict[str, preflight.ReleaseState] = {}
    for ns in sorted({r.namespace for r in ctx.stack.releases.values()}):
        try:
            argv = helm_argv.list_releases(ctx.helm_binary, ns, ctx.kubeconfig, helm_major=ctx.helm_major)
            listed = helm.run_json(argv, what=f"list releases in {ns}") or []
        except CommandError:
            listed = []
        for item in listed:
            name = item.get("name")
            rel = ctx.stack.releases.get(name)
            if rel is None or rel.namespace != ns:
                continue
            chart = str(item.get("chart", ""))
            states[name] = preflight.ReleaseState(
                name,
                ns,
                item.get("status"),
                int(item.get("revision") or 0),
                chart.rsplit("-", 1)[-1] if "-" in chart else None,
            )
    for name, state in states.items():
        if preflight.needs_recovery(state.status):
            state.last_deployed_revision = _last_deployed_revision(ctx, name, state.namespace)
    return states


def _chart_available(ctx: Ctx, name: str, rel: Release) -> str | None:
    helm = ctx.helm()
    if rel.chart.startswith(("oci://", "/", "./", "../")):
        try:
            helm.run(
                helm_argv.show_chart(ctx.helm_binary, rel.chart, rel.version),
                what=f"read chart {rel.chart} {rel.version}",
            )
        except CommandError as e:
            return f"chart {rel.chart} version {rel.version} is not available: {e.stderr.strip()[:300]}"
        return None
    found = (
        helm.run_json(helm_argv.search_repo(ctx.helm_binary, rel.chart, rel.version), what=f"search {rel.chart}") or []
    )
    if not any(str(f.get("version", "")).lstrip("v") == rel.version.lstrip("v") for f in found):
        return (
            f"chart {rel.chart} version {rel.version} is not in repository {ctx.stack.chart_repository.url}; "
            f"`helm search repo {rel.chart} --versions` lists what it has"
        )
    return None


def _render_check(ctx: Ctx, name: str, rel: Release) -> str | None:
    """`helm upgrade --install --dry-run=server`: renders against the cluster's API versions, changes nothing."""
    argv = helm_argv.upgrade_install(
        ctx.helm_binary,
        name,
        rel.chart,
        rel.version,
        rel.namespace,
        ctx.values_file(name),
        timeout_seconds=60,
        create_namespace=rel.create_namespace,
        kubeconfig=ctx.kubeconfig,
        dry_run=True,
    )
    try:
        ctx.helm().run(argv, what=f"render {name} against the cluster")
    except CommandError as e:
        if e.transient:
            raise
        text = e.stderr.strip().splitlines()
        return text[0][:600] if text else f"helm exited {e.returncode}"
    return None


def resolve_nodegroup(
    ctx: Ctx, plan: NodegroupPlan, cluster: dict[str, Any]
) -> tuple[dict[str, Any] | None, list[str]]:
    """The CreateNodegroup request with subnets and role resolved, or the problems preventing it."""
    aws = ctx.aws()
    problems: list[str] = []
    subnets = list(plan.subnets)
    if not subnets:
        described = aws.describe_subnets(cluster["subnets"]) if cluster["subnets"] else []
        if plan.private_networking:
            vpc = cluster.get("vpc") or (described[0]["VpcId"] if described else None)
            tables = aws.describe_route_tables(vpc) if vpc else []
            subnets = private_subnets(described, tables)
            if not subnets:
                problems.append(
                    f"nodegroup {plan.name}: privateNetworking is true but none of the cluster's subnets "
                    f"({', '.join(cluster['subnets']) or 'none'}) is private (each routes 0.0.0.0/0 to an internet "
                    "gateway). Fix: add private subnets to the cluster, or list subnets in the nodegroup file"
                )
        else:
            subnets = [s["SubnetId"] for s in described]
    role = plan.node_role
    if role and not role.startswith("arn:"):
        arn = aws.get_role_arn(role)
        if arn is None:
            problems.append(
                f"nodegroup {plan.name}: IAM role {role!r} does not exist. Fix: create it with "
                "AmazonEKSWorkerNodePolicy, AmazonEC2ContainerRegistryPullOnly and AmazonEKS_CNI_Policy"
            )
        role = arn
    elif not role:
        candidates = pick_node_role(aws.list_role_names(), ctx.stack.cluster.name)
        if len(candidates) == 1:
            role = aws.get_role_arn(candidates[0])
        else:
            found = (
                "candidates: " + ", ".join(candidates)
                if candidates
                else "no role name contains the cluster name and node"
            )
            problems.append(
                f"nodegroup {plan.name}: cannot choose the node IAM role automatically ({found}). "
                "Fix: set nodegroup.node_role in the stack to the role's name or ARN"
            )
    if problems or not role:
        return None, problems
    return create_nodegroup_request(plan, ctx.stack.cluster.name, subnets, role), []


@step("run_preflight")
def run_preflight(ctx: Ctx, cluster: dict[str, Any], rendered: RenderedStack) -> dict[str, Any]:
    """Every check that must pass before anything changes; all problems are reported together."""
    logger = get_run_logger()
    aws = ctx.aws()
    name = ctx.stack.cluster.name
    try:
        addons: list[str] | None = aws.list_addons(name)
    except PermanentError as e:
        if "access denied" in e.what:
            raise
        addons = None
        logger.warning("could not list EKS add-ons (%s); relying on the DaemonSet check", e.what)
    try:
        principal = aws.caller_arn()
    except EksCiliumError:
        principal = "(unknown caller)"
    with ctx.kube() as kube:
        allowed, reason = kube.can_i("*", "*", "*")
        nodes = kube.list_nodes()
        facts = preflight.ClusterFacts(
            cluster=name,
            region=ctx.stack.cluster.region,
            principal=principal,
            addons=addons,
            kube_system_daemonsets=[d["metadata"]["name"] for d in kube.list_daemonsets("kube-system")],
            nodes=[n["metadata"]["name"] for n in nodes],
            node_nodegroups={
                n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get("eks.amazonaws.com/nodegroup", "")
                for n in nodes
            },
            own_nodegroup=rendered.nodegroup.name,
            servicemonitor_crd=kube.crd_exists(preflight.SERVICEMONITOR_CRD),
            admin_allowed=allowed,
            admin_reason=reason,
            cilium_release=ctx.stack.cilium[0],
            recover_pending=ctx.options.recover_pending,
        )
    facts.releases = release_states(ctx)
    enabled = {rname: rel for rname, rel in ctx.stack.releases.items() if rel.enabled}
    # One helm process per release: run concurrently, they are most of the preflight's time.
    available = map_in_threads(lambda item: _chart_available(ctx, *item), list(enabled.items()), name="preflight")
    for rname, missing in zip(enabled, available, strict=True):
        if missing:
            facts.missing_chart_versions[rname] = missing
    # Rendering against the cluster needs the chart; skip it where the chart is missing or the CRD check already fails.
    blocking = preflight.evaluate(facts, rendered.values)
    if not blocking:
        to_render = []
        for rname, rel in enabled.items():
            state = facts.releases.get(rname)
            recovery = (
                None
                if state is None
                else preflight.plan_recovery(rname, state.status, state.revision, state.last_deployed_revision)
            )
            if state is not None and recovery and recovery.kind is not preflight.RecoveryKind.upgrade_over:
                # helm refuses even a dry run while the release is pending, and a release that never deployed is
                # removed first; both are recovered before the install.
                logger.warning("release %s is %s: it will be recovered before the install", rname, state.status)
            elif rname not in facts.missing_chart_versions:
                to_render.append((rname, rel))
        for (rname, _), err in zip(
            to_render, map_in_threads(lambda item: _render_check(ctx, *item), to_render, name="preflight"), strict=True
        ):
            if err:
                facts.render_errors[rname] = err
    ng_request, ng_problems = resolve_nodegroup(ctx, rendered.nodegroup, cluster)
    facts.nodegroup_errors = ng_problems
    existing = aws.describe_nodegroup(name, rendered.nodegroup.name)
    if existing is not None:
        diffs = nodegroup_spec_differences(rendered.nodegroup, existing)
        if diffs:
            facts.nodegroup_errors.append(
                f"nodegroup {rendered.nodegroup.name} exists with a different spec ({'; '.join(diffs)}). "
                "This flow never changes "
                "a nodegroup silently. Fix: align configs/nodegroup.yaml with it, or replace the nodegroup deliberately"
            )
    problems = preflight.evaluate(facts, rendered.values)
    if problems:
        raise PreflightFailed(problems)
    logger.info(
        "preflight passed: no default add-ons, %d node(s), ServiceMonitor CRD present, caller is cluster-admin",
        len(facts.nodes),
    )
    return {
        "nodegroup_request": ng_request,
        "nodegroup_exists": existing is not None,
        "releases": {k: vars(v) for k, v in facts.releases.items()},
    }


def _last_deployed_revision(ctx: Ctx, name: str, namespace: str) -> int | None:
    hist = (
        ctx.helm().run_json(
            helm_argv.history(ctx.helm_binary, name, namespace, ctx.kubeconfig), what=f"history of {name}"
        )
        or []
    )
    deployed = [int(h["revision"]) for h in hist if h.get("status") in ("deployed", "superseded")]
    return max(deployed) if deployed else None


def recover_left_release(ctx: Ctx, recovery: preflight.Recovery) -> str:
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


def _recovery_of(ctx: Ctx, name: str, live: dict[str, Any]) -> preflight.Recovery | None:
    status = live.get("status")
    if not preflight.needs_recovery(status):
        return None
    rel = ctx.stack.releases[name]
    return preflight.plan_recovery(
        name, status, live.get("revision"), _last_deployed_revision(ctx, name, rel.namespace)
    )


@step("recover_release")
def recover_release(ctx: Ctx, recovery: preflight.Recovery) -> str:
    return recover_left_release(ctx, recovery)


# ---- helm releases --------------------------------------------------------------------------------------
def release_metadata(ctx: Ctx, name: str, rel: Release) -> dict[str, Any] | None:
    """`helm get metadata` of the release (chart version, revision, status), None when it is not installed."""
    try:
        return (
            ctx.helm().run_json(
                helm_argv.get_metadata(ctx.helm_binary, name, rel.namespace, ctx.kubeconfig),
                what=f"metadata of release {name}",
            )
            or {}
        )
    except CommandError as e:
        if "not found" in e.stderr:
            return None
        raise


def live_release(ctx: Ctx, name: str, rel: Release) -> dict[str, Any] | None:
    """{"status", "version", "revision", "config"} of the deployed release, None when it is not installed."""
    meta = release_metadata(ctx, name, rel)
    if meta is None:
        return None
    helm = ctx.helm()
    config = (
        helm.run_json(
            helm_argv.get_values(ctx.helm_binary, name, rel.namespace, ctx.kubeconfig), what=f"values of release {name}"
        )
        or {}
    )
    return {
        "status": meta.get("status"),
        "version": meta.get("version"),
        "revision": meta.get("revision"),
        "config": config,
    }


def _desired_unchanged(
    ctx: Ctx, name: str, rel: Release, desired: dict[str, Any]
) -> tuple[bool, dict[str, Any] | None]:
    live = live_release(ctx, name, rel)
    if live is None:
        return False, None
    same = (
        live["status"] == "deployed"
        and str(live["version"]).lstrip("v") == rel.version.lstrip("v")
        and not diff_values(live["config"], desired)
    )
    return same, live


@step("install_release")
def install_release(ctx: Ctx, name: str, rendered: RenderedStack) -> dict[str, Any]:
    """`helm upgrade --install` unless the release already runs the desired version and values."""
    rel = ctx.stack.releases[name]
    logger = get_run_logger()
    same, status = _desired_unchanged(ctx, name, rel, rendered.values[name])
    recovery = _recovery_of(ctx, name, status) if status is not None else None
    if recovery is not None and recovery.kind is not preflight.RecoveryKind.upgrade_over:
        # Left pending or failed by an earlier attempt of this very task (helm was interrupted, could not record the
        # release's final state, or its hook timed out): recover, then install again.
        recover_left_release(ctx, recovery)
        same, status = _desired_unchanged(ctx, name, rel, rendered.values[name])
    if same and status is not None:
        logger.info(
            "release %s: %s %s already deployed with the desired values (revision %s); nothing to do",
            name,
            rel.chart,
            rel.version,
            status.get("revision"),
        )
        return {"release": name, "action": "unchanged", "revision": status.get("revision"), "version": rel.version}
    argv = helm_argv.upgrade_install(
        ctx.helm_binary,
        name,
        rel.chart,
        rel.version,
        rel.namespace,
        ctx.values_file(name),
        timeout_seconds=rel.timeout_seconds,
        create_namespace=rel.create_namespace,
        kubeconfig=ctx.kubeconfig,
    )
    logger.info("release %s: %s (timeout %d s)", name, helm_argv.shell_line(argv), rel.timeout_seconds)
    ctx.mark(f"helm {name}", "start")
    result = ctx.helm().run_json(argv, what=f"install release {name}", timeout=rel.timeout_seconds + 60) or {}
    ctx.mark(f"helm {name}", "done")
    revision = result.get("version")
    recorded = live_release(ctx, name, rel)
    if recorded is None or recorded.get("status") != "deployed":
        # helm only logs a failure to record the final release state and still exits 0 (e.g. the API was briefly
        # unavailable); the release would stay pending and block every later helm operation.
        raise TransientError(
            f"helm installed release {name} but its release record says {(recorded or {}).get('status', 'nothing')}",
            observed=f"revision {revision}",
            hint="retried automatically: the pending release is recovered first",
        )
    logger.info("release %s: revision %s %s", name, revision, ((result.get("info") or {}).get("status")))
    return {
        "release": name,
        "action": "installed" if status is None else "upgraded",
        "revision": revision,
        "version": rel.version,
    }


@sensor("wait_for_cilium_objects")
def wait_for_cilium_objects(ctx: Ctx, since_revision: int = 0) -> dict[str, Any]:
    """Sensor: the Cilium DaemonSet and ConfigMap exist (helm has applied the chart's objects). The nodegroup
    waits only for this, not for the helm install, which cannot finish before nodes exist (design hazard 1).
    A failed release record counts only when it is newer than `since_revision` (a failed revision an earlier run
    left behind is what this run upgrades over)."""
    name, rel = ctx.stack.cilium
    agent = rel.workload("agent")
    ds_name = agent.name if agent else "cilium"
    cm = rel.config_map or "cilium-config"

    def probe() -> Verdict:
        with ctx.kube() as kube:
            records = kube.helm_release_secrets(rel.namespace, name)
            latest = max(records, key=lambda r: int(r["metadata"]["labels"].get("version", "0")), default=None)
            if (
                latest
                and latest["metadata"]["labels"].get("status") == "failed"
                and int(latest["metadata"]["labels"].get("version", "0")) > since_revision
            ):
                return Verdict(False, f"helm release {name} failed", failed=True)
            ds = kube.get("DaemonSet", agent.namespace or rel.namespace if agent else rel.namespace, ds_name)
            cmap = kube.get("ConfigMap", rel.namespace, cm)
        missing = [n for n, o in ((f"DaemonSet {ds_name}", ds), (f"ConfigMap {cm}", cmap)) if o is None]
        return Verdict(not missing, "present" if not missing else "waiting for " + " and ".join(missing))

    sense(
        ctx,
        "Cilium objects applied",
        probe,
        ctx.options.timeouts.cilium_objects,
        hint=f"check the helm install of {name}: `helm status {name} -n {rel.namespace}`",
    )
    return {"daemonset": ds_name, "configmap": cm, "t": time.time()}


# ---- nodegroup --------------------------------------------------------------------------------------------
@step("create_nodegroup")
def create_nodegroup(ctx: Ctx, rendered: RenderedStack, pre: dict[str, Any]) -> dict[str, Any]:
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
        return {"nodegroup": plan.name, "action": "unchanged", "status": existing.get("status")}
    ctx.mark("create nodegroup", "start")
    if ctx.options.nodegroup_method is NodegroupMethod.eksctl:
        from tasks.adapters.eksctl import create_nodegroup_with_eksctl

        create_nodegroup_with_eksctl(str(ctx.config_dir / ctx.stack.nodegroup.file))
    else:
        request = pre["nodegroup_request"]
        aws.create_nodegroup(request)
        logger.info(
            "nodegroup %s: CreateNodegroup %s x%d in %s",
            plan.name,
            ",".join(plan.instance_types),
            plan.desired_size,
            ", ".join(request["subnets"]),
        )
    ctx.mark("create nodegroup", "done")
    return {"nodegroup": plan.name, "action": "created", "status": "CREATING"}


@sensor("wait_for_nodegroup_active")
def wait_for_nodegroup_active(ctx: Ctx, rendered: RenderedStack) -> dict[str, Any]:
    """Sensor: nodegroup ACTIVE; CREATE_FAILED / DEGRADED fail at once with the health issues (the boto3 waiter
    would ignore DEGRADED and wait 40 minutes)."""
    aws = ctx.aws()
    name = rendered.nodegroup.name
    sense(
        ctx,
        f"nodegroup {name} ACTIVE",
        lambda: readiness.nodegroup(aws.describe_nodegroup(ctx.stack.cluster.name, name)),
        ctx.options.timeouts.nodegroup,
        hint="read the health issues above; for NodeCreationFailure check the node role policies and "
        "that Cilium's agent "
        "pods run (nodes without a CNI never become Ready)",
        diagnose=lambda: node_diagnosis(ctx),
    )
    return {"nodegroup": name, "status": "ACTIVE"}


@sensor("wait_for_nodes_ready")
def wait_for_nodes_ready(ctx: Ctx, rendered: RenderedStack) -> dict[str, Any]:
    plan = rendered.nodegroup

    def probe() -> Verdict:
        with ctx.kube() as kube:
            return readiness.nodes(kube.list_nodes(), expected=plan.desired_size, nodegroup=plan.name)

    v = sense(
        ctx,
        f"{plan.desired_size} nodes Ready",
        probe,
        ctx.options.timeouts.nodes,
        hint="nodes stay NotReady until the Cilium agent runs on them: check the cilium pods below",
        diagnose=lambda: node_diagnosis(ctx),
    )
    return {"ready": v.summary}


def node_diagnosis(ctx: Ctx) -> list[str]:
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


# ---- workload sensors -----------------------------------------------------------------------------------------
def _workload_diagnosis(ctx: Ctx, w: Workload, namespace: str) -> list[str]:
    with ctx.kube() as kube:
        pods = kube.list_pods(namespace, w.selector)
        lines = readiness.pod_problems(pods) if pods else [f"no pods match {w.selector}"]
        names = [w.name] + [p["metadata"]["name"] for p in pods]
        for e in kube.list_events(namespace, names, limit=8):
            lines.append(
                f"event {e.get('type')} {e.get('reason')} {e['involvedObject'].get('name')}: {e.get('message')}"
                + (f" (x{e.get('count')})" if (e.get("count") or 1) > 1 else "")
            )
    return lines


def rendered_release(ctx: Ctx, name: str, rel: Release) -> manifest.RenderedRelease | None:
    """What helm recorded for the release: status, revision and the objects of its manifest and hooks; None when
    the release is not installed. The expectations of the workload checks come from here, not from live objects."""
    meta = release_metadata(ctx, name, rel)
    if meta is None:
        return None
    helm = ctx.helm()
    text = helm.run(
        helm_argv.get_manifest(ctx.helm_binary, name, rel.namespace, ctx.kubeconfig), what=f"manifest of release {name}"
    )
    hooks = helm.run(
        helm_argv.get_hooks(ctx.helm_binary, name, rel.namespace, ctx.kubeconfig), what=f"hooks of release {name}"
    )
    return manifest.rendered_release(name, rel.namespace, meta, text, hooks)


def workload_verdict(
    kube: Kube,
    w: Workload,
    namespace: str,
    expected_nodes: int | None,
    rendered: manifest.RenderedRelease | None = None,
) -> Verdict:
    """The workload's verdict (`kubectl rollout status` rules); with the release's rendered objects also: fewer
    replicas than the release renders fails, and an object the deployed release lacks fails at once."""
    obj = kube.get(w.kind.value, namespace, w.name)
    if obj is None and rendered is not None:
        absent = manifest.absent_workload(w.kind.value, namespace, w.name, rendered)
        if absent is not None:
            return absent
    if w.kind.value == "DaemonSet":
        return readiness.daemonset(obj, expected_nodes=expected_nodes if w.per_node else None)
    if w.kind.value == "Job":
        return readiness.job(obj)
    expected = rendered.expected_replicas(w.kind.value, namespace, w.name) if rendered is not None else None
    return readiness.deployment(obj, expected_replicas=expected)


# A workload still absent after this many polls and seconds (whichever is later) while its release is deployed is
# checked against the release's rendered objects: a name the release does not render fails at once.
ABSENT_POLLS = 3
ABSENT_SECONDS = 10.0


@dataclass
class AbsenceWatch:
    """When a sensor should ask helm why its object is missing: after ABSENT_POLLS polls and ABSENT_SECONDS
    seconds of absence, then at most every ABSENT_SECONDS (helm is asked only while the object is missing)."""

    polls: int = 0
    since: float | None = None
    asked: float | None = None

    def due(self, absent: bool, now: float) -> bool:
        if not absent:
            self.polls, self.since, self.asked = 0, None, None
            return False
        self.polls += 1
        self.since = now if self.since is None else self.since
        if self.polls < ABSENT_POLLS or now - self.since < ABSENT_SECONDS:
            return False
        if self.asked is not None and now - self.asked < ABSENT_SECONDS:
            return False
        self.asked = now
        return True


@sensor("check_workload")
def check_workload(ctx: Ctx, release: str, role: str, expected_nodes: int) -> dict[str, Any]:
    """Sensor for one workload: DaemonSet rolled out, Deployment available or Job complete (Failed is terminal).
    An object that stays absent while its release is deployed fails fast, listing what the release renders."""
    rel = ctx.stack.releases[release]
    w = rel.workload(role)
    assert w is not None
    ns = w.namespace or rel.namespace
    kind_word = {"DaemonSet": "rolled out", "Deployment": "available", "Job": "complete", "StatefulSet": "ready"}[
        w.kind.value
    ]
    timeout = ctx.options.timeouts.job if w.kind.value == "Job" else ctx.options.timeouts.rollout
    absence = AbsenceWatch()

    def probe() -> Verdict:
        with ctx.kube() as kube:
            v = workload_verdict(kube, w, ns, expected_nodes)
        if absence.due(v.summary == "does not exist", time.monotonic()):
            rendered = rendered_release(ctx, release, rel)
            absent = manifest.absent_workload(w.kind.value, ns, w.name, rendered) if rendered is not None else None
            if absent is not None:
                return absent
        return v

    v = sense(
        ctx,
        f"{w.kind.value} {ns}/{w.name} {kind_word}",
        probe,
        timeout,
        hint=f"inspect with `kubectl -n {ns} describe {w.kind.value.lower()} {w.name}` and the pods listed "
        f"above; if it does not exist, compare its name (stack releases.{release}.workloads, role "
        f"{role}) with `helm get manifest {release} -n {rel.namespace}`",
        diagnose=lambda: _workload_diagnosis(ctx, w, ns),
    )
    return {"release": release, "role": role, "name": w.name, "summary": v.summary}


def prepare_context(stack: Stack, options: RunOptions, project_root: Path) -> Ctx:
    from tasks.adapters.helm import find_helm

    config_dir = Path(options.config_dir)
    if not config_dir.is_absolute():
        config_dir = project_root / config_dir
    workdir = private_dir()
    # helm's repository list lives in the run's private directory: repository credentials never land in the
    # user's helm configuration and are removed with the directory; the user's own repositories stay untouched.
    env = {
        **{k: v for k, v in os.environ.items() if k.startswith("HELM_")},
        "HELM_REPOSITORY_CONFIG": str(workdir / "helm-repositories.yaml"),
        "HELM_REPOSITORY_CACHE": str(workdir / "helm-repository-cache"),
    }
    helm = Helm(find_helm(), env)
    major = helm.check_version()[0]
    return Ctx(
        stack=stack,
        options=options,
        config_dir=config_dir,
        workdir=workdir,
        helm_binary=helm.binary,
        helm_env=env,
        helm_major=major,
    )


# ---- verification and plans ------------------------------------------------------------------------------------
def artifact_key(prefix: str, cluster: str) -> str:
    import re

    return re.sub(r"[^a-z0-9-]+", "-", f"{prefix}-{cluster}".lower()).strip("-")[:100]


def observe_stack(ctx: Ctx) -> verify.Observed:
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
    ctx: Ctx, rendered: RenderedStack, stopped_by: str | None = None, not_reached: list[str] | None = None
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
def plan_install(ctx: Ctx, rendered: RenderedStack, pre: dict[str, Any]) -> dict[str, Any]:
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


def cleanup_context(ctx: Ctx) -> None:
    """Remove the run's private directory (kubeconfig, rendered values, cached credential) and its client."""
    Kube.forget(ctx.kubeconfig)
    shutil.rmtree(ctx.workdir, ignore_errors=True)
